"""The one JSON error envelope of the API, and how every exception (domain errors included) maps onto it."""

from __future__ import annotations

import logging

import psycopg
import psycopg_pool
from flask import Flask, Response, current_app, has_app_context, jsonify
from werkzeug.exceptions import HTTPException

from .core.errors import (
    Conflict,
    DomainError,
    Forbidden,
    Invalid,
    NotFound,
    Throttled,
    TokenRefused,
    Unauthenticated,
    Unprocessable,
)
from .db import CONTENTION

log = logging.getLogger(__name__)

# Codes for the HTTP errors werkzeug raises on its own (routing, body size, methods).
HTTP_CODES = {
    400: "bad_request",
    401: "authentication_required",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "unprocessable_entity",
    429: "too_many_requests",
    500: "internal_error",
    503: "service_unavailable",
}


# The status of each kind of domain error.
DOMAIN_STATUS: dict[type[DomainError], int] = {
    Invalid: 400,
    Unauthenticated: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    Unprocessable: 422,
    Throttled: 429,
}


class ApiError(DomainError):
    """An error of the HTTP layer the client should see (a body that is not JSON, a route that does
    not exist), with its status and headers; every other error becomes one of these to be answered."""

    def __init__(
        self, status: int, code: str, message: str, *, headers: dict[str, str] | None = None, **kwargs
    ) -> None:
        super().__init__(code, message, **kwargs)
        self.status = status
        self.headers = headers or {}

    def response(self) -> Response:
        """The JSON envelope every 4xx and 5xx goes through."""
        error: dict = {"code": self.code, "message": self.message}
        if self.fields:
            error["fields"] = self.fields
        error.update(self.details)
        response = jsonify({"error": error})
        response.status_code = self.status
        response.headers.update(self.headers)
        return response


def response_for(exc: BaseException) -> Response:
    """Answer any exception raised while handling a request with the JSON envelope."""
    return _as_api_error(exc).response()


def _as_api_error(exc: BaseException) -> ApiError:
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, DomainError) and (status := domain_status(type(exc))) is not None:
        return _from_domain(exc, status)
    if isinstance(exc, HTTPException) and exc.code:
        allowed = getattr(exc, "valid_methods", None)
        headers = {"Allow": ", ".join(allowed)} if allowed else None
        message = (exc.description or exc.name).split("  ")[0]
        if exc.code == 413:
            message = "The request body is larger than the 1 MiB limit."
        return ApiError(exc.code, HTTP_CODES.get(exc.code, "http_error"), message, headers=headers)
    if isinstance(exc, CONTENTION):
        log.warning("contention: %s", type(exc).__name__)
        return ApiError(
            503, "busy", "Other requests hold the records this one needs; retry shortly.",
            headers={"Retry-After": "2"},
        )
    if isinstance(exc, psycopg.errors.QueryCanceled):
        # The statement timeout: this request asked for more work than one request may do. A retry
        # would fail the same way, so it is the client's to narrow, not a database outage.
        limit = current_app.extensions["settings"].db_statement_timeout_ms if has_app_context() else None
        log.warning("statement timeout", extra={"statement_timeout_ms": limit})
        return ApiError(
            422, "request_too_expensive",
            f"The request needs more than the {limit} ms of database time one request may use;"
            " ask for less at a time (a shorter span, a smaller file).",
        )
    if isinstance(exc, psycopg_pool.PoolTimeout | psycopg.OperationalError):
        log.warning("database unavailable: %s", type(exc).__name__)
        return ApiError(
            503, "service_unavailable", "The database is unavailable; retry shortly.",
            headers={"Retry-After": "2"},
        )
    log.error("unhandled error", exc_info=exc)
    return ApiError(500, "internal_error", "An unexpected error occurred.")


def domain_status(kind: type[DomainError]) -> int | None:
    """The status of a kind of domain error (None: unmapped, answered as an internal error)."""
    return next((DOMAIN_STATUS[base] for base in kind.__mro__ if base in DOMAIN_STATUS), None)


def _from_domain(exc: DomainError, status: int) -> ApiError:
    headers = {}
    if exc.retry_after is not None:
        headers["Retry-After"] = str(exc.retry_after)
    if isinstance(exc, TokenRefused):
        headers["WWW-Authenticate"] = "Bearer"
    return ApiError(status, exc.code, exc.message, fields=exc.fields, headers=headers, details=exc.details)


def init_app(app: Flask) -> None:
    """Route every error Flask itself sees (outside flask-restx) through the envelope."""
    app.register_error_handler(Exception, response_for)
