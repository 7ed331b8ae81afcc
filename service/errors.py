"""The one JSON error envelope of the API, and the exceptions that map onto it."""

from __future__ import annotations

import logging

import psycopg
import psycopg_pool
from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

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


class ApiError(Exception):
    """An error the client should see, with its status, code and message."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        fields: dict | None = None,
        headers: dict[str, str] | None = None,
        details: dict | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields
        self.headers = headers or {}
        self.details = details


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    fields: dict | None = None,
    headers: dict[str, str] | None = None,
    details: dict | None = None,
) -> Response:
    """Build the JSON envelope every 4xx and 5xx goes through."""
    error: dict = {"code": code, "message": message}
    if fields:
        error["fields"] = fields
    if details:
        error.update(details)
    response = jsonify({"error": error})
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def response_for(exc: BaseException) -> Response:
    """Turn any exception raised while handling a request into the JSON envelope."""
    if isinstance(exc, ApiError):
        return error_response(
            exc.status, exc.code, exc.message,
            fields=exc.fields, headers=exc.headers, details=exc.details,
        )
    if isinstance(exc, HTTPException) and exc.code:
        headers = {"Allow": ", ".join(exc.valid_methods)} if getattr(exc, "valid_methods", None) else None
        message = (exc.description or exc.name).split("  ")[0]
        if exc.code == 413:
            message = "The request body is larger than the 1 MiB limit."
        return error_response(exc.code, HTTP_CODES.get(exc.code, "http_error"), message, headers=headers)
    if isinstance(exc, psycopg_pool.PoolTimeout | psycopg.OperationalError):
        log.warning("database unavailable: %s", type(exc).__name__)
        return error_response(
            503, "service_unavailable", "The database is unavailable; retry shortly.",
            headers={"Retry-After": "2"},
        )
    log.error("unhandled error", exc_info=exc)
    return error_response(500, "internal_error", "An unexpected error occurred.")


def init_app(app: Flask) -> None:
    """Route every error Flask itself sees (outside flask-restx) through the envelope."""
    app.register_error_handler(Exception, response_for)
