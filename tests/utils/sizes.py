"""What the buffering proxies in front of gunicorn must hold: nginx's size values and the largest
answer the API gives, a CSV export at its bounds."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from service import csvio

# The longest texts a transaction may hold, in characters (README, POST /transactions), and the
# longest name of its account (POST /accounts), which the export writes too.
MAX_CATEGORY_CHARS = 64
MAX_DESCRIPTION_CHARS = 500
MAX_ACCOUNT_NAME_CHARS = 64

_NGINX_SIZE = re.compile(r"(\d+)([kKmMgG]?)")


def nginx_size(value: str) -> int:
    """Bytes of an nginx size ("8192", "16k", "256m", "1g")."""
    match = _NGINX_SIZE.fullmatch(value.strip())
    assert match, f"{value!r} is not an nginx size"
    return int(match.group(1)) * 1024 ** " kmg".index(match.group(2).lower() or " ")


def largest_export_line() -> bytes:
    """The longest CSV line one transaction can make: the largest id and amount, the longest
    instant, and every text at its length limit in four-byte characters."""
    row = {
        "id": 2**63 - 1,
        "occurred_at": datetime(2999, 12, 31, 23, 59, 59, 999999, tzinfo=timezone(-timedelta(hours=9, minutes=30))),
        "type": "expense",
        "amount": Decimal("999999999999.99"),
        "category": "\U0001f4b8" * MAX_CATEGORY_CHARS,
        "description": "\U0001f4b8" * MAX_DESCRIPTION_CHARS,
        "account": "\U0001f4b8" * MAX_ACCOUNT_NAME_CHARS,
    }
    _, line = csvio.export_lines([row], "USD")
    return line.encode()


def largest_export_bytes() -> int:
    """An upper bound of the bytes of one CSV export: its rows stop at MAX_EXPORT_ROWS and at
    MAX_EXPORT_BYTES (service/csvio.py), whichever comes first; then the header."""
    header = next(csvio.export_lines([], "USD")).encode()
    rows = min(csvio.MAX_EXPORT_ROWS * len(largest_export_line()), csvio.MAX_EXPORT_BYTES)
    return len(header) + rows
