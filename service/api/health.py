"""Liveness and readiness probes."""

from __future__ import annotations

from flask_restx import Namespace, Resource

from .. import db, migrate
from ..errors import ApiError

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
    @ns.response(503, "The database is unreachable or migrations are pending")
    def get(self):
        """Check the database and the schema version (readiness)."""
        with db.connection(timeout=READY_TIMEOUT_SECONDS) as conn:
            pending = migrate.pending(conn)
        if pending:
            raise ApiError(
                503, "migrations_pending",
                f"Database migrations are pending: {', '.join(pending)}.",
            )
        return {"status": "ready"}
