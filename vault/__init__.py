"""Carevault client library: the record format, blob stores and the client SDK."""
