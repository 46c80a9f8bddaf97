"""JSON logs: one object a line on stderr, each with the request id of the request it is about.

What a line may carry: the time, level, logger, message, the request id, and for the access
line the method, the route *template* (``/v1/records/{record_id}``, never the path: a path
holds ids and a blob URL's token), the status and the duration. Keys, plaintext, record names
and people's names are never logged: the service's own messages name ids at most, and an
exception's text is logged only for a server error (docs/OPERATIONS.md).
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

REQUEST_ID_HEADER = "x-request-id"
# A request id a client or a proxy sent is kept if it looks like one; otherwise a new one.
_GOOD_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")
request_id: ContextVar[str | None] = ContextVar("carevault_request_id", default=None)
access_log = logging.getLogger("keyservice.access")

# Attributes every LogRecord has; anything else was passed through ``extra=`` and is logged.
# uvicorn's color_message is its message again, with terminal escapes.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "color_message",
}


def new_request_id(offered: bytes | None) -> str:
    if offered is not None:
        text = offered.decode("latin-1")
        if _GOOD_ID.fullmatch(text):
            return text
    return secrets.token_hex(12)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        current = request_id.get()
        if current is not None:
            line["request_id"] = current
        for name, value in vars(record).items():
            if name not in _STANDARD and not name.startswith("_"):
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def uvicorn_log_config(level: str = "INFO") -> dict[str, Any]:
    """logging.config for uvicorn and the service: everything as JSON lines on stderr; the
    service writes its own access line (keyservice/ops/observe.py), so uvicorn's is off."""
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": f"{__name__}.JsonFormatter"}},
        "handlers": {"stderr": handler},
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": level, "propagate": False},
            "uvicorn.error": {"handlers": ["stderr"], "level": level, "propagate": False},
            "uvicorn.access": {"handlers": [], "level": "CRITICAL", "propagate": False},
            "keyservice": {"handlers": ["stderr"], "level": level, "propagate": False},
        },
        "root": {"handlers": ["stderr"], "level": "WARNING"},
    }
