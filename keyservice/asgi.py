"""ASGI entry point for uvicorn: ``keyservice.asgi:app``."""

import gc

from keyservice.app import create_app

app = create_app()

# A 1,000-record release allocates tens of thousands of short-lived objects (rows, dicts,
# attributes); with the default thresholds the collector ran every 700 of them and walked the
# whole imported application each time an older generation filled, about a tenth of a bulk
# release. Everything built at start lives as long as the process: moved out of the collector's
# sight, and young collections made rarer. Cycles are still collected.
gc.freeze()
gc.set_threshold(20_000, 10, 10)
