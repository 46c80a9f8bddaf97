"""ASGI entry point for uvicorn: ``keyservice.asgi:app``."""

from keyservice.app import create_app

app = create_app()
