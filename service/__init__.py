"""A tenant's personal-finance JSON API: the Flask application factory."""

from __future__ import annotations

from flask import Flask, Response, jsonify
from flask.globals import request_ctx
from werkzeug.middleware.proxy_fix import ProxyFix

from . import api, db, errors, http_headers, logs, metrics
from .config import Settings

MAX_BODY_BYTES = 1024 * 1024


class JsonFlask(Flask):
    """Flask whose automatic OPTIONS answer is JSON like every other one, not an empty text/html."""

    def make_default_options_response(self) -> Response:
        methods = sorted(request_ctx.url_adapter.allowed_methods())  # type: ignore[union-attr]
        response = jsonify({"allow": methods})
        response.allow.update(methods)
        return response


def create_app(settings: Settings | None = None) -> Flask:
    """Build the app for one tenant; settings come from the environment unless given."""
    settings = settings or Settings.from_env()
    logs.configure(settings.tenant_id, settings.log_level)
    app = JsonFlask(__name__)
    app.config.update(
        MAX_CONTENT_LENGTH=MAX_BODY_BYTES,
        RESTX_ERROR_404_HELP=False,
        RESTX_MASK_SWAGGER=False,
    )
    app.extensions["settings"] = settings
    errors.init_app(app)
    logs.init_app(app)
    http_headers.init_app(app, settings.cors_allowed_origins)
    db.init_app(app, settings)
    metrics.init_app(app)
    api.init_app(app, settings.tenant_id)
    if settings.trusted_proxy_hops:
        # request.remote_addr becomes the client as the outermost trusted proxy saw it, taken from
        # X-Forwarded-For (the entries the proxies appended, never one the client sent).
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trusted_proxy_hops)  # type: ignore[method-assign]
    return app
