"""gunicorn's sync worker, made to answer every connection it was sent before it stops."""

from __future__ import annotations

import contextlib
import json
import re
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from gunicorn import util
from gunicorn.http import wsgi
from gunicorn.workers.sync import SyncWorker

# What gunicorn's refusals say, by status: a fixed sentence, never the bytes the client sent.
_REFUSALS = {
    400: "The request is not valid HTTP.",
    403: "The request is refused.",
    414: "The request line is longer than the server accepts.",
    417: "The Expect header is not supported.",
    431: "The request headers are larger than the server accepts.",
    501: "The request's transfer coding is not supported.",
}


def write_json_error(sock: Any, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn's answer to a request it cannot parse (an over-long request line, broken headers),
    in the service's JSON error envelope instead of gunicorn's HTML page, with the headers every
    answer of the app carries. Same signature as gunicorn.util.write_error, which
    service/gunicorn.conf.py replaces with it. `mesg` quotes the client's bytes: it is not sent."""
    code = re.sub(r"[^a-z0-9]+", "_", reason.lower()).strip("_") or "bad_request"
    message = _REFUSALS.get(status_int, "The server could not handle the request.")
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nServer: {wsgi.SERVER}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nX-Content-Type-Options: nosniff\r\nCache-Control: no-store\r\n"
        f"X-Request-ID: {uuid.uuid4().hex}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    util.write_nonblock(sock, head.encode("latin-1") + body)


class _Closed:
    """Stands for a listening socket closed meanwhile: gunicorn asks it only for its address."""

    def __init__(self, address: Any) -> None:
        self.address = address

    def getsockname(self) -> Any:
        return self.address


class DrainingSyncWorker(SyncWorker):
    """On SIGTERM gunicorn's sync worker finishes its request and exits. But every worker keeps
    the shared listening socket open until it exits, so the kernel went on queueing connections,
    then reset them unanswered (a 502 behind a proxy), along with those that had been waiting for
    a busy worker before SIGTERM.

    Once told to stop, this worker takes every connection queued so far and closes its copy of the
    socket (when every worker has, new connections are refused: a client or a proxy can retry
    those elsewhere), then answers the connections it took. A busy worker does so as soon as its
    request's response is ready, before sending it, so that its client's next connection finds
    the socket closed. Only a connection arriving in the instant between the last worker's final
    accept and its close is still reset.
    """

    taken: list[tuple[_Closed, Any, Any]] | None = None  # None: still listening
    wsgi: Callable[..., Iterable[bytes]]

    def load_wsgi(self) -> None:
        super().load_wsgi()
        app = self.wsgi

        def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            response = app(environ, start_response)
            # gunicorn has read the listener's address already; the config binds one address.
            if not self.alive and len(self.sockets) == 1:
                self.stop_listening()
            return response

        self.wsgi = wsgi

    def stop_listening(self) -> None:
        """Take every connection queued on the listening sockets, then close this worker's copies."""
        if self.taken is not None:
            return
        self.taken = []
        for listener in self.sockets:
            closed = _Closed(listener.getsockname())
            with contextlib.suppress(OSError):  # BlockingIOError: nothing more is queued
                while True:
                    client, address = listener.accept()
                    self.taken.append((closed, client, address))
            listener.close()

    def run(self) -> None:
        super().run()
        self.stop_listening()
        for closed, client, address in self.taken or ():
            self.notify()
            client.setblocking(True)
            self.handle(closed, client, address)
