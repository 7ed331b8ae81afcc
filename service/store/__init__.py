"""Data access: plain parameterised SQL, one module per table, every query scoped to its owner.

The pieces below compose statements from column names (always through sql.Identifier) and
placeholders; values never enter the SQL text.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

from psycopg import sql

# Each piece is rendered to SQL text once per distinct set of columns (the record descriptions and
# the fields a request may send bound them): quoting the identifiers again for every statement cost
# about 0.1 ms of a request's Python (docs/performance.md, issue 17).
_RENDERED = 1024


def names(columns: Iterable[str]) -> sql.Composable:
    """`a, b, c`: column names as identifiers."""
    return _names(tuple(columns))


@lru_cache(maxsize=_RENDERED)
def _names(columns: tuple[str, ...]) -> sql.Composable:
    return sql.SQL(sql.SQL(", ").join(map(sql.Identifier, columns)).as_string())


@lru_cache(maxsize=_RENDERED)
def placeholders(count: int) -> sql.Composable:
    """`%s, %s, ...`: one placeholder per value."""
    return sql.SQL(", ".join(["%s"] * count))


def assignments(columns: Iterable[str]) -> sql.Composable:
    """`a = %s, b = %s`: an UPDATE's SET list, one placeholder per column."""
    return _assignments(tuple(columns))


@lru_cache(maxsize=_RENDERED)
def _assignments(columns: tuple[str, ...]) -> sql.Composable:
    return sql.SQL(sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(name)) for name in columns).as_string())
