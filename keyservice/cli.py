"""``carevault-keyservice``: run the key service and its host-side admin commands."""

from __future__ import annotations

import typer

from keyservice.settings import Settings

app = typer.Typer(
    help="Run the Carevault key service and its admin commands.", no_args_is_help=True
)


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8800, help="TCP port to listen on."),
    workers: int = typer.Option(1, help="Worker processes."),
) -> None:
    """Run the key service under uvicorn."""
    import uvicorn

    Settings.from_env().data_dir.mkdir(parents=True, exist_ok=True)
    uvicorn.run(
        "keyservice.asgi:app", host=host, port=port, workers=workers, log_level="warning"
    )


def main() -> None:
    app()
