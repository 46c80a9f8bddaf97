"""ASGI entry point for uvicorn: ``keyservice.asgi:app`` (``serve --workers N`` uses it)."""

from keyservice.app import create_app
from keyservice.ops.startup import tune_gc

app = create_app()
tune_gc()
