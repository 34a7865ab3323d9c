"""Logging set-up: named loggers, a request id on every line, a safe access log."""

from __future__ import annotations

import contextvars
import logging
import sys

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar(
    "docwiz_request_id", default="-"
)

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


class RequestIdFilter(logging.Filter):
    """Adds the current request id (or ``-``) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = REQUEST_ID.get()
        return True


class StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of each record, so a
    replaced stream (a test's capture, a daemon's redirect) is never stale."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> object:
        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:
        """The stream is always the current ``sys.stderr``."""


def configure_logging(level: str = "INFO") -> None:
    handler = StderrHandler()
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Third-party loggers that would print request URLs with query strings,
    # or SQL parameters (password hashes, names, birth dates) at DEBUG.
    for name in ("aiohttp.access", "aiosqlite", "sqlalchemy.engine", "asyncpg"):
        logging.getLogger(name).setLevel(logging.WARNING)


class AccessLogger(AbstractAccessLogger):
    """One line per request: method, path without the query string, status.

    The query string is left out because WebSocket clients pass their token
    there; headers and bodies are never logged.
    """

    def log(
        self, request: web.BaseRequest, response: web.StreamResponse, time: float
    ) -> None:
        self.logger.info(
            "%s %s %s %d %.1fms",
            request.remote or "-",
            request.method,
            request.rel_url.path,
            response.status,
            time * 1000,
            extra={"request_id": response.headers.get("X-Request-ID", "-")},
        )

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)
