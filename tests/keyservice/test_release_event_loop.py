"""The key release coroutine keeps blocking work off the event loop (decision 0007): no pooled
connection is checked out there (a full pool would block the loop for the pool's timeout, and
a connection held across the batch wait can be closed under the batch by a cancellation),
and no download URL is presigned there. The release runs in-process against the database of
a running instance, so that the test can watch which thread does what."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event

from keyservice.app import create_app
from keyservice.settings import Settings
from keyservice.state import ServiceState
from tests.keyservice.helpers import (
    Device,
    admin_enrols,
    assign,
    bootstrap_admin,
    create_child,
    put_record,
)
from tests.servers import KeyServiceFactory


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


@pytest.fixture(scope="module")
def in_process(
    keyservice_factory: KeyServiceFactory,
) -> Iterator[tuple[FastAPI, ServiceState, Device, list[str]]]:
    """An app in this process on the database of a running instance, an educator, and two
    committed records the educator may have."""
    service = keyservice_factory(flavour="embedded")
    admin = bootstrap_admin(service)
    child = create_child(admin)
    educator = admin_enrols(service, admin, kind="staff", roles=["educator"])
    assign(admin, staff_id=educator.principal_id, child_id=child, role="educator")
    records = [put_record(educator, child_ids=[child]).record_id for _ in range(2)]
    app = create_app(Settings.from_env(service.env))
    state: ServiceState = app.state.service
    yield app, state, educator, records
    state.engine.dispose()


def _release(
    app: FastAPI, educator: Device, records: list[str], *, include_urls: bool
) -> dict[str, Any]:
    """One signed release, sent to ``app`` on an event loop of this thread."""

    async def send() -> httpx.Response:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=educator.base_url
        ) as client:
            return await client.post(
                "/v1/keys/release",
                json={
                    "items": [{"record_id": record_id, "version": 1} for record_id in records],
                    "include_urls": include_urls,
                },
                auth=educator.signer(),
            )

    response = asyncio.run(send())
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert [r["status"] for r in body["results"]] == ["granted"] * len(records)
    return body


def test_a_release_checks_out_no_connection_on_the_event_loop(
    in_process: tuple[FastAPI, ServiceState, Device, list[str]],
) -> None:
    app, state, educator, records = in_process
    checkouts: list[bool] = []

    def checked_out(*_: Any) -> None:
        checkouts.append(_on_event_loop())

    event.listen(state.engine, "checkout", checked_out)
    try:
        _release(app, educator, records, include_urls=False)
    finally:
        event.remove(state.engine, "checkout", checked_out)
    # The request's reads and the batch's write each checked a connection out, in a thread.
    assert len(checkouts) >= 2
    assert not any(checkouts)


def test_a_release_presigns_no_url_on_the_event_loop(
    in_process: tuple[FastAPI, ServiceState, Device, list[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app, state, educator, records = in_process
    presign = state.blobs.presign_get
    presigned: list[bool] = []

    def watched(name: str, *, expires_s: int) -> str:
        presigned.append(_on_event_loop())
        return presign(name, expires_s=expires_s)

    monkeypatch.setattr(state.blobs, "presign_get", watched)
    body = _release(app, educator, records, include_urls=True)
    assert all(r["download_url"] for r in body["results"])
    assert presigned == [False, False]
