"""The domain layer: the service's rules, one module per capability.

A domain function takes a connection (or, where it does slow work without one, the request's
connection source) and plain values, owns its transaction boundaries, and raises the errors of
`core.errors`, which `service.errors` turns into the API's envelope. It knows nothing of HTTP.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ..db import Connection


class Connections(Protocol):
    """Where a request gets its connection, and gives it back before slow work (service.db).

    Domain functions that may refuse a request before touching the database, or that hash a
    password, take this rather than a connection, so that no connection is taken (or held) for
    nothing."""

    def connection(self, timeout: float | None = None) -> Connection: ...

    def release(self) -> None: ...
