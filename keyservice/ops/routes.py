"""``/healthz``, ``/readyz`` and ``/metrics`` (docs/OPERATIONS.md).

``/healthz``: the process answers (no check of anything else; a load balancer's liveness).
``/readyz``: the database, the blob store and the root key each answer a small real call
(keyservice/ops/checks.py), concurrently, each within ``READY_TIMEOUT_S``; 200 if all do,
else 503 problem+json naming which parts did not and the setting of each. Both answer anyone.
``/metrics``: Prometheus text, only to ``Authorization: Bearer <CAREVAULT_METRICS_TOKEN>``;
without that setting the route answers 404, as for any path the service does not serve.
"""

from __future__ import annotations

import hmac
import logging

import anyio
from anyio import to_thread
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from keyservice.ops import checks
from keyservice.problems import problem
from keyservice.state import ServiceState

READY_TIMEOUT_S = 5.0
log = logging.getLogger("keyservice.ops")
router = APIRouter(include_in_schema=False)


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


async def _check(part: checks.Part, state: ServiceState, failed: dict[str, str]) -> None:
    def run() -> str | None:
        if part is checks.DATABASE:
            return checks.database(state.engine)
        if part is checks.BLOB_STORE:
            return checks.blob_store(state.blobs)
        return checks.root_key(state.settings, state.root)

    reason: str | None = f"no answer within {READY_TIMEOUT_S:g} s"
    with anyio.move_on_after(READY_TIMEOUT_S):
        # abandon_on_cancel: a hung call keeps its thread, not the answer.
        reason = await to_thread.run_sync(run, abandon_on_cancel=True)
    if reason is not None:
        failed[part.name] = reason


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    state: ServiceState = request.app.state.service
    failed: dict[str, str] = {}
    async with anyio.create_task_group() as group:
        for part in checks.PARTS:
            group.start_soon(_check, part, state, failed)
    if not failed:
        return JSONResponse({"status": "ready", "checks": {p.name: "ok" for p in checks.PARTS}})
    unready = [p for p in checks.PARTS if p.name in failed]
    for part in unready:
        log.warning(
            "not ready: the %s cannot be reached",
            part.name.replace("_", " "),
            extra={"part": part.name, "setting": part.setting, "reason": failed[part.name]},
        )
    names = ", ".join(p.name.replace("_", " ") for p in unready)
    return problem(
        503,
        f"not ready: the {names} cannot be reached",
        unready=[{"part": p.name, "setting": p.setting} for p in unready],
        checks={p.name: ("failed" if p.name in failed else "ok") for p in checks.PARTS},
    )


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    token: str | None = request.app.state.service.settings.metrics_token
    if token is None:
        return problem(404, "Not Found")  # as for a path the service does not serve
    offered = request.headers.get("authorization", "")
    expected = f"Bearer {token}"
    if not hmac.compare_digest(offered.encode(), expected.encode()):
        response = problem(401, "a bearer token (CAREVAULT_METRICS_TOKEN) is needed")
        response.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    registry = request.app.state.metrics.registry
    body = await to_thread.run_sync(generate_latest, registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
