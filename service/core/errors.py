"""The errors the domain raises; `service.errors` maps each kind to its HTTP status in one place."""

from __future__ import annotations

from typing import TypeVar

T = TypeVar("T")


class DomainError(Exception):
    """A refusal the client should see: a stable code, a sentence, and optional details.

    `fields` holds per-field messages, `details` extra members of the error object, `retry_after`
    the seconds after which a retry may succeed.
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        fields: dict | None = None,
        details: dict | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.fields = fields
        self.details = details or {}
        self.retry_after = retry_after


class Invalid(DomainError):
    """The request cannot be carried out as given (400)."""


class Unauthenticated(DomainError):
    """Wrong credentials: an unknown username or a wrong password (401)."""


class TokenRefused(Unauthenticated):
    """The request's token is missing, invalid, expired or revoked, or its user is gone (401, with a
    Bearer challenge)."""


def user_gone() -> TokenRefused:
    return TokenRefused("invalid_token", "The token's user no longer exists.")


def token_revoked() -> TokenRefused:
    return TokenRefused("invalid_token", "The token has been revoked; log in again.")


class Forbidden(DomainError):
    """The token is valid but may not do this: a read-only personal access token asked to write, or
    any personal access token asked for what needs a login token (403)."""


class NotFound(DomainError):
    """No such record of this user (404); another user's record is not found either."""


class Conflict(DomainError):
    """The request contradicts the current state, e.g. a name already taken (409)."""


class Unprocessable(DomainError):
    """Well-formed but refused as a whole: invalid rows, a reused idempotency key, too much work (422)."""


class Throttled(DomainError):
    """Too many requests or attempts; retry after `retry_after` seconds (429)."""


def found(result: T | None, what: str) -> T:
    """A store's answer about one of the user's records (a row, or whether a row was deleted), or
    NotFound when there was none: another user's record is not found either."""
    if result is None or result is False:
        raise NotFound("not_found", f"No such {what}.")
    return result
