"""Data access: plain parameterised SQL, one module per table, every query scoped to its owner.

The pieces below compose statements from column names (always through sql.Identifier) and
placeholders; values never enter the SQL text.
"""

from __future__ import annotations

from collections.abc import Iterable

from psycopg import sql


def names(columns: Iterable[str]) -> sql.Composable:
    """`a, b, c`: column names as identifiers."""
    return sql.SQL(", ").join(map(sql.Identifier, columns))


def placeholders(count: int) -> sql.Composable:
    """`%s, %s, ...`: one placeholder per value."""
    return sql.SQL(", ").join(sql.Placeholder() * count)


def assignments(columns: Iterable[str]) -> sql.Composable:
    """`a = %s, b = %s`: an UPDATE's SET list, one placeholder per column."""
    return sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(name)) for name in columns)
