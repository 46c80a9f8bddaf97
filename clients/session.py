"""Opening an SDK client for the profile the command line names."""

from __future__ import annotations

import typer

from clients.output import options
from clients.profile import Profile
from vault.client import Client
from vault.errors import KeyFileError


def profile(ctx: typer.Context) -> Profile:
    return Profile(options(ctx).profile_dir)


def connect(ctx: typer.Context) -> Client:
    """Unlock this profile's device keys and return a client; closed with the command."""
    chosen = profile(ctx)
    if not chosen.exists():
        raise KeyFileError(
            f"This computer is not enrolled yet (no profile in {chosen.directory}). "
            "Run `carevault enroll` with the code your administrator gave you."
        )
    client = Client(chosen.unlock())
    ctx.call_on_close(client.close)
    return client
