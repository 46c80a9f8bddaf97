"""RFC 9457 problem details for every error the API returns."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from keyservice.errors import (
    AuditUnavailableError,
    AuthenticationError,
    InvalidChangeError,
    RefusedError,
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


def install(app: FastAPI) -> None:
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
        log.error("database error; request refused", exc_info=exc)
        return problem(503, "the database is unavailable, so nothing was done; try again later")

    @app.exception_handler(AuditUnavailableError)
    async def audit_unavailable(request: Request, exc: AuditUnavailableError) -> JSONResponse:
        log.error("audit append failed; request refused", exc_info=exc)
        return problem(503, "the audit log is unavailable, so nothing was done; try again later")
