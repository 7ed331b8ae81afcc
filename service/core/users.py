"""Users and their passwords: register, log in, change the password, delete the user.

Password hashing is slow on purpose (argon2id), so these take the request's connection source
rather than a connection: the connection goes back to the pool while a hash is computed, and a
fresh one is taken afterwards.
"""

from __future__ import annotations

from .. import metrics
from ..config import Settings
from ..security import IssuedToken, hash_password, issue_token, verify_password
from ..store import login_failures, users
from . import Connections
from .errors import Conflict, Throttled, Unauthenticated, token_revoked, user_gone
from .rate_limits import account_key


def register(db: Connections, *, username: str, password: str) -> dict:
    """Create a user; usernames are unique whatever their letter case."""
    db.release()
    password_hash = hash_password(password)
    try:
        return users.create_user(db.connection(), username=username, password_hash=password_hash)
    except users.UsernameTaken as exc:
        raise Conflict("username_taken", "This username is already taken.") from exc


def log_in(db: Connections, settings: Settings, *, username: str, password: str) -> IssuedToken:
    """Exchange a username and password for a token."""
    user = users.find_user_by_username(db.connection(), username)
    _check_password(
        db, settings, username, user, password,
        wrong="The username or password is wrong.",
        locked="Too many failed logins for this username; try again later.",
    )
    assert user is not None  # a wrong password for an unknown username was refused
    return issue_token(settings, user["id"], user["token_version"])


def change_password(
    db: Connections, settings: Settings, *, user_id: int, token_version: int, current: str, new: str
) -> IssuedToken:
    """Set a new password (the current one confirms it) and revoke every earlier token of the user;
    returns the token that replaces them."""
    user = _confirm_password(db, settings, user_id, current)
    db.release()
    new_hash = hash_password(new)
    version = users.change_password(
        db.connection(),
        user_id=user_id,
        token_version=token_version,
        old_hash=user["password_hash"],
        new_hash=new_hash,
    )
    if version is None:  # another password change (or this token's revocation) came first
        raise token_revoked()
    return issue_token(settings, user_id, version)


def delete(db: Connections, settings: Settings, *, user_id: int, token_version: int, password: str) -> None:
    """Delete the user and all of their data for good; their password confirms it."""
    _confirm_password(db, settings, user_id, password)
    if not users.delete_user(db.connection(), user_id=user_id, token_version=token_version):
        raise token_revoked()


def _confirm_password(db: Connections, settings: Settings, user_id: int, password: str) -> dict:
    """Check a logged-in user's password like a login (it counts toward the same lockout).
    Returns the user's row, password hash included: never to be shown."""
    user = users.get_credentials(db.connection(), user_id)
    if user is None:  # deleted since the token was checked
        raise user_gone()
    _check_password(
        db, settings, user["username"], user, password,
        wrong="The password is wrong.",
        locked="Too many wrong passwords for this username; try again later.",
    )
    return user


def _check_password(
    db: Connections, settings: Settings, username: str, user: dict | None, password: str, *, wrong: str, locked: str
) -> None:
    """One password attempt for `username` (login, or confirming a password change or deletion).

    The attempt is counted toward the username's lockout before the password is checked, so
    parallel guesses cannot pass the limit, and a success clears the count. `user` is None for
    an unknown username, which is checked against a dummy hash in the same time. The slow check
    runs with the connection given back.
    """
    locked_for = login_failures.begin_attempt(
        db.connection(),
        username_key=account_key(username),
        max_failures=settings.login_max_failures,
        window=settings.login_failure_window_seconds,
        lockout=settings.login_lockout_seconds,
    )
    db.release()
    if locked_for:
        metrics.login_failed("locked")
        raise Throttled("too_many_attempts", locked, retry_after=locked_for)
    if not verify_password(user["password_hash"] if user else None, password):
        metrics.login_failed("invalid_credentials")
        raise Unauthenticated("invalid_credentials", wrong)
    login_failures.clear_failures(db.connection(), username_key=account_key(username))
