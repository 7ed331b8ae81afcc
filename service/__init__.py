"""A tenant's personal-finance JSON API: the Flask application factory."""

from __future__ import annotations

from flask import Flask

from . import api, db, errors, logs
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
    db.init_app(app, settings)
    api.init_app(app)
    return app
