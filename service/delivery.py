"""One webhook delivery over HTTP, as the Standard Webhooks specification has it, so that its official
libraries verify it (https://www.standardwebhooks.com).

A POST of compact JSON `{"type", "timestamp", "data"}` with the headers `webhook-id` (the event's
id: the same on every attempt), `webhook-timestamp` (the attempt's time, in Unix seconds) and
`webhook-signature` (`v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, keyed with the webhook's
secret, the bytes base64-encoded after `whsec_`).

The request goes to the address that service.outbound.check returned for the URL, never resolving
the name again (no DNS rebinding): the Host header carries the name, and over https the name is what
the TLS handshake asks for (SNI) and what the certificate must match. No redirect is followed (a 3xx
is a failure), a connection must be made within 5 s and the whole attempt end within 15 s (a
receiver that trickles its answer is cut off at the deadline), and at most the status line and
headers of the answer are read.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import http.client
import json
import socket
import ssl
import threading
import time
from dataclasses import dataclass

from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import ConnectTimeoutError, HTTPError, NewConnectionError, ReadTimeoutError

from .core.webhooks import SECRET_PREFIX
from .outbound import Target

USER_AGENT = "finance-service-webhooks/1"
# last_error's column holds at most this many characters.
MAX_ERROR_LENGTH = 500


@dataclass(frozen=True)
class Limits:
    """How long an attempt may take, in seconds: to connect (TLS handshake included), and in all."""

    connect: float = 5.0
    total: float = 15.0


LIMITS = Limits()


@dataclass(frozen=True)
class Outcome:
    """What came of one attempt: the receiver's status code (None when no answer came), and why it
    failed (None when it was delivered)."""

    status_code: int | None
    error: str | None

    @property
    def delivered(self) -> bool:
        return self.error is None

    @property
    def gone(self) -> bool:
        """The receiver says the webhook is no more (410 Gone): turn it off."""
        return self.status_code == 410


def failure(error: str, status_code: int | None = None) -> Outcome:
    return Outcome(status_code, error[:MAX_ERROR_LENGTH])


def body(presented: dict) -> bytes:
    """The request body: an event as clients see it (core.events.present, dumped), without its id,
    which is the webhook-id header; compact JSON in UTF-8."""
    payload = {"type": presented["type"], "timestamp": presented["timestamp"], "data": presented["data"]}
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def sign(secret: str, message_id: str, timestamp: int, payload: bytes) -> str:
    """The webhook-signature header of a delivery."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    digest = hmac.new(key, f"{message_id}.{timestamp}.".encode() + payload, hashlib.sha256).digest()
    return f"v1,{base64.b64encode(digest).decode()}"


def headers(target: Target, *, secret: str, message_id: str, payload: bytes, now: float | None = None) -> dict:
    timestamp = int(time.time() if now is None else now)
    host = f"[{target.host}]" if ":" in target.host else target.host
    default_port = 443 if target.scheme == "https" else 80
    return {
        "Host": host if target.port == default_port else f"{host}:{target.port}",
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, message_id, timestamp, payload),
    }


def send(target: Target, *, secret: str, message_id: str, payload: bytes, limits: Limits = LIMITS) -> Outcome:
    """POST one delivery to the checked target and say what came of it. Never raises for what the
    network or the receiver does."""
    deadline = time.monotonic() + limits.total
    connection: HTTPConnection
    if target.scheme == "https":
        connection = HTTPSConnection(
            target.address, target.port, timeout=limits.connect,
            server_hostname=target.host, assert_hostname=target.host, cert_reqs="CERT_REQUIRED",
        )
    else:
        connection = HTTPConnection(target.address, target.port, timeout=limits.connect)
    # The deadline holds even against a receiver that answers a byte at a time (each read's own
    # timeout would not): at the deadline the socket is shut, and the read in progress ends.
    cut_off = threading.Event()

    def cut() -> None:
        cut_off.set()
        sock = connection.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    watchdog = threading.Timer(limits.total, cut)
    watchdog.daemon = True
    watchdog.start()
    try:
        connection.connect()
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return failure("timeout")
        # Each read may take what is left of the total (urllib3 sets the connection's timeout on
        # the socket when it reads the answer).
        connection.timeout = remaining
        connection.request(
            "POST", target.path, body=payload,
            headers=headers(target, secret=secret, message_id=message_id, payload=payload),
            preload_content=False,
        )
        response = connection.getresponse()
        status = response.status
    except NewConnectionError as exc:  # a subclass of ConnectTimeoutError: first
        return failure(_connection_error(exc))
    except (ConnectTimeoutError, ReadTimeoutError, TimeoutError):
        return failure("timeout")
    except (ssl.SSLError, ssl.CertificateError) as exc:
        return failure(f"TLS: {getattr(exc, 'reason', None) or type(exc).__name__}")
    except (HTTPError, http.client.HTTPException, OSError, ValueError) as exc:
        return failure("timeout" if cut_off.is_set() else _connection_error(exc))
    finally:
        watchdog.cancel()
        connection.close()
    if 200 <= status < 300:
        return Outcome(status, None)
    if 300 <= status < 400:
        return failure(f"redirect not followed ({status})", status)
    return failure(f"HTTP {status}", status)


def _connection_error(exc: BaseException) -> str:
    """A short reason, without the receiver's address or anything it said."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, ConnectionResetError):
            return "connection reset"
        if isinstance(cause, TimeoutError | socket.timeout):
            return "timeout"
        if isinstance(cause, ssl.SSLError | ssl.CertificateError):
            return f"TLS: {getattr(cause, 'reason', None) or type(cause).__name__}"
        if isinstance(cause, http.client.RemoteDisconnected):
            return "connection closed without an answer"
        if isinstance(cause, http.client.HTTPException):
            return f"bad answer ({type(cause).__name__})"
        cause = cause.__cause__ or cause.__context__
    return f"connection failed ({type(exc).__name__})"
