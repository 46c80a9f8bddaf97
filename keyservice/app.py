"""The FastAPI application factory."""

from __future__ import annotations

from fastapi import FastAPI

from keyservice.settings import Settings, get_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(title="Carevault key service", version="0.1.0")
    app.state.settings = settings

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/noop")
    def noop() -> dict[str, str]:
        """Unauthenticated no-op: the HTTP floor that benchmarks compare key release against."""
        return {"status": "ok"}

    return app
