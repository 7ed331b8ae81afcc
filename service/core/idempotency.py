"""Idempotent creates: a retry with the same Idempotency-Key gets the first result, never a second record.

Any create uses it in one call: `once(conn, user_id=..., key=..., operation=..., request=data,
record=RECORD, perform=lambda: store.create_x(...), refused=...)`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable

from ..db import Connection
from ..records import Record
from ..store import idempotency_keys
from .errors import Invalid, Unprocessable

# A key is 1 to 255 visible ASCII characters.
KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


def once(
    conn: Connection,
    *,
    user_id: int,
    key: str | None,
    operation: str,
    request: dict,
    record: Record,
    perform: Callable[[], dict | None],
    refused: Callable[[], None] | None = None,
) -> tuple[dict, bool]:
    """Run `perform` (which creates one `record` row and returns it, or None when it wrote nothing)
    at most once per key; when it wrote nothing, `refused` raises the domain error that says why
    (a `perform` that always writes or raises needs none).

    Returns the row and whether it is a replay: a retry with the same key, operation and request
    gets the first row as it was then. The claim of the key, the row and the kept result commit
    together or not at all; a concurrent retry waits for the first to finish. Without a key,
    `perform` simply runs (in autocommit: one that writes more than one statement opens its own
    `conn.transaction()`, which becomes a savepoint when a key is given).
    """
    if key is None:
        return _created(perform, refused), False
    if not KEY.match(key):
        raise Invalid("invalid_idempotency_key", "Idempotency-Key must be 1 to 255 visible ASCII characters.")
    request_hash = hashlib.sha256(json.dumps(request, sort_keys=True, default=str).encode()).hexdigest()
    with conn.transaction():
        earlier = idempotency_keys.claim(
            conn, user_id=user_id, key=key, operation=operation, request_hash=request_hash
        )
        if earlier is not None:
            if (earlier["operation"], earlier["request_hash"]) != (operation, request_hash):
                raise Unprocessable(
                    "idempotency_key_reused", "This Idempotency-Key was used with a different request body."
                )
            return record.from_json(earlier["result"]), True
        row = _created(perform, refused)
        idempotency_keys.save_result(conn, user_id=user_id, key=key, result=record.to_json(row))
    return row, False


def _created(perform: Callable[[], dict | None], refused: Callable[[], None] | None) -> dict:
    row = perform()
    if row is None:
        if refused is not None:
            refused()
        raise AssertionError("a create wrote nothing, and nothing refused it")
    return row
