"""What `pgbackrest info --output=json` says of a stanza: its backups, and the one a restore to an
instant starts from. The standard library only: restore_tenant.py's Kubernetes path runs without
the venv's packages, and localstack.py (the local clusters) reads the same answer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True)
class Backup:
    """One backup in a pgBackRest repository."""

    label: str
    type: str  # full, diff or incr
    started: datetime
    stopped: datetime


def backups_of(info: dict) -> list[Backup]:
    """The stanza's backups (`info` is one stanza of the JSON answer), oldest first."""
    return sorted(
        (
            Backup(
                label=entry["label"], type=entry["type"],
                started=datetime.fromtimestamp(entry["timestamp"]["start"], UTC),
                stopped=datetime.fromtimestamp(entry["timestamp"]["stop"], UTC),
            )
            for entry in info.get("backup", [])
        ),
        key=lambda backup: backup.stopped,
    )


def newest_ended_by(backups: list[Backup], instant: datetime | None) -> Backup:
    """The backup a restore to `instant` starts from: the newest that ended by then (None: the newest)."""
    return [backup for backup in backups if instant is None or backup.stopped <= instant][-1]


def listing(name: str, backups: list[Backup], window_end: str) -> str:
    """The restore window and the backups, newest first, as `restore-tenant --list` prints them."""
    lines = [f"{name}: restore window {backups[0].stopped.isoformat()} to {window_end}"]
    lines += [f"  {b.label}  {b.type:4}  {b.started.isoformat()} .. {b.stopped.isoformat()}" for b in reversed(backups)]
    return "\n".join(lines)
