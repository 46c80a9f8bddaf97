"""Carevault command-line clients for staff, guardians, agencies and admins."""
