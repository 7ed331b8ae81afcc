"""gunicorn's sync worker, made to answer every connection it was sent before it stops."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from typing import Any

from gunicorn.workers.sync import SyncWorker


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
