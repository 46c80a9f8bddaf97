"""RFC 9457 problem details for every error the API returns."""

from __future__ import annotations

import logging
from typing import Any

from botocore.exceptions import BotoCoreError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from keyservice.errors import (
    AuditUnavailableError,
    AuthenticationError,
    InvalidChangeError,
    RefusedError,
    RootKeyError,
)

PROBLEM_JSON = "application/problem+json"
AUTH_FAILED = "authentication failed"
log = logging.getLogger("keyservice")
auth_log = logging.getLogger("keyservice.auth")

_TITLES = {
    400: "bad request",
    401: "authentication failed",
    403: "forbidden",
    404: "not found",
    409: "conflict",
    410: "gone",
    413: "content too large",
    416: "range not satisfiable",
    422: "invalid request",
    503: "service unavailable",
}


def problem(status: int, detail: str, **extra: Any) -> JSONResponse:
    body = {"type": "about:blank", "title": _TITLES.get(status, "error"), "status": status}
    body["detail"] = detail
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


# How every error is answered, as the OpenAPI document states it (decision 0029): a problem
# (RFC 9457) whatever the status, so the document's error responses say so.
PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
    },
}
_PROBLEM_RESPONSE = {
    "description": "An error, as an RFC 9457 problem",
    "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
}


def document(app: FastAPI) -> None:
    """State the problems in the app's OpenAPI document: FastAPI documents a 422 as its own
    ``HTTPValidationError`` JSON and no other error, while the service answers every error
    (422 included) with a problem."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        schema.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                responses = operation.setdefault("responses", {})
                if "422" in responses:
                    responses["422"] = {**_PROBLEM_RESPONSE, "description": "Invalid request"}
                responses["default"] = _PROBLEM_RESPONSE
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


# How long a caller should wait before trying again when a part the request needs (the
# database, the root key provider) cannot be reached: long enough not to hammer it while it
# restarts, short enough that a client's retry lands soon after it is back.
RETRY_AFTER_S = 5
DATABASE_GONE = "the database cannot be reached; try again shortly"
ROOT_KEY_GONE = "the root key provider cannot be reached; try again shortly"
ROOT_KEY_UNUSABLE = "the root key provider cannot be used right now; try again later"
# SQLSTATEs the server sends as it goes away or will not take connections (class 08 is
# "connection exception"): admin_shutdown, crash_shutdown, cannot_connect_now.
_GOING_AWAY = frozenset({"57P01", "57P02", "57P03"})


def connection_lost(exc: BaseException) -> bool:
    """Whether ``exc`` is the database's connection being refused or lost, and not anything
    the database said about the request (a constraint, a timeout, bad SQL)."""
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    if not isinstance(exc, OperationalError):
        return False
    # The driver's own errors (refused, reset, closed) carry no SQLSTATE; sqlite3's carry
    # no attribute at all and are not taken for a lost connection.
    state = getattr(exc.orig, "sqlstate", "")
    return state is None or state.startswith("08") or state in _GOING_AWAY


def unavailable(detail: str) -> JSONResponse:
    """503 with Retry-After: a part the request needs cannot be reached; nothing was done."""
    response = problem(503, detail)
    response.headers["Retry-After"] = str(RETRY_AFTER_S)
    return response


def install(app: FastAPI) -> None:
    document(app)

    @app.exception_handler(StarletteHTTPException)
    async def http_problem(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        response = problem(exc.status_code, str(exc.detail))
        for name, value in (exc.headers or {}).items():
            response.headers[name] = value
        return response

    @app.exception_handler(RequestValidationError)
    async def validation_problem(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": [str(part) for part in error.get("loc", ())], "msg": error.get("msg", "")}
            for error in exc.errors()
        ]
        summary = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors[:5])
        return problem(422, f"the request is not valid: {summary}", errors=errors)

    @app.exception_handler(AuthenticationError)
    async def authentication_failed(request: Request, exc: AuthenticationError) -> JSONResponse:
        # The reason goes to the log (and was audited below); the caller learns nothing.
        auth_log.warning(
            "request rejected: %s %s reason=%s", request.method, request.url.path, exc.reason
        )
        return problem(401, AUTH_FAILED)

    @app.exception_handler(RefusedError)
    async def refused(request: Request, exc: RefusedError) -> JSONResponse:
        return problem(exc.status, str(exc))

    @app.exception_handler(InvalidChangeError)
    async def invalid_change(request: Request, exc: InvalidChangeError) -> JSONResponse:
        return problem(422, str(exc))

    @app.exception_handler(SQLAlchemyError)
    async def database_unavailable(request: Request, exc: SQLAlchemyError) -> JSONResponse:
        if connection_lost(exc):
            # The driver's message (address, SQL) goes to the log with the request id only.
            log.error(
                "database cannot be reached; %s %s refused",
                request.method,
                request.url.path,
                exc_info=exc,
            )
            return unavailable(DATABASE_GONE)
        log.error("database error; request refused", exc_info=exc)
        return problem(503, "the database is unavailable, so nothing was done; try again later")

    @app.exception_handler(AuditUnavailableError)
    async def audit_unavailable(request: Request, exc: AuditUnavailableError) -> JSONResponse:
        log.error("audit append failed; request refused", exc_info=exc)
        if exc.__cause__ is not None and connection_lost(exc.__cause__):
            return unavailable(DATABASE_GONE)
        return problem(503, "the audit log is unavailable, so nothing was done; try again later")

    @app.exception_handler(RootKeyError)
    async def root_key_unavailable(request: Request, exc: RootKeyError) -> JSONResponse:
        # Raised at run time by a wrap or unwrap with the root key (a KMS or HSM that timed
        # out or went away): nothing was released. Which provider and why go to the log.
        log.error(
            "root key provider failed; %s %s refused",
            request.method,
            request.url.path,
            exc_info=exc,
        )
        if isinstance(exc.__cause__, BotoCoreError | OSError):
            return unavailable(ROOT_KEY_GONE)
        return unavailable(ROOT_KEY_UNUSABLE)
