"""Operating the key service: settings refusals at start, health and readiness, metrics, logs
(docs/OPERATIONS.md)."""
