"""Response headers every answer carries, and CORS for the tenant's allowed browser origins only.

One after_request hook, with every value computed once at start: it sets a few headers per
response and, when CORS is on, compares the Origin header with a frozenset.

- `X-Content-Type-Options: nosniff` and `Cache-Control: no-store` on every response: bodies are
  per-user data, never to be kept by a browser or a proxy cache, nor read as another media type.
- CORS is off (no Access-Control-* header ever) unless CORS_ALLOWED_ORIGINS lists origins. Then a
  request whose Origin is listed, exactly, gets `Access-Control-Allow-Origin` echoing it; a
  preflight (OPTIONS with Access-Control-Request-Method, answered by Flask's automatic OPTIONS
  response) also gets the allowed methods and request headers. Any other origin gets nothing.
  Every response then carries `Vary: Origin`, since its CORS headers depend on the Origin: a
  cache must not give one origin's answer to another. Tokens travel in headers, never in
  cookies, so credentials mode is never allowed.
"""

from __future__ import annotations

from collections.abc import Set

from flask import Flask, Response, request

ALWAYS = (("X-Content-Type-Options", "nosniff"), ("Cache-Control", "no-store"))
ALLOWED_METHODS = "GET, POST, PATCH, DELETE"
ALLOWED_HEADERS = "Authorization, Content-Type, x-access-token, Idempotency-Key, X-Request-ID"
# Response headers a cross-origin script may read besides the CORS-safelisted ones.
EXPOSED_HEADERS = "Location, Retry-After, X-Request-ID, Idempotent-Replayed, Content-Disposition"
# How long a browser may reuse a preflight answer.
PREFLIGHT_MAX_AGE_SECONDS = "600"


def init_app(app: Flask, allowed_origins: Set[str]) -> None:
    """Register the one hook: security headers always, CORS headers for allowed origins."""
    if not allowed_origins:

        @app.after_request
        def secure(response: Response) -> Response:
            headers = response.headers
            for name, value in ALWAYS:
                headers[name] = value
            return response

        return

    origins = frozenset(allowed_origins)
    preflight = (
        ("Access-Control-Allow-Methods", ALLOWED_METHODS),
        ("Access-Control-Allow-Headers", ALLOWED_HEADERS),
        ("Access-Control-Max-Age", PREFLIGHT_MAX_AGE_SECONDS),
    )

    @app.after_request
    def secure_and_cors(response: Response) -> Response:
        headers = response.headers
        for name, value in ALWAYS:
            headers[name] = value
        headers.add("Vary", "Origin")
        # The WSGI environ directly: a third of the cost of request.headers.
        environ = request.environ
        origin = environ.get("HTTP_ORIGIN")
        if origin in origins:
            headers["Access-Control-Allow-Origin"] = origin
            if environ["REQUEST_METHOD"] == "OPTIONS" and "HTTP_ACCESS_CONTROL_REQUEST_METHOD" in environ:
                for name, value in preflight:
                    headers[name] = value
            else:
                headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
        return response
