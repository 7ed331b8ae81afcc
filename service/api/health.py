"""Liveness and readiness probes."""

from __future__ import annotations

from flask_restx import Namespace, Resource

from .. import db, migrate
from ..errors import ApiError
from .common import settings

ns = Namespace("health", path="/", description="Probes for load balancers and Kubernetes")
READY_TIMEOUT_SECONDS = 1.0


@ns.route("/health")
class Health(Resource):
    @ns.response(200, "The process serves requests")
    def get(self):
        """Answer without touching the database (liveness)."""
        return {"status": "ok"}


@ns.route("/health/ready")
class Ready(Resource):
    @ns.response(200, "The database answers and its schema is current")
    @ns.response(503, "The database is unreachable, migrations are pending or were run for another time zone")
    def get(self):
        """Check the database and the schema version (readiness)."""
        conn = db.connection(timeout=READY_TIMEOUT_SECONDS)
        pending = migrate.pending(conn)
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
        return {"status": "ready"}
