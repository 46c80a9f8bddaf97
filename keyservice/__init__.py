"""The Carevault key service: it decides who may have a record's key and audits every decision."""
