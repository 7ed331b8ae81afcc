"""Liveness and readiness probes. Both name the tenant and the version answering, so that a
script can tell that the server on a port is the tenant it expects (scripts/dev, scripts/fleet)."""

from __future__ import annotations

import importlib.metadata
import os

from flask_restx import Namespace, Resource

from .. import db, migrate
from ..errors import ApiError
from .common import settings
from .docs import refusal

ns = Namespace("health", path="/", description="Probes for load balancers and Kubernetes")
READY_TIMEOUT_SECONDS = 1.0


def _version() -> str:
    """The image's version (SERVICE_VERSION, set by the Dockerfile from its VERSION), else the
    installed package's (a checkout), else "unknown"."""
    try:
        return os.environ.get("SERVICE_VERSION") or importlib.metadata.version("finance-service")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


VERSION = _version()


@ns.route("/health")
class Health(Resource):
    @ns.response(200, "The process serves requests")
    def get(self):
        """Answer without touching the database (liveness), naming the tenant and the version."""
        return {"status": "ok", "tenant": settings().tenant_id, "version": VERSION}


@ns.route("/health/ready")
class Ready(Resource):
    @ns.response(200, "The database answers and its schema is current")
    @refusal(
        ns, 503,
        "The database is unreachable (service_unavailable), migrations are pending or were run for another time"
        " zone (migrations_pending)",
        "service_unavailable", "migrations_pending",
    )
    def get(self):
        """Check the database and the schema version (readiness)."""
        conn = db.connection(timeout=READY_TIMEOUT_SECONDS)
        applied = migrate.applied(conn)
        pending = [version for version in migrate.KNOWN_VERSIONS if version not in applied]
        rollup_timezone = None if pending else migrate.rollup_timezone(conn)
        if pending:
            raise ApiError(
                503, "migrations_pending",
                f"Database migrations are pending: {', '.join(pending)}.",
            )
        if rollup_timezone != settings().timezone.key:
            raise ApiError(
                503, "migrations_pending",
                f"Daily totals are kept in {rollup_timezone}, not TENANT_TIMEZONE {settings().timezone.key}:"
                " run `python -m service migrate` with this TENANT_TIMEZONE.",
            )
        return {
            "status": "ready", "tenant": settings().tenant_id, "version": VERSION, "schema_version": applied[-1],
        }
