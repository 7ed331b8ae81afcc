"""How many records of a kind one user may have: each list of them is answered whole, so it is bounded."""

from __future__ import annotations

from ..db import Connection
from ..records import Record
from ..store import owned
from .errors import Conflict


def make_room(conn: Connection, record: Record, *, user_id: int, cap: int, code: str, what: str) -> None:
    """Refuse (409 `code`) a create when the user has `cap` records already. Call it in the create's
    transaction: the user's row stays locked until it ends, so concurrent creates of one user run one
    after another and cannot pass the cap together."""
    owned.lock_user(conn, user_id=user_id)
    if owned.count(conn, record, user_id=user_id) >= cap:
        raise Conflict(code, f"A user has at most {cap} {what}; delete one you no longer use.")
