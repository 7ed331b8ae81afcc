"""A tenant's personal-finance JSON API: the Flask application factory."""

from __future__ import annotations

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from . import api, db, errors, http_headers, logs, metrics
from .config import Settings

MAX_BODY_BYTES = 1024 * 1024


def create_app(settings: Settings | None = None) -> Flask:
    """Build the app for one tenant; settings come from the environment unless given."""
    settings = settings or Settings.from_env()
    logs.configure(settings.tenant_id, settings.log_level)
    app = Flask(__name__)
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
    api.init_app(app)
    if settings.trusted_proxy_hops:
        # request.remote_addr becomes the client as the outermost trusted proxy saw it, taken from
        # X-Forwarded-For (the entries the proxies appended, never one the client sent).
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trusted_proxy_hops)  # type: ignore[method-assign]
    return app
