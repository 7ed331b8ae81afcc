"""Migrations are expand-only within a release (docs/architecture.md, "Migrations: expand only"):
during a rolling upgrade the old pods serve on the schema the new pods migrated, and a rollback runs
the old image on it, so a migration may add but not take away or change what running code uses.

The check reads each migration's statements (comments, quoted strings and function bodies aside) and
refuses the forms that contract the schema, unless the statement carries the reviewed marker
`-- contract: <why no running pod uses it any more>` in the comments just before it. The migrations
written before the rule keep their contractions, listed in CONTRACTED_BEFORE_THE_RULE with the reason."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

MIGRATIONS = Path(__file__).resolve().parents[2] / "service" / "migrations"

# Migrations from before the rule, each with the reason its contractions were safe then: the
# service ran one release at a time (no rolling upgrade overlapped two versions of the code).
CONTRACTED_BEFORE_THE_RULE = {
    "0004_token_revocation": "adds users.token_version with a CHECK that its default 0 meets, so older writes pass it",
    "0006_amount_checks": "adds the amounts' range checks that the API's schemas already enforced",
    "0007_set_based_insert_totals": "replaces a trigger by a set-based one in the same transaction; no code names it",
    "0008_totals_names": "renames functions and triggers that only the database itself calls",
    "0010_accounts_and_transfers": "rewrites transactions.account_id and the totals' keys while no release served",
}

MARKER = re.compile(r"--\s*contract:\s*\S")

# What contracts the schema, each with what it breaks for a pod of the previous release.
CONTRACTING = [
    # An index too: the running code's ON CONFLICT may infer a unique one.
    (re.compile(r"\bDROP\s+(TABLE|VIEW|MATERIALIZED\s+VIEW|SEQUENCE|TYPE|DOMAIN|FUNCTION|PROCEDURE|TRIGGER|SCHEMA"
                r"|INDEX(\s+CONCURRENTLY)?)"
                r"\b(?!\s+(IF\s+EXISTS\s+)?pg_temp\.)", re.I),
     "drops an object the running code may use"),
    # ALTER TABLE ... DROP [COLUMN] name: the word COLUMN is optional.
    (re.compile(r"\bDROP\s+(COLUMN\b|(?!CONSTRAINT|DEFAULT|NOT\s+NULL|TRIGGER|IDENTITY|EXPRESSION)\w+\s*(,|$))",
                re.I),
     "drops a column the running code may read or write"),
    (re.compile(r"\bDROP\s+CONSTRAINT\b", re.I), "drops a constraint (the running code's ON CONFLICT may name it)"),
    (re.compile(r"\bRENAME\b", re.I), "renames what the running code names"),
    (re.compile(r"\bALTER\s+(COLUMN\s+)?\w+\s+(SET\s+DATA\s+)?TYPE\b", re.I), "changes a column's type"),
    (re.compile(r"\bSET\s+NOT\s+NULL\b", re.I), "makes a column NOT NULL that the running code may leave empty"),
    (re.compile(r"\bADD\s+(COLUMN\s+)?(IF\s+NOT\s+EXISTS\s+)?\w+\s[^,;]*\bNOT\s+NULL\b(?![^,;]*\bDEFAULT\b)", re.I),
     "adds a NOT NULL column without a default, which the running code's inserts leave out"),
    (re.compile(r"\bADD\s+(CONSTRAINT\s+\w+\s+)?(CHECK|UNIQUE|PRIMARY\s+KEY|FOREIGN\s+KEY|EXCLUDE)\b", re.I),
     "adds a constraint to an existing table that the running code's writes may break"),
    # A column's own constraint: the running code's writes leave the column to its default (or NULL),
    # which a CHECK or a UNIQUE may refuse, and a REFERENCES with a default may point nowhere.
    (re.compile(r"\bADD\s+(COLUMN\s+)?(IF\s+NOT\s+EXISTS\s+)?\w+\s[^,;]*"
                r"\b(CHECK|UNIQUE|PRIMARY\s+KEY|REFERENCES|EXCLUDE)\b", re.I),
     "adds a column with a constraint that the running code's writes may break"),
    (re.compile(r"\bTRUNCATE\b", re.I), "empties a table"),
]
# A unique index on a table the same migration does not create: the running code's writes may break it.
UNIQUE_INDEX = re.compile(
    r"\bCREATE\s+UNIQUE\s+INDEX\b[^;]*?\bON\s+(ONLY\s+)?(?:\w+\.)?(\w+)", re.I,
)
CREATED_TABLE = re.compile(r"\bCREATE\s+(?:UNLOGGED\s+)?TABLE\s+(IF\s+NOT\s+EXISTS\s+)?(?:\w+\.)?(\w+)", re.I)


def statements(sql: str) -> list[tuple[str, str]]:
    """(the comments before it, its code) of each statement; quoted strings, dollar-quoted bodies and
    comments are left out of the code, so that a function body's own words are not the migration's."""
    found, comments, code = [], [], []
    pattern = re.compile(r"--[^\n]*|/\*.*?\*/|'(?:[^']|'')*'|(\$\w*\$).*?\1|;|[^-/'$;]+|.", re.S)
    for match in pattern.finditer(sql):
        token = match.group(0)
        if token.startswith(("--", "/*")):
            comments.append(token)
        elif token == ";":
            found.append(("\n".join(comments), "".join(code)))
            comments, code = [], []
        elif token.startswith(("'", "$")) and len(token) > 1:
            code.append(" '' ")
        else:
            code.append(token)
    if "".join(code).strip():
        found.append(("\n".join(comments), "".join(code)))
    return found


def contractions(sql: str) -> list[str]:
    """What contracts the schema in this SQL without the marker: one line each, with the statement."""
    problems = []
    found = statements(sql)
    created = {match.group(2).lower() for _, code in found for match in CREATED_TABLE.finditer(code)}
    for comments, code in found:
        if MARKER.search(comments):
            continue
        whys = [why for form, why in CONTRACTING if form.search(code)]
        index = UNIQUE_INDEX.search(code)
        if index and index.group(2).lower() not in created:
            whys.append("adds a unique index to an existing table that the running code's writes may break")
        problems += [f"{why}: {' '.join(code.split())[:120]}" for why in whys]
    return problems


def test_every_migration_is_expand_only_or_marked_as_a_reviewed_contraction():
    problems = [
        f"{path.name}: {problem}"
        for path in sorted(MIGRATIONS.glob("*.sql")) if path.stem not in CONTRACTED_BEFORE_THE_RULE
        for problem in contractions(path.read_text())
    ]
    assert not problems, (
        "a migration contracts the schema that the previous release's pods still use during a rolling upgrade"
        " (docs/architecture.md, 'Migrations: expand only'): move it to a later release, or mark the statement"
        " with `-- contract: <why no running pod uses it>` once that is true:\n" + "\n".join(problems)
    )


def test_the_migrations_from_before_the_rule_exist_and_do_contract():
    # Each exception stays needed: a file renamed, or cleaned of its contraction, leaves the list.
    for name in CONTRACTED_BEFORE_THE_RULE:
        path = MIGRATIONS / f"{name}.sql"
        assert path.exists(), name
        assert contractions(path.read_text()), f"{name} no longer contracts anything: take it off the list"


@pytest.mark.parametrize("sql", [
    "DROP TABLE payees;",
    "drop table if exists payees cascade;",
    "DROP VIEW monthly_report;",
    "DROP FUNCTION add_to_totals(bigint);",
    "DROP TRIGGER transactions_totals ON transactions;",
    "DROP TYPE transaction_kind;",
    "DROP INDEX CONCURRENTLY IF EXISTS transactions_user_date_idx;",
    "ALTER TABLE transactions DROP COLUMN note;",
    "ALTER TABLE transactions DROP note;",
    "ALTER TABLE transactions DROP COLUMN IF EXISTS note, ADD COLUMN memo text;",
    "ALTER TABLE transactions DROP CONSTRAINT transactions_amount_range;",
    "ALTER TABLE transactions RENAME COLUMN note TO memo;",
    "ALTER TABLE transactions RENAME TO entries;",
    "ALTER INDEX transactions_user_date_idx RENAME TO x;",
    "ALTER TABLE transactions ALTER COLUMN amount TYPE numeric(16, 2);",
    "ALTER TABLE transactions ALTER amount SET DATA TYPE numeric(16, 2);",
    "ALTER TABLE transactions ALTER COLUMN category SET NOT NULL;",
    "ALTER TABLE transactions ADD COLUMN memo text NOT NULL;",
    "ALTER TABLE transactions ADD memo text NOT NULL REFERENCES notes (id);",
    "ALTER TABLE transactions ADD CONSTRAINT positive CHECK (amount > 0);",
    "ALTER TABLE transactions ADD UNIQUE (user_id, description);",
    "TRUNCATE daily_totals;",
    "CREATE UNIQUE INDEX transactions_description_key ON transactions (user_id, description);",
    "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS t_key ON ONLY public.transactions (user_id, description);",
    "ALTER TABLE transactions ADD COLUMN points int NOT NULL DEFAULT 0 CHECK (points > 0);",
    "ALTER TABLE transactions ADD COLUMN reference text UNIQUE;",
    "ALTER TABLE transactions ADD COLUMN payee_id bigint DEFAULT 1 REFERENCES payees (id);",
    # A marker elsewhere in the file does not cover another statement.
    "-- contract: note unused since 0.3.0\nALTER TABLE transactions DROP COLUMN note;\nDROP TABLE payees;",
])
def test_each_contracting_form_is_caught(sql):
    assert contractions(sql), sql


@pytest.mark.parametrize("sql", [
    "CREATE TABLE payees (id bigint PRIMARY KEY, user_id bigint NOT NULL REFERENCES users (id), name text NOT NULL,"
    " UNIQUE (user_id, name));",
    "ALTER TABLE transactions ADD COLUMN memo text;",
    "ALTER TABLE transactions ADD COLUMN IF NOT EXISTS flagged boolean NOT NULL DEFAULT false;",
    "CREATE INDEX transactions_memo_idx ON transactions (user_id, memo, id);",
    # A unique index on a table the same migration creates: no running code writes it yet.
    "CREATE TABLE payees (id bigint, user_id bigint, name text);\n"
    "CREATE UNIQUE INDEX payees_name_key ON payees (user_id, lower(name));",
    "ALTER TABLE transactions ALTER COLUMN category DROP NOT NULL;",
    "ALTER TABLE transactions ALTER COLUMN memo SET DEFAULT '';",
    "ALTER TABLE transactions ALTER COLUMN memo DROP DEFAULT;",
    "SET LOCAL lock_timeout = '5s';",
    "CREATE OR REPLACE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN\n"
    "  TRUNCATE scratch; DROP TABLE IF EXISTS scratch; RETURN NULL;\nEND\n$$;",
    "COMMENT ON COLUMN transactions.memo IS 'we never DROP TABLE or RENAME this';",
    "-- We never DROP TABLE here.\nCREATE TABLE notes (id bigint);",
    "CREATE FUNCTION pg_temp.f() RETURNS int LANGUAGE sql AS 'SELECT 1';\nDROP FUNCTION pg_temp.f();",
    # The reviewed marker, in the comments just before the statement.
    "-- contract: transactions.note is unused since release 0.3.0 (replaced by memo in 0.2.0)\n"
    "ALTER TABLE transactions DROP COLUMN note;",
])
def test_expanding_statements_and_marked_contractions_pass(sql):
    assert contractions(sql) == [], sql


def test_an_empty_marker_does_not_count():
    assert contractions("-- contract:\nDROP TABLE payees;")
