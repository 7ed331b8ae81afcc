"""GET /transactions/export and POST /transactions/import: format, filters, formula-injection
defence, round trips, and the all-or-nothing validation of an upload."""

from __future__ import annotations

import csv
import io
import time

import httpx
import pytest

from tests.utils import auth_headers, count_transactions, create, user_with_headers

HEADER = ["id", "occurred_at", "type", "amount", "currency", "category", "description", "account"]
ROUND_TRIP_FIELDS = ("occurred_at", "type", "amount", "currency", "category", "description", "account")


def export(client: httpx.Client, headers: dict, **params) -> list[dict]:
    response = client.get("/transactions/export", params=params, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    reader = csv.reader(io.StringIO(response.text, newline=""))
    assert next(reader) == HEADER
    return [dict(zip(HEADER, row, strict=True)) for row in reader]


def post_csv(client: httpx.Client, headers: dict, body: str | bytes,
             content_type: str = "text/csv") -> httpx.Response:
    raw = body.encode() if isinstance(body, str) else body
    return client.post("/transactions/import", content=raw, headers={**headers, "Content-Type": content_type})


def import_csv(client: httpx.Client, headers: dict, body: str | bytes) -> int:
    response = post_csv(client, headers, body)
    assert response.status_code == 201, response.text
    return response.json()["imported"]


def without_ids(rows: list[dict]) -> list[tuple]:
    return [tuple(row[name] for name in ROUND_TRIP_FIELDS) for row in rows]


def open_account(client: httpx.Client, headers: dict, name: str, kind: str = "savings") -> dict:
    response = client.post("/accounts", json={"name": name, "kind": kind}, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def stored_accounts(db, user_id: int) -> list[tuple[str, str]]:
    """(description, account name) of each of the user's transactions, by amount."""
    rows = db.execute(
        "SELECT t.description, a.name FROM transactions t JOIN accounts a ON a.id = t.account_id"
        " WHERE t.user_id = %s ORDER BY t.amount, t.id", (user_id,)
    )
    return [(row["description"], row["name"]) for row in rows]


# --- export -----------------------------------------------------------------------------------


def test_export_is_csv_with_header_and_one_line_per_transaction(client):
    headers = auth_headers(client)
    created = create(client, headers, type="income", amount="1234.5", category="salary",
                     description="March pay", occurred_at="2026-03-01T03:00:00Z")
    response = client.get("/transactions/export", headers=headers)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    assert ".csv" in response.headers["content-disposition"]
    assert response.text.splitlines()[0] == ",".join(HEADER)
    assert export(client, headers) == [
        {
            "id": str(created["id"]),
            "occurred_at": "2026-03-01T03:00:00+00:00",
            "type": "income",
            "amount": "1234.50",
            "currency": "USD",
            "category": "salary",
            "description": "March pay",
            "account": "Main",
        }
    ]


def test_export_without_transactions_is_only_the_header(client):
    headers = auth_headers(client)
    response = client.get("/transactions/export", headers=headers)
    assert response.status_code == 200
    assert response.text.splitlines() == [",".join(HEADER)]


def test_export_of_tenant2_is_in_euros(client2):
    headers = auth_headers(client2)
    create(client2, headers, amount="3.00")
    assert [row["currency"] for row in export(client2, headers)] == ["EUR"]


def test_export_lists_oldest_first(client):
    headers = auth_headers(client)
    for day in ("2026-02-10", "2026-01-05", "2026-03-20", "2026-01-06"):
        create(client, headers, description=day, occurred_at=f"{day}T12:00:00Z")
    assert [row["description"] for row in export(client, headers)] == [
        "2026-01-05", "2026-01-06", "2026-02-10", "2026-03-20",
    ]


def test_export_contains_only_the_callers_transactions(client):
    alice, bob = auth_headers(client), auth_headers(client)
    mine = create(client, alice, description="mine")
    create(client, bob, description="theirs")
    rows = export(client, alice)
    assert [(row["id"], row["description"]) for row in rows] == [(str(mine["id"]), "mine")]


def test_export_applies_the_same_filters_as_the_list(client):
    headers = auth_headers(client)
    create(client, headers, type="income", amount="100.00", category="salary",
           description="pay", occurred_at="2026-01-31T12:00:00Z")
    create(client, headers, type="expense", amount="20.00", category="food",
           description="lunch", occurred_at="2026-02-01T05:00:00Z")  # Feb 1 00:00 in New York
    create(client, headers, type="expense", amount="35.00", category="food",
           description="dinner", occurred_at="2026-03-01T03:00:00Z")  # Feb 28 22:00 in New York
    create(client, headers, type="expense", amount="5.00", category="travel",
           description="bus", occurred_at="2026-03-01T05:00:00Z")  # Mar 1 in New York

    def described(**params) -> list[str]:
        return [row["description"] for row in export(client, headers, **params)]

    assert described(type="income") == ["pay"]
    assert described(type="expense") == ["lunch", "dinner", "bus"]
    assert described(category="food") == ["lunch", "dinner"]
    assert described(**{"from": "2026-02-01", "to": "2026-02-28"}) == ["lunch", "dinner"]
    assert described(**{"from": "2026-03-01"}) == ["bus"]
    assert described(to="2026-01-31") == ["pay"]
    assert described(min_amount="20.00", max_amount="35.00") == ["lunch", "dinner"]
    assert described(q="NNE") == ["dinner"]
    assert described(type="expense", category="food", **{"from": "2026-02-15"}) == ["dinner"]
    assert described(**{"from": "2026-02-01T05:00:00Z", "to": "2026-03-01T03:00:00Z"}) == ["lunch", "dinner"]


def test_export_list_and_export_agree_on_filtered_rows(client):
    headers = auth_headers(client)
    for index in range(5):
        create(client, headers, type="income" if index % 2 else "expense", amount=f"{index + 1}.00",
               occurred_at=f"2026-02-0{index + 1}T12:00:00Z")
    params = {"type": "expense", "from": "2026-02-02"}
    listed = client.get("/transactions", params={**params, "sort": "occurred_at"}, headers=headers).json()
    assert [str(item["id"]) for item in listed["items"]] == [row["id"] for row in export(client, headers, **params)]


@pytest.mark.parametrize(
    "params",
    [{"type": "gift"}, {"from": "yesterday"}, {"min_amount": "-1"}, {"sort": "amount"}, {"nope": "1"}],
)
def test_export_with_an_invalid_filter_is_a_400(client, params):
    headers = auth_headers(client)
    response = client.get("/transactions/export", params=params, headers=headers)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "validation_error"


@pytest.mark.parametrize("dangerous", ["=HYPERLINK(\"http://x\")", "+1+1", "-2", "@SUM(A1)", "\tTAB", "\rCR"])
def test_export_defuses_cells_that_a_spreadsheet_would_run_as_formulas(client, dangerous):
    headers = auth_headers(client)
    create(client, headers, description=dangerous, category=f"x{dangerous}")
    create(client, headers, description=dangerous, category=dangerous.strip() or "c")
    rows = export(client, headers)
    assert rows[0]["description"] == "'" + dangerous
    assert rows[0]["category"] == f"x{dangerous}"  # not at the start: left alone
    category = dangerous.strip()
    if category.startswith(("=", "+", "-", "@")):
        assert rows[1]["category"] == "'" + category


def test_export_leaves_ordinary_cells_alone(client):
    headers = auth_headers(client)
    create(client, headers, description="a = b, 1+1", category="food")
    [row] = export(client, headers)
    assert (row["description"], row["category"]) == ("a = b, 1+1", "food")


def test_export_escapes_a_leading_apostrophe_so_imports_can_tell_it_from_a_defusing_one(client):
    headers = auth_headers(client)
    create(client, headers, description="'=not a formula", occurred_at="2026-01-01T00:00:00Z")
    create(client, headers, description="'quoted", occurred_at="2026-01-02T00:00:00Z")
    assert [row["description"] for row in export(client, headers)] == ["''=not a formula", "''quoted"]


def test_import_removes_only_a_defusing_apostrophe(client, db):
    user_id, headers = user_with_headers(client)
    body = (
        "type,amount,description\n"
        "expense,1.00,'=SUM(A1)\n"
        "expense,2.00,'plain quote\n"
        "expense,3.00,''twice\n"
        "expense,4.00,it's\n"
    )
    assert import_csv(client, headers, body) == 4
    rows = db.execute("SELECT description FROM transactions WHERE user_id = %s ORDER BY amount", (user_id,))
    assert [row["description"] for row in rows] == ["=SUM(A1)", "'plain quote", "'twice", "it's"]


# --- round trips ------------------------------------------------------------------------------

TRICKY_DESCRIPTIONS = [
    "plain",
    "comma, inside",
    'say "hi", then leave',
    "first line\nsecond line",
    "windows\r\nline end",
    "café ✓ 日本語 🙂",
    "=1+1",
    "+33 6 12",
    "-5 refund",
    "@mention",
    "'=already quoted",
    "'apostrophe first",
    "''double",
    "trailing space ",
    "x" * 500,
]


def _seed_tricky(client: httpx.Client, headers: dict) -> None:
    for index, description in enumerate(TRICKY_DESCRIPTIONS):
        create(client, headers, type="income" if index % 3 == 0 else "expense",
               amount=f"{index * 7 + 0.05:.2f}", description=description,
               category=["food", "=cmd", "-neg", "unicodé"][index % 4] if index % 5 else None,
               occurred_at=f"2026-01-{index + 1:02d}T{index:02d}:30:00+01:00")
    create(client, headers, amount="0.01")  # occurred now, with microseconds; no description


def test_csv_round_trip_into_another_users_account_keeps_every_field(client, db):
    alice, alice_headers = user_with_headers(client)
    bob, bob_headers = user_with_headers(client)
    _seed_tricky(client, alice_headers)

    response = client.get("/transactions/export", headers=alice_headers)
    assert response.status_code == 200
    original = export(client, alice_headers)
    assert len(original) == len(TRICKY_DESCRIPTIONS) + 1

    assert import_csv(client, bob_headers, response.content) == len(original)
    copied = export(client, bob_headers)

    assert without_ids(copied) == without_ids(original)
    assert {row["id"] for row in copied}.isdisjoint({row["id"] for row in original})
    assert count_transactions(db, bob) == count_transactions(db, alice) == len(original)
    # The stored values, not only the CSV text, are the originals.
    stored = db.execute(
        "SELECT description FROM transactions WHERE user_id = %s AND description IS NOT NULL"
        " ORDER BY occurred_at, id", (bob,)
    ).fetchall()
    assert [row["description"] for row in stored] == TRICKY_DESCRIPTIONS


def test_csv_round_trip_into_the_same_account_after_deleting(client, db):
    user_id, headers = user_with_headers(client)
    _seed_tricky(client, headers)
    before_rows = export(client, headers)
    csv_bytes = client.get("/transactions/export", headers=headers).content
    before_api = client.get("/transactions", params={"sort": "occurred_at", "limit": 200}, headers=headers).json()

    for row in before_rows:
        assert client.delete(f"/transactions/{row['id']}", headers=headers).status_code == 204
    assert count_transactions(db, user_id) == 0

    assert import_csv(client, headers, csv_bytes) == len(before_rows)
    after_rows = export(client, headers)
    after_api = client.get("/transactions", params={"sort": "occurred_at", "limit": 200}, headers=headers).json()

    assert without_ids(after_rows) == without_ids(before_rows)
    fields = ("type", "amount", "category", "description", "occurred_at")
    assert [tuple(i[f] for f in fields) for i in after_api["items"]] == [
        tuple(i[f] for f in fields) for i in before_api["items"]
    ]


def test_round_trip_through_multipart_upload(client):
    _, alice = user_with_headers(client)
    _, bob = user_with_headers(client)
    create(client, alice, description="a, \"b\"\nc", category="=x", occurred_at="2026-02-01T00:00:00Z")
    csv_bytes = client.get("/transactions/export", headers=alice).content

    response = client.post("/transactions/import", files={"file": ("export.csv", csv_bytes, "text/csv")},
                           headers=bob)

    assert response.status_code == 201, response.text
    assert response.json() == {"imported": 1}
    assert without_ids(export(client, bob)) == without_ids(export(client, alice))


# --- the account column -----------------------------------------------------------------------


def test_export_names_each_rows_account_last_and_defuses_it(client):
    headers = auth_headers(client)
    savings = open_account(client, headers, "Savings")
    formula = open_account(client, headers, "=Cash, \"petty\"", kind="cash")
    create(client, headers, description="main", occurred_at="2026-01-01T00:00:00Z")
    create(client, headers, description="saved", account_id=savings["id"], occurred_at="2026-01-02T00:00:00Z")
    create(client, headers, description="cash", account_id=formula["id"], occurred_at="2026-01-03T00:00:00Z")
    response = client.get("/transactions/export", headers=headers)
    assert response.text.splitlines()[0].endswith(",description,account")
    assert [(row["description"], row["account"]) for row in export(client, headers)] == [
        ("main", "Main"), ("saved", "Savings"), ("cash", "'=Cash, \"petty\""),
    ]
    assert [row["description"] for row in export(client, headers, account_id=savings["id"])] == ["saved"]


def test_import_finds_the_account_by_name_in_any_letter_case_and_a_blank_one_is_the_default(client, db):
    user_id, headers = user_with_headers(client)
    open_account(client, headers, "Savings")
    open_account(client, headers, "=Cash", kind="cash")
    body = (
        "type,amount,description,account\n"
        "expense,1.00,exact,Savings\n"
        "expense,2.00,lower,savings\n"
        "expense,3.00,upper,SAVINGS\n"
        "expense,4.00,blank,\n"
        "expense,5.00,default by name,mAIN\n"
        "expense,6.00,defused as exported,'=Cash\n"
        "expense,7.00,as written,=CASH\n"
    )
    assert import_csv(client, headers, body) == 7
    assert stored_accounts(db, user_id) == [
        ("exact", "Savings"), ("lower", "Savings"), ("upper", "Savings"), ("blank", "Main"),
        ("default by name", "Main"), ("defused as exported", "=Cash"), ("as written", "=Cash"),
    ]
    # Without the column every row goes to the default account, as before accounts.
    assert import_csv(client, headers, "type,amount,description\nincome,8.00,no column\n") == 1
    assert stored_accounts(db, user_id)[-1] == ("no column", "Main")


def test_import_naming_an_unknown_or_archived_account_lists_those_rows_and_imports_nothing(client, db):
    user_id, headers = user_with_headers(client)
    _, other = user_with_headers(client)
    open_account(client, other, "Theirs")  # another user's name is no account of this user's
    old = open_account(client, headers, "Old")
    assert client.patch(f"/accounts/{old['id']}", json={"archived": True}, headers=headers).status_code == 200
    create(client, headers, amount="1.00")  # already there, must stay alone
    body = (
        "type,amount,account\n"  # line 1
        "expense,1.00,Main\n"  # line 2
        "expense,2.00,Nowhere\n"  # line 3
        "expense,3.00,Theirs\n"  # line 4
        "expense,4.00,old\n"  # line 5: archived
        "expense,-5.00,Nowhere\n"  # line 6: two errors in one row
        f"expense,6.00,{'x' * 65}\n"  # line 7: longer than any name
        "expense,7.00,Ma\x00in\n"  # line 8: a NUL no name can hold
    )
    response = post_csv(client, headers, body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_rows"
    assert error["rows"] == [
        {"row": 3, "fields": {"account": ["No such account."]}},
        {"row": 4, "fields": {"account": ["No such account."]}},
        {"row": 5, "fields": {"account": ["The account is archived: it takes no new transactions."]}},
        {"row": 6, "fields": {"amount": ["Must be greater than 0 and at most 999999999999.99."],
                              "account": ["No such account."]}},
        {"row": 7, "fields": {"account": ["No such account."]}},
        {"row": 8, "fields": {"account": ["No such account."]}},
    ]
    assert count_transactions(db, user_id) == 1


def test_a_round_trip_keeps_each_rows_account(client, db):
    """Into the same user after deleting: the same accounts; into another user: theirs of the
    same names, whatever their letter case."""
    alice, alice_headers = user_with_headers(client)
    bob, bob_headers = user_with_headers(client)
    names = ["Savings", "Card, \"gold\"", "@broker", "\U0001F4B0" * 64]
    accounts = [open_account(client, alice_headers, name) for name in names]
    for name in names:
        open_account(client, bob_headers, name.upper())
    _seed_tricky(client, alice_headers)
    for index, account in enumerate(accounts):
        create(client, alice_headers, amount=f"{index + 1}.11", description=f"in {index}", account_id=account["id"],
               occurred_at=f"2026-02-0{index + 1}T00:00:00Z")
    before = export(client, alice_headers)
    assert {row["account"] for row in before} == {"Main", "Savings", "Card, \"gold\"", "'@broker", "\U0001F4B0" * 64}
    csv_bytes = client.get("/transactions/export", headers=alice_headers).content
    stored_before = stored_accounts(db, alice)

    assert import_csv(client, bob_headers, csv_bytes) == len(before)
    assert stored_accounts(db, bob) == [
        (description, "Main" if name == "Main" else name.upper()) for description, name in stored_before
    ]

    for row in before:
        assert client.delete(f"/transactions/{row['id']}", headers=alice_headers).status_code == 204
    assert import_csv(client, alice_headers, csv_bytes) == len(before)
    assert without_ids(export(client, alice_headers)) == without_ids(before)
    assert stored_accounts(db, alice) == stored_before


# --- import: accepted uploads -----------------------------------------------------------------


def test_import_text_csv_body_creates_every_row(client, db):
    user_id, headers = user_with_headers(client)
    body = (
        "occurred_at,type,amount,category,description\n"
        "2026-01-02T10:00:00-05:00,income,100,salary,January\n"
        "2026-01-03T10:00:00Z,expense,12.5,,\n"
    )
    response = post_csv(client, headers, body)
    assert response.status_code == 201, response.text
    assert response.json() == {"imported": 2}
    rows = db.execute(
        "SELECT type, amount::text AS amount, category, description, occurred_at FROM transactions"
        " WHERE user_id = %s ORDER BY occurred_at", (user_id,)
    ).fetchall()
    assert [(r["type"], r["amount"], r["category"], r["description"]) for r in rows] == [
        ("income", "100.00", "salary", "January"),
        ("expense", "12.50", None, None),
    ]
    assert rows[0]["occurred_at"].isoformat() == "2026-01-02T15:00:00+00:00"


def test_import_multipart_file_field_creates_every_row(client, db):
    user_id, headers = user_with_headers(client)
    body = b"type,amount\nexpense,1.00\nexpense,2.00\nincome,3.00\n"
    response = client.post("/transactions/import", files={"file": ("t.csv", body, "text/csv")}, headers=headers)
    assert response.status_code == 201, response.text
    assert response.json() == {"imported": 3}
    assert count_transactions(db, user_id) == 3


def test_import_multipart_without_file_field_is_a_400(client, db):
    user_id, headers = user_with_headers(client)
    response = client.post("/transactions/import", files={"other": ("t.csv", b"type,amount\nexpense,1\n")},
                           headers=headers)
    assert response.status_code == 400
    assert "file" in response.json()["error"]["fields"]
    assert count_transactions(db, user_id) == 0


def test_import_accepts_columns_in_any_order_with_bom_and_crlf(client, db):
    user_id, headers = user_with_headers(client)
    body = "\ufeffamount,description,type\r\n5.00,\"with, comma\",expense\r\n"
    assert import_csv(client, headers, body) == 1
    assert db.execute("SELECT description FROM transactions WHERE user_id = %s",
                      (user_id,)).fetchone()["description"] == "with, comma"


def test_import_accepts_a_currency_column_of_the_tenants_currency(client, db):
    user_id, headers = user_with_headers(client)
    assert import_csv(client, headers, "type,amount,currency\nexpense,1.00,USD\nexpense,2.00,\n") == 2
    assert count_transactions(db, user_id) == 2


def test_import_into_tenant2_expects_euros(client2):
    headers = auth_headers(client2)
    assert post_csv(client2, headers, "type,amount,currency\nexpense,1.00,EUR\n").status_code == 201
    response = post_csv(client2, headers, "type,amount,currency\nexpense,1.00,USD\n")
    assert response.status_code == 422
    assert response.json()["error"]["rows"] == [{"row": 2, "fields": {"currency": ["Must be EUR."]}}]


def test_imported_rows_belong_only_to_the_importer(client, db):
    alice, alice_headers = user_with_headers(client)
    bob, _ = user_with_headers(client)
    import_csv(client, alice_headers, "type,amount\nincome,9.00\n")
    assert count_transactions(db, alice) == 1
    assert count_transactions(db, bob) == 0


def test_import_trims_category_and_treats_a_blank_one_as_none(client, db):
    user_id, headers = user_with_headers(client)
    assert import_csv(client, headers, "type,amount,category\nexpense,1.00,  food \nexpense,2.00,   \n") == 2
    rows = db.execute("SELECT category FROM transactions WHERE user_id = %s ORDER BY amount", (user_id,))
    assert [row["category"] for row in rows] == ["food", None]


# --- import: refused uploads, nothing stored --------------------------------------------------


def test_invalid_rows_are_listed_by_line_number_and_nothing_is_imported(client, db):
    user_id, headers = user_with_headers(client)
    create(client, headers, amount="1.00")  # already there, must stay alone
    body = (
        "occurred_at,type,amount,description\n"  # line 1
        "2026-01-01T10:00:00Z,expense,10.00,fine\n"  # line 2
        "2026-01-01T10:00:00Z,expense,abc,bad amount\n"  # line 3
        "2026-01-01T10:00:00Z,gift,1.00,bad type\n"  # line 4
        "\"2026-01-01T10:00:00Z\",income,2.00,\"two\nlines\"\n"  # lines 5-6, fine
        "2026-01-01T10:00:00,expense,1.00,naive date\n"  # line 7
        "2026-01-01T10:00:00Z,expense,1.00,too,many\n"  # line 8
        "2026-01-01T10:00:00Z,expense\n"  # line 9: too few
        "2026-01-01T10:00:00Z,expense,1.234,three places\n"  # line 10
        "2026-01-01T10:00:00Z,income,0,zero\n"  # line 11
        "2026-01-01T10:00:00Z,expense,5.00,fine again\n"  # line 12
    )
    response = post_csv(client, headers, body)

    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_rows"
    assert error["message"]
    rows = {entry["row"]: entry["fields"] for entry in error["rows"]}
    assert sorted(rows) == [3, 4, 7, 8, 9, 10, 11]
    assert set(rows[3]) == {"amount"}
    assert set(rows[4]) == {"type"}
    assert set(rows[7]) == {"occurred_at"}
    assert set(rows[8]) == {"_row"}
    assert set(rows[9]) == {"_row"}
    assert set(rows[10]) == {"amount"}
    assert set(rows[11]) == {"amount"}
    assert all(isinstance(messages, list) and messages for f in rows.values() for messages in f.values())
    assert count_transactions(db, user_id) == 1


def test_one_invalid_row_among_many_valid_ones_imports_nothing(client, db):
    user_id, headers = user_with_headers(client)
    lines = ["type,amount"] + ["expense,1.00"] * 500 + ["expense,-1.00"] + ["income,2.00"] * 10
    response = post_csv(client, headers, "\n".join(lines) + "\n")
    assert response.status_code == 422
    assert response.json()["error"]["rows"] == [
        {"row": 502, "fields": {"amount": ["Must be greater than 0 and at most 999999999999.99."]}}
    ]
    assert count_transactions(db, user_id) == 0


def test_a_megabyte_of_invalid_rows_is_refused_quickly_with_the_first_100_listed(client, db):
    user_id, headers = user_with_headers(client)
    body = b"type,amount\n" + b"x,y\n" * ((1024 * 1024 - 12) // 4)
    started = time.monotonic()
    response = post_csv(client, headers, body)
    elapsed = time.monotonic() - started
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_rows"
    assert [entry["row"] for entry in error["rows"]] == list(range(2, 102))
    assert set(error["rows"][0]["fields"]) == {"type", "amount"}
    # Validating all 262,141 rows took about 25 s, close to the 30 s worker timeout.
    assert elapsed < 10
    assert count_transactions(db, user_id) == 0


def test_malformed_csv_quoting_is_reported_as_an_invalid_row(client, db):
    user_id, headers = user_with_headers(client)
    response = post_csv(client, headers, 'type,amount,description\nexpense,1.00,ok\nexpense,2.00,"open')
    assert response.status_code == 422, response.text
    rows = response.json()["error"]["rows"]
    assert [set(entry["fields"]) for entry in rows] == [{"_row"}]
    assert count_transactions(db, user_id) == 0


def test_a_row_missing_a_required_value_is_invalid(client, db):
    user_id, headers = user_with_headers(client)
    response = post_csv(client, headers, "type,amount,description\nexpense,,no amount\n,3.00,no type\n")
    assert response.status_code == 422
    rows = {entry["row"]: entry["fields"] for entry in response.json()["error"]["rows"]}
    assert set(rows) == {2, 3}
    assert "amount" in rows[2]
    assert "type" in rows[3]
    assert count_transactions(db, user_id) == 0


def test_a_currency_cell_of_another_currency_is_a_422(client, db):
    user_id, headers = user_with_headers(client)
    response = post_csv(client, headers, "type,amount,currency\nexpense,1.00,USD\nexpense,2.00,EUR\n")
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_rows"
    assert response.json()["error"]["rows"] == [{"row": 3, "fields": {"currency": ["Must be USD."]}}]
    assert count_transactions(db, user_id) == 0


@pytest.mark.parametrize(
    "header",
    [
        "type,amount,colour",  # unknown column
        "type,description",  # no amount column
        "amount,description",  # no type column
        "type,amount,amount",  # a column twice
        "Type,Amount",  # names are exact
    ],
)
def test_a_header_without_known_type_and_amount_columns_is_invalid_csv(client, db, header):
    user_id, headers = user_with_headers(client)
    response = post_csv(client, headers, f"{header}\nexpense,1.00,x\n")
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "invalid_csv"
    assert count_transactions(db, user_id) == 0


@pytest.mark.parametrize(
    "body", [b"type,amount,description\nexpense,1.00,caf\xe9\n", b""], ids=["non-utf8-bytes", "empty-body"]
)
def test_a_body_that_is_not_utf8_csv_text_is_invalid_csv(client, db, body):
    user_id, headers = user_with_headers(client)
    response = post_csv(client, headers, body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_csv"
    assert count_transactions(db, user_id) == 0


def test_a_header_without_rows_is_a_422(client, db):
    user_id, headers = user_with_headers(client)
    response = post_csv(client, headers, "type,amount\n")
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "empty_import"
    assert count_transactions(db, user_id) == 0


@pytest.mark.parametrize("content_type", ["application/json", "text/plain", "application/octet-stream"])
def test_import_of_another_content_type_is_a_415(client, db, content_type):
    user_id, headers = user_with_headers(client)
    response = post_csv(client, headers, "type,amount\nexpense,1.00\n", content_type=content_type)
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"
    assert count_transactions(db, user_id) == 0


def test_import_of_json_body_is_a_415(client):
    headers = auth_headers(client)
    response = client.post("/transactions/import", json=[{"type": "expense", "amount": "1.00"}], headers=headers)
    assert response.status_code == 415


def _oversized() -> bytes:
    line = b"expense,1.00,padding padding padding padding padding padding padding padding\n"
    return b"type,amount,description\n" + line * (1024 * 1024 // len(line) + 1)


def test_import_over_one_mib_is_a_413(client, db):
    user_id, headers = user_with_headers(client)
    body = _oversized()
    assert len(body) > 1024 * 1024
    response = post_csv(client, headers, body)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert count_transactions(db, user_id) == 0


def test_multipart_import_over_one_mib_is_a_413(client, db):
    user_id, headers = user_with_headers(client)
    response = client.post("/transactions/import", files={"file": ("big.csv", _oversized(), "text/csv")},
                           headers=headers)
    assert response.status_code == 413
    assert count_transactions(db, user_id) == 0


def test_import_just_under_one_mib_is_accepted(client, db):
    user_id, headers = user_with_headers(client)
    header, line = b"type,amount,description\n", b"expense,1.00," + b"d" * 480 + b"\n"
    body = header + line * ((1024 * 1024 - len(header)) // len(line))
    assert 1024 * 1024 - len(line) < len(body) <= 1024 * 1024
    response = post_csv(client, headers, body)
    assert response.status_code == 201, response.text
    assert count_transactions(db, user_id) == response.json()["imported"] == body.count(b"\n") - 1
