"""Money accounts over HTTP (issue 13): create, list, read, change, delete, the default account,
archiving, transactions in accounts, per-account analytics, other users' accounts, and balances
exact to the cent after any mix of writes."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest

from tests.utils import (
    PASSWORD,
    assert_error,
    bearer,
    check_totals,
    count_transactions,
    create,
    insert_user,
    login,
    user_with_headers,
)
from tests.utils.accounts import (
    ACCOUNT_FIELDS,
    KINDS,
    MISSING_ID,
    account_list,
    all_accounts,
    assert_balances_exact,
    balances,
    default_account,
    get_account,
    move,
    open_account,
    validation_error,
    walk,
)


def _stored_accounts(db, user_id: int) -> list[dict]:
    return db.execute("SELECT * FROM accounts WHERE user_id = %s ORDER BY id", (user_id,)).fetchall()


def _names(listed: dict) -> list[str]:
    return [item["name"] for item in listed["items"]]


# --- the default account -----------------------------------------------------------------------


def test_registration_gives_exactly_one_default_account_named_main(client, db):
    user_id, headers = user_with_headers(client)
    listed = account_list(client, headers)
    assert set(listed) == {"items", "total_balance"}
    (main,) = listed["items"]
    assert set(main) == ACCOUNT_FIELDS
    assert (main["name"], main["kind"], main["is_default"], main["archived"]) == ("Main", "checking", True, False)
    assert (main["opening_balance"], main["balance"], main["currency"]) == ("0.00", "0.00", "USD")
    assert listed["total_balance"] == "0.00"
    stored = _stored_accounts(db, user_id)
    assert [(row["id"], row["is_default"]) for row in stored] == [(main["id"], True)]


def test_a_user_made_without_the_api_gets_a_main_account_too(client, db):
    user_id = insert_user(db)
    other_id = insert_user(db)
    for owner in (user_id, other_id):
        (row,) = _stored_accounts(db, owner)
        assert (row["name"], row["kind"], row["is_default"]) == ("Main", "checking", True)
    username = db.execute("SELECT username FROM users WHERE id = %s", (user_id,)).fetchone()["username"]
    headers = bearer(login(client, username, PASSWORD))
    assert _names(account_list(client, headers)) == ["Main"]


def test_tenant2_accounts_show_its_currency(client2):
    _, headers = user_with_headers(client2)
    assert account_list(client2, headers)["items"][0]["currency"] == "EUR"
    assert open_account(client2, headers, "Cash", "cash", opening_balance="5")["currency"] == "EUR"


# --- create ------------------------------------------------------------------------------------


def test_create_is_201_with_every_field_and_a_location_that_reads_it_back(client, db):
    user_id, headers = user_with_headers(client)
    before = datetime.now(UTC)
    response = client.post(
        "/accounts", json={"name": "Savings", "kind": "savings", "opening_balance": "1500.25"}, headers=headers
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == ACCOUNT_FIELDS
    assert isinstance(body["id"], int)
    assert body["name"] == "Savings" and body["kind"] == "savings"
    assert body["opening_balance"] == body["balance"] == "1500.25"
    assert body["currency"] == "USD"
    assert body["is_default"] is False and body["archived"] is False
    created_at = datetime.fromisoformat(body["created_at"])
    assert created_at.tzinfo is not None
    assert before - timedelta(seconds=5) <= created_at <= datetime.now(UTC) + timedelta(seconds=5)
    location = response.headers["Location"]
    assert location.endswith(f"/accounts/{body['id']}")
    assert client.get(location, headers=headers).json() == body
    row = db.execute("SELECT * FROM accounts WHERE id = %s", (body["id"],)).fetchone()
    assert row["user_id"] == user_id and row["opening_balance"] == Decimal("1500.25")


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_is_accepted(client, kind):
    _, headers = user_with_headers(client)
    assert open_account(client, headers, f"A {kind}", kind)["kind"] == kind


OPENING_BALANCES = [
    (None, "0.00"),
    ("0", "0.00"),
    (0, "0.00"),
    ("12.5", "12.50"),
    (12.5, "12.50"),
    ("-250.50", "-250.50"),
    (-0.01, "-0.01"),
    ("999999999999.99", "999999999999.99"),
    ("-999999999999.99", "-999999999999.99"),
]


def test_opening_balance_is_exact_signed_and_defaults_to_zero(client, db, subtests):
    _, headers = user_with_headers(client)
    for number, (given, shown) in enumerate(OPENING_BALANCES):
        with subtests.test(msg=f"opening_balance {given!r}"):
            extra = {} if given is None else {"opening_balance": given}
            body = open_account(client, headers, f"Account {number}", "credit_card", **extra)
            assert body["opening_balance"] == body["balance"] == shown
            row = db.execute("SELECT opening_balance, balance FROM accounts WHERE id = %s", (body["id"],)).fetchone()
            assert row["opening_balance"] == row["balance"] == Decimal(shown)


INVALID_CREATES = [
    ("no name", {"kind": "cash"}, "name"),
    ("empty name", {"name": "", "kind": "cash"}, "name"),
    ("name of 65", {"name": "x" * 65, "kind": "cash"}, "name"),
    ("name not text", {"name": 5, "kind": "cash"}, "name"),
    ("name null", {"name": None, "kind": "cash"}, "name"),
    ("name with NUL", {"name": "a\x00b", "kind": "cash"}, "name"),
    ("no kind", {"name": "A"}, "kind"),
    ("unknown kind", {"name": "A", "kind": "loan"}, "kind"),
    ("kind in capitals", {"name": "A", "kind": "Checking"}, "kind"),
    ("three places", {"name": "A", "kind": "cash", "opening_balance": "1.001"}, "opening_balance"),
    ("not a number", {"name": "A", "kind": "cash", "opening_balance": "ten"}, "opening_balance"),
    ("too large", {"name": "A", "kind": "cash", "opening_balance": "1000000000000.00"}, "opening_balance"),
    ("too small", {"name": "A", "kind": "cash", "opening_balance": "-1000000000000.00"}, "opening_balance"),
    ("exponent", {"name": "A", "kind": "cash", "opening_balance": "1e3"}, "opening_balance"),
    ("NaN", {"name": "A", "kind": "cash", "opening_balance": "NaN"}, "opening_balance"),
    ("boolean", {"name": "A", "kind": "cash", "opening_balance": True}, "opening_balance"),
    ("null balance", {"name": "A", "kind": "cash", "opening_balance": None}, "opening_balance"),
    ("balance is the server's", {"name": "A", "kind": "cash", "balance": "5.00"}, "balance"),
    ("is_default on create", {"name": "A", "kind": "cash", "is_default": True}, "is_default"),
    ("user_id", {"name": "A", "kind": "cash", "user_id": 1}, "user_id"),
    ("currency", {"name": "A", "kind": "cash", "currency": "EUR"}, "currency"),
]


def test_invalid_create_is_400_naming_the_field_and_creates_nothing(client, db, subtests):
    user_id, headers = user_with_headers(client)
    for name, body, field in INVALID_CREATES:
        with subtests.test(msg=name):
            validation_error(client.post("/accounts", json=body, headers=headers), field)
            assert len(_stored_accounts(db, user_id)) == 1


def test_names_of_one_and_of_sixty_four_characters_are_accepted(client):
    _, headers = user_with_headers(client)
    assert open_account(client, headers, "a")["name"] == "a"
    assert open_account(client, headers, "x" * 64)["name"] == "x" * 64
    assert open_account(client, headers, "é" * 64)["name"] == "é" * 64
    assert open_account(client, headers, "Épargne 💶")["name"] == "Épargne 💶"


def test_names_are_unique_per_user_in_any_letter_case(client, db, subtests):
    user_id, headers = user_with_headers(client)
    savings = open_account(client, headers, "Savings")
    open_account(client, headers, "Épargne")
    for taken in ("Savings", "savings", "SAVINGS", "sAvInGs", "Main", "main", "MAIN", "ÉPARGNE", "épargne"):
        with subtests.test(msg=taken):
            response = client.post("/accounts", json={"name": taken, "kind": "cash"}, headers=headers)
            assert_error(response, 409, "account_exists")
    assert len(_stored_accounts(db, user_id)) == 3
    # Another user may have the same names.
    _, other = user_with_headers(client)
    assert open_account(client, other, "savings")["name"] == "savings"
    # A rename may not take another account's name, but may change the letter case of its own.
    renamed = client.patch(f"/accounts/{savings['id']}", json={"name": "MAIN"}, headers=headers)
    assert_error(renamed, 409, "account_exists")
    assert get_account(client, headers, savings["id"]) == savings
    recased = client.patch(f"/accounts/{savings['id']}", json={"name": "SAVINGS"}, headers=headers)
    assert recased.status_code == 200, recased.text
    assert recased.json()["name"] == "SAVINGS"


# --- list and read -----------------------------------------------------------------------------


def test_list_is_the_default_first_then_by_name_and_leaves_archived_accounts_out(client):
    _, headers = user_with_headers(client)
    zeta = open_account(client, headers, "zeta", opening_balance="1.00")
    alpha = open_account(client, headers, "Alpha", opening_balance="20.00")
    open_account(client, headers, "beta", opening_balance="-300.00")
    old = open_account(client, headers, "Old", opening_balance="4000.01")
    assert client.patch(f"/accounts/{old['id']}", json={"archived": True}, headers=headers).status_code == 200

    listed = account_list(client, headers)
    assert _names(listed) == ["Main", "Alpha", "beta", "zeta"]
    assert listed["total_balance"] == "-279.00"
    assert account_list(client, headers, include_archived="false") == listed
    everything = account_list(client, headers, include_archived="true")
    assert _names(everything) == ["Main", "Alpha", "beta", "Old", "zeta"]
    assert everything["total_balance"] == "3721.01"
    assert [item for item in everything["items"] if item["archived"]] == [
        {**old, "archived": True}
    ]

    # A new default comes first.
    moved = client.patch(f"/accounts/{zeta['id']}", json={"is_default": True}, headers=headers)
    assert moved.status_code == 200, moved.text
    assert _names(account_list(client, headers)) == ["zeta", "Alpha", "beta", "Main"]
    for item in account_list(client, headers)["items"]:
        assert get_account(client, headers, item["id"]) == item
    assert get_account(client, headers, alpha["id"])["balance"] == "20.00"


def test_invalid_list_query_is_400(client):
    _, headers = user_with_headers(client)
    validation_error(client.get("/accounts", params={"include_archived": "maybe"}, headers=headers),
                     "include_archived")


def test_get_of_a_missing_account_is_404(client):
    _, headers = user_with_headers(client)
    for path in (f"/accounts/{MISSING_ID}", "/accounts/99999999999999999999", "/accounts/0"):
        assert_error(client.get(path, headers=headers), 404, "not_found")


# --- change ------------------------------------------------------------------------------------


def test_patch_changes_name_kind_and_archived_only(client, db):
    _, headers = user_with_headers(client)
    account = open_account(client, headers, "Wallet", "cash", opening_balance="12.00")
    create(client, headers, account_id=account["id"], type="expense", amount="2.00")
    account = get_account(client, headers, account["id"])
    for changes in ({"name": "Purse"}, {"kind": "other"}, {"archived": True}, {"archived": False},
                    {"name": "Pocket", "kind": "cash", "archived": True}):
        response = client.patch(f"/accounts/{account['id']}", json=changes, headers=headers)
        assert response.status_code == 200, response.text
        assert response.json() == {**account, **changes}
        account = response.json()
        assert get_account(client, headers, account["id"]) == account
    assert account["balance"] == "10.00" and account["opening_balance"] == "12.00"


INVALID_PATCHES = [
    ("nothing", {}, "_schema"),
    ("empty name", {"name": ""}, "name"),
    ("long name", {"name": "n" * 65}, "name"),
    ("unknown kind", {"kind": "loan"}, "kind"),
    ("archived not boolean", {"archived": "perhaps"}, "archived"),
    ("archived null", {"archived": None}, "archived"),
    ("is_default false", {"is_default": False}, "is_default"),
    ("opening_balance", {"opening_balance": "5.00"}, "opening_balance"),
    ("balance", {"balance": "5.00"}, "balance"),
    ("currency", {"currency": "EUR"}, "currency"),
    ("id", {"id": 1}, "id"),
]


def test_invalid_patch_is_400_and_changes_nothing(client, subtests):
    _, headers = user_with_headers(client)
    account = open_account(client, headers, "Wallet", "cash", opening_balance="3.00")
    for name, changes, field in INVALID_PATCHES:
        with subtests.test(msg=name):
            validation_error(client.patch(f"/accounts/{account['id']}", json=changes, headers=headers), field)
            assert get_account(client, headers, account["id"]) == account


def test_is_default_true_moves_the_default(client, db):
    user_id, headers = user_with_headers(client)
    main = default_account(client, headers)
    savings = open_account(client, headers, "Savings")
    response = client.patch(f"/accounts/{savings['id']}", json={"is_default": True}, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json() == {**savings, "is_default": True}
    assert get_account(client, headers, main["id"])["is_default"] is False
    assert default_account(client, headers)["id"] == savings["id"]
    assert [row["id"] for row in _stored_accounts(db, user_id) if row["is_default"]] == [savings["id"]]
    # Again on the default: nothing moves.
    again = client.patch(f"/accounts/{savings['id']}", json={"is_default": True}, headers=headers)
    assert again.status_code == 200 and again.json()["is_default"] is True
    assert [row["id"] for row in _stored_accounts(db, user_id) if row["is_default"]] == [savings["id"]]
    # A transaction without an account now goes to the new default.
    assert create(client, headers)["account_id"] == savings["id"]
    # And the former default may now be archived.
    archived = client.patch(f"/accounts/{main['id']}", json={"archived": True}, headers=headers)
    assert archived.status_code == 200 and archived.json()["archived"] is True


def test_the_default_account_cannot_be_archived(client, db):
    user_id, headers = user_with_headers(client)
    main = default_account(client, headers)
    assert_error(client.patch(f"/accounts/{main['id']}", json={"archived": True}, headers=headers), 409)
    assert_error(
        client.patch(f"/accounts/{main['id']}", json={"archived": True, "name": "Old"}, headers=headers), 409
    )
    assert get_account(client, headers, main["id"]) == main
    # Nor can an archived account become the default while it stays archived.
    old = open_account(client, headers, "Old")
    client.patch(f"/accounts/{old['id']}", json={"archived": True}, headers=headers)
    assert_error(client.patch(f"/accounts/{old['id']}", json={"is_default": True}, headers=headers), 409)
    assert_error(
        client.patch(f"/accounts/{old['id']}", json={"is_default": True, "archived": True}, headers=headers), 409
    )
    assert default_account(client, headers)["id"] == main["id"]
    # Unarchiving it in the same change makes it the default.
    both = client.patch(f"/accounts/{old['id']}", json={"is_default": True, "archived": False}, headers=headers)
    assert both.status_code == 200, both.text
    assert (both.json()["is_default"], both.json()["archived"]) == (True, False)
    assert [row["id"] for row in _stored_accounts(db, user_id) if row["is_default"]] == [old["id"]]


# --- delete ------------------------------------------------------------------------------------


def test_delete_of_an_unused_account_is_204_and_it_is_gone(client, db):
    user_id, headers = user_with_headers(client)
    spare = open_account(client, headers, "Spare", opening_balance="50.00")
    response = client.delete(f"/accounts/{spare['id']}", headers=headers)
    assert response.status_code == 204, response.text
    assert response.content == b""
    assert_error(client.get(f"/accounts/{spare['id']}", headers=headers), 404, "not_found")
    assert_error(client.delete(f"/accounts/{spare['id']}", headers=headers), 404, "not_found")
    assert _names(account_list(client, headers, include_archived="true")) == ["Main"]
    assert len(_stored_accounts(db, user_id)) == 1
    # Its name is free again.
    assert open_account(client, headers, "spare")["name"] == "spare"


def test_delete_of_the_default_or_a_used_account_is_409_account_in_use(client, db):
    user_id, headers = user_with_headers(client)
    main = default_account(client, headers)
    assert_error(client.delete(f"/accounts/{main['id']}", headers=headers), 409, "account_in_use")

    with_transaction = open_account(client, headers, "With a transaction")
    transaction = create(client, headers, account_id=with_transaction["id"])
    sender = open_account(client, headers, "Sends")
    receiver = open_account(client, headers, "Receives")
    transfer = move(client, headers, sender["id"], receiver["id"], "5.00")
    # Archived or not, an account with records stays.
    client.patch(f"/accounts/{receiver['id']}", json={"archived": True}, headers=headers)
    used = (with_transaction, sender, receiver)
    for account in used:
        assert_error(client.delete(f"/accounts/{account['id']}", headers=headers), 409, "account_in_use")
    assert len(_stored_accounts(db, user_id)) == 4

    # Without its records, each may go.
    assert client.delete(f"/transactions/{transaction['id']}", headers=headers).status_code == 204
    assert client.delete(f"/transfers/{transfer['id']}", headers=headers).status_code == 204
    for account in used:
        assert client.delete(f"/accounts/{account['id']}", headers=headers).status_code == 204
    assert [row["id"] for row in _stored_accounts(db, user_id)] == [main["id"]]


# --- archived accounts -------------------------------------------------------------------------


def test_an_archived_account_takes_no_new_transaction_or_transfer(client, db):
    user_id, headers = user_with_headers(client)
    main = default_account(client, headers)
    old = open_account(client, headers, "Old", opening_balance="100.00")
    kept = create(client, headers, account_id=old["id"], type="income", amount="1.00")
    elsewhere = create(client, headers, account_id=main["id"], amount="2.00")
    client.patch(f"/accounts/{old['id']}", json={"archived": True}, headers=headers)
    before = balances(client, headers)

    body = {"type": "expense", "amount": "3.00", "account_id": old["id"]}
    for path in ("/transactions", "/transaction"):
        assert_error(client.post(path, json=body, headers=headers), 409, "account_archived")
        keyed = {**headers, "Idempotency-Key": f"archived{path.replace('/', '-')}"}
        assert_error(client.post(path, json=body, headers=keyed), 409, "account_archived")
    for source, target in ((old["id"], main["id"]), (main["id"], old["id"])):
        transfer = {"from_account_id": source, "to_account_id": target, "amount": "1.00"}
        assert_error(client.post("/transfers", json=transfer, headers=headers), 409, "account_archived")
    moved = client.patch(f"/transactions/{elsewhere['id']}", json={"account_id": old["id"]}, headers=headers)
    assert_error(moved, 409, "account_archived")

    assert count_transactions(db, user_id) == 2
    assert walk(client, headers, "/transfers") == []
    assert client.get(f"/transactions/{elsewhere['id']}", headers=headers).json() == elsewhere
    assert balances(client, headers) == before
    # Its records stay readable; unarchived, it takes new ones again.
    assert client.get(f"/transactions/{kept['id']}", headers=headers).json() == kept
    client.patch(f"/accounts/{old['id']}", json={"archived": False}, headers=headers)
    assert create(client, headers, account_id=old["id"], amount="3.00")["account_id"] == old["id"]
    # The keys refused above were not used up.
    keyed = {**headers, "Idempotency-Key": "archived-transactions"}
    again = client.post("/transactions", json=body, headers=keyed)
    assert again.status_code == 201 and "Idempotent-Replayed" not in again.headers
    assert get_account(client, headers, old["id"])["balance"] == "95.00"


# --- other users' accounts ---------------------------------------------------------------------


def test_another_users_account_is_404_on_every_account_path_and_stays_as_it_was(client, db):
    victim_id, victim = user_with_headers(client)
    theirs = open_account(client, victim, "Theirs", opening_balance="10.00")
    their_main = default_account(client, victim)
    _, headers = user_with_headers(client)
    for account in (theirs, their_main):
        path = f"/accounts/{account['id']}"
        missing = assert_error(client.get(f"/accounts/{MISSING_ID}", headers=headers), 404)
        assert assert_error(client.get(path, headers=headers), 404) == missing
        assert_error(client.patch(path, json={"name": "Mine now"}, headers=headers), 404, "not_found")
        assert_error(client.patch(path, json={"is_default": True}, headers=headers), 404, "not_found")
        assert_error(client.patch(path, json={"archived": True}, headers=headers), 404, "not_found")
        assert_error(client.delete(path, headers=headers), 404, "not_found")
    assert all_accounts(client, victim) == [their_main, theirs]
    assert _names(account_list(client, headers)) == ["Main"]


def test_account_id_of_another_user_or_none_at_all_is_400_naming_it_and_changes_nothing(client, db, subtests):
    victim_id, victim = user_with_headers(client)
    theirs = open_account(client, victim, "Theirs", opening_balance="10.00")
    their_main = default_account(client, victim)
    user_id, headers = user_with_headers(client)
    mine = open_account(client, headers, "Mine")
    main = default_account(client, headers)
    transaction = create(client, headers, amount="4.00")
    transfer = move(client, headers, main["id"], mine["id"], "1.00")
    before = (all_accounts(client, victim), all_accounts(client, headers))

    answers = []
    for foreign in (theirs["id"], their_main["id"], MISSING_ID):
        with subtests.test(msg=f"account {foreign}"):
            body = {"type": "expense", "amount": "3.00", "account_id": foreign}
            for path in ("/transactions", "/transaction"):
                answers.append(validation_error(client.post(path, json=body, headers=headers), "account_id"))
                keyed = {**headers, "Idempotency-Key": f"foreign-{foreign}{path.replace('/', '-')}"}
                answers.append(validation_error(client.post(path, json=body, headers=keyed), "account_id"))
            answers.append(validation_error(
                client.patch(f"/transactions/{transaction['id']}", json={"account_id": foreign}, headers=headers),
                "account_id",
            ))
            for field, other in (("from_account_id", "to_account_id"), ("to_account_id", "from_account_id")):
                body = {field: foreign, other: mine["id"], "amount": "1.00"}
                answers.append(validation_error(client.post("/transfers", json=body, headers=headers), field))
                keyed = {**headers, "Idempotency-Key": f"foreign-{foreign}-{field}"}
                answers.append(validation_error(client.post("/transfers", json=body, headers=keyed), field))
            for path in ("/transactions", "/transfers", "/analytics", "/transactions/export"):
                response = client.get(path, params={"account_id": foreign}, headers=headers)
                answers.append(validation_error(response, "account_id"))

    # The same answer whether the account is another user's or does not exist.
    third = len(answers) // 3
    assert answers[:third] == answers[third:2 * third] == answers[2 * third:]
    assert count_transactions(db, user_id) == 1 and count_transactions(db, victim_id) == 0
    assert client.get(f"/transactions/{transaction['id']}", headers=headers).json() == transaction
    assert walk(client, headers, "/transfers") == [transfer]
    assert walk(client, victim, "/transfers") == []
    assert (all_accounts(client, victim), all_accounts(client, headers)) == before
    # The refused keys were not used up.
    keyed = {**headers, "Idempotency-Key": f"foreign-{MISSING_ID}-transactions"}
    fresh = client.post("/transactions", json={"type": "expense", "amount": "3.00"}, headers=keyed)
    assert fresh.status_code == 201 and "Idempotent-Replayed" not in fresh.headers


@pytest.mark.parametrize("value", [0, -1, "abc", 1.5, True, 2**63, None])
def test_a_malformed_account_id_is_400_naming_it(client, db, value):
    user_id, headers = user_with_headers(client)
    body = {"type": "expense", "amount": "3.00", "account_id": value}
    validation_error(client.post("/transactions", json=body, headers=headers), "account_id")
    if value is not None:
        for path in ("/transactions", "/transfers", "/analytics"):
            validation_error(client.get(path, params={"account_id": value}, headers=headers), "account_id")
    assert count_transactions(db, user_id) == 0


def test_a_token_of_tenant2_is_refused_on_tenant1s_accounts(client, client2):
    _, headers = user_with_headers(client2)
    mine = account_list(client2, headers)["items"][0]
    assert_error(client.get("/accounts", headers=headers), 401)
    assert_error(client.get(f"/accounts/{mine['id']}", headers=headers), 401)
    assert_error(client.post("/accounts", json={"name": "X", "kind": "cash"}, headers=headers), 401)


# --- transactions in accounts ------------------------------------------------------------------


def test_a_transaction_goes_to_the_default_account_unless_it_names_one(client, db):
    user_id, headers = user_with_headers(client)
    main = default_account(client, headers)
    cash = open_account(client, headers, "Cash", "cash")
    plain = create(client, headers, amount="1.00")
    assert plain["account_id"] == main["id"]
    named = create(client, headers, amount="2.00", account_id=cash["id"])
    assert named["account_id"] == cash["id"]
    rows = db.execute("SELECT id, account_id FROM transactions WHERE user_id = %s ORDER BY id", (user_id,))
    assert [(row["id"], row["account_id"]) for row in rows] == [(plain["id"], main["id"]), (named["id"], cash["id"])]


def test_account_id_is_in_every_transaction_response(client):
    _, headers = user_with_headers(client)
    main = default_account(client, headers)
    cash = open_account(client, headers, "Cash", "cash")
    shown = []
    for path in ("/transactions", "/transaction"):
        for body in ({"type": "income", "amount": "5.00"},
                     {"type": "expense", "amount": "1", "account_id": cash["id"]}):
            keyed = {**headers, "Idempotency-Key": f"shown{path.replace('/', '-')}-{len(shown)}"}
            first = client.post(path, json=body, headers=keyed)
            replay = client.post(path, json=body, headers=keyed)
            assert first.status_code == replay.status_code == 201, first.text
            assert replay.headers["Idempotent-Replayed"] == "true"
            assert replay.json() == first.json()
            assert first.json()["account_id"] == body.get("account_id", main["id"])
            shown.append(first.json())
    for item in shown:
        assert client.get(f"/transactions/{item['id']}", headers=headers).json()["account_id"] == item["account_id"]
        patched = client.patch(f"/transactions/{item['id']}", json={"description": "seen"}, headers=headers)
        assert patched.json()["account_id"] == item["account_id"]
    listed = {item["id"]: item["account_id"] for item in walk(client, headers, "/transactions")}
    assert listed == {item["id"]: item["account_id"] for item in shown}


def test_the_original_clients_create_works_exactly_as_before(client, db):
    """POST /transaction with the original body: 201, the same fields plus account_id, the default account."""
    user_id, headers = user_with_headers(client)
    main = default_account(client, headers)
    body = {"type": "expense", "amount": 5, "description": "Lunch", "category": "food",
            "occurred_at": "2026-01-15T12:00:00+00:00"}
    response = client.post("/transaction", json=body, headers=headers)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["account_id"] == main["id"]
    assert (created["type"], created["amount"], created["description"], created["category"]) == (
        "expense", "5.00", "Lunch", "food"
    )
    assert response.headers["Location"].endswith(f"/transactions/{created['id']}")
    # The original header for the token works too.
    token = headers["Authorization"].removeprefix("Bearer ")
    legacy = client.post("/transaction", json=body, headers={"x-access-token": token})
    assert legacy.status_code == 201, legacy.text
    assert count_transactions(db, user_id) == 2
    assert get_account(client, headers, main["id"])["balance"] == "-10.00"


def test_patch_moves_a_transaction_between_accounts_and_both_balances_follow(client, db):
    _, headers = user_with_headers(client)
    main = default_account(client, headers)
    cash = open_account(client, headers, "Cash", "cash", opening_balance="100.00")
    income = create(client, headers, type="income", amount="40.10")
    expense = create(client, headers, type="expense", amount="15.05", account_id=cash["id"])
    assert balances(client, headers) == {main["id"]: Decimal("40.10"), cash["id"]: Decimal("84.95")}

    moved = client.patch(f"/transactions/{income['id']}", json={"account_id": cash["id"]}, headers=headers)
    assert moved.status_code == 200, moved.text
    assert moved.json() == {**income, "account_id": cash["id"], "updated_at": moved.json()["updated_at"]}
    assert balances(client, headers) == {main["id"]: Decimal("0.00"), cash["id"]: Decimal("125.05")}

    # Moved and changed in one request.
    both = client.patch(f"/transactions/{expense['id']}", json={"account_id": main["id"], "amount": "20.00",
                                                                "type": "income"}, headers=headers)
    assert both.status_code == 200, both.text
    assert balances(client, headers) == {main["id"]: Decimal("20.00"), cash["id"]: Decimal("140.10")}
    assert_balances_exact(client, headers)


def test_list_filters_by_account_and_keeps_the_filter_across_pages(client):
    _, headers = user_with_headers(client)
    cash = open_account(client, headers, "Cash", "cash")
    main = default_account(client, headers)
    start = datetime(2026, 1, 15, 12, tzinfo=UTC)
    in_cash = []
    for number in range(9):
        account = cash if number % 3 else main
        item = create(client, headers, account_id=account["id"], category="food" if number % 2 else "rent",
                      occurred_at=(start + timedelta(hours=number)).isoformat())
        if account is cash:
            in_cash.append(item)
    listed = walk(client, headers, "/transactions", account_id=cash["id"], limit=2)
    assert [item["id"] for item in listed] == [item["id"] for item in reversed(in_cash)]
    food = walk(client, headers, "/transactions", account_id=cash["id"], category="food")
    assert {item["id"] for item in food} == {item["id"] for item in in_cash if item["category"] == "food"}
    by_amount = walk(client, headers, "/transactions", account_id=main["id"], sort="amount", limit=1)
    assert len(by_amount) == 3 and {item["account_id"] for item in by_amount} == {main["id"]}


def _analytics(client, headers, **params) -> dict:
    response = client.get("/analytics", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def _totals(body: dict) -> tuple[str, str, str, int]:
    return body["total_income"], body["total_expense"], body["net_balance"], body["count"]


def test_analytics_of_one_account_counts_only_its_income_and_expense_and_never_transfers(client):
    _, headers = user_with_headers(client)
    main = default_account(client, headers)
    cash = open_account(client, headers, "Cash", "cash")
    # Days inside whole months (monthly totals) and days around them (daily totals).
    create(client, headers, type="income", amount="1000.00", category="salary", occurred_at="2026-02-10T12:00:00Z")
    create(client, headers, type="expense", amount="30.25", category="food", occurred_at="2026-01-20T12:00:00Z")
    create(client, headers, type="expense", amount="7.00", category="food", account_id=cash["id"],
           occurred_at="2026-02-11T12:00:00Z")
    moving = create(client, headers, type="expense", amount="2.50", category="fun", account_id=cash["id"],
                    occurred_at="2026-03-05T12:00:00Z")
    for source, target, day in ((main, cash, "2026-02-12"), (cash, main, "2026-01-25"), (main, cash, "2026-03-01")):
        move(client, headers, source["id"], target["id"], "100.00", occurred_at=f"{day}T12:00:00Z")
    span = {"from": "2026-01-15", "to": "2026-03-31"}

    assert _totals(_analytics(client, headers, **span)) == ("1000.00", "39.75", "960.25", 4)
    assert _totals(_analytics(client, headers, **span, account_id=main["id"])) == ("1000.00", "30.25", "969.75", 2)
    assert _totals(_analytics(client, headers, **span, account_id=cash["id"])) == ("0.00", "9.50", "-9.50", 2)
    grouped = _analytics(client, headers, **span, account_id=cash["id"], group_by="category")
    assert {group["key"]: group["total_expense"] for group in grouped["groups"]} == {"food": "7.00", "fun": "2.50"}
    by_day = _analytics(client, headers, **span, account_id=main["id"], group_by="day")
    assert {group["key"]: group["count"] for group in by_day["groups"]} == {"2026-01-20": 1, "2026-02-10": 1}
    by_month = _analytics(client, headers, **span, account_id=cash["id"], group_by="month")
    assert {group["key"]: group["total_expense"] for group in by_month["groups"]} == {
        "2026-02": "7.00", "2026-03": "2.50"
    }

    # A transaction moved to another account moves in the per-account analytics too.
    client.patch(f"/transactions/{moving['id']}", json={"account_id": main["id"]}, headers=headers)
    assert _totals(_analytics(client, headers, **span, account_id=main["id"])) == ("1000.00", "32.75", "967.25", 3)
    assert _totals(_analytics(client, headers, **span, account_id=cash["id"])) == ("0.00", "7.00", "-7.00", 1)
    assert _totals(_analytics(client, headers, **span)) == ("1000.00", "39.75", "960.25", 4)
    # An account without records in the span, and the current month by default.
    empty = open_account(client, headers, "Empty")
    assert _totals(_analytics(client, headers, **span, account_id=empty["id"])) == ("0.00", "0.00", "0.00", 0)
    assert _analytics(client, headers, account_id=cash["id"])["period"] == "current_month"


# --- balances exact after any mix of writes ----------------------------------------------------


def _amount(rng: random.Random) -> str:
    return rng.choice(["0.01", "0.10", "0.99", "1.00", "12.34", "100.00", "999.99", "12345.67", "99999999.99"])


ACTIONS = ("create", "create", "update", "delete", "transfer", "transfer", "retransfer", "untransfer")


def test_balances_equal_a_recomputation_after_any_mix_of_writes(client, db):
    """Creates, updates (amount, type, account), deletes of transactions; transfers and their
    updates and deletes; a CSV import into the default account; archiving; a new default: after
    every step each balance equals opening + income - expense + in - out from the API's lists."""
    rng = random.Random(13)
    _, headers = user_with_headers(client)
    accounts = [default_account(client, headers)["id"]]
    accounts += [open_account(client, headers, name, kind, opening_balance=opening)["id"] for name, kind, opening in (
        ("Savings", "savings", "1000.00"), ("Card", "credit_card", "-250.75"), ("Cash", "cash", "0.00"))]
    transactions: list[int] = []
    transfers: list[int] = []
    day = datetime(2026, 1, 1, 12, tzinfo=UTC)

    def when() -> str:
        return (day + timedelta(days=rng.randrange(120), minutes=rng.randrange(1440))).isoformat()

    for step in range(60):
        action = rng.choice(ACTIONS)
        if action == "create" or (action in ("update", "delete") and not transactions):
            body = {"type": rng.choice(["income", "expense"]), "amount": _amount(rng), "occurred_at": when()}
            if rng.random() < 0.8:
                body["account_id"] = rng.choice(accounts)
            transactions.append(create(client, headers, **body)["id"])
        elif action == "update":
            changes = rng.choice([
                {"amount": _amount(rng)},
                {"type": rng.choice(["income", "expense"])},
                {"account_id": rng.choice(accounts)},
                {"account_id": rng.choice(accounts), "amount": _amount(rng), "type": "income"},
                {"occurred_at": when(), "category": "moved"},
            ])
            response = client.patch(f"/transactions/{rng.choice(transactions)}", json=changes, headers=headers)
            assert response.status_code == 200, response.text
        elif action == "delete":
            victim = transactions.pop(rng.randrange(len(transactions)))
            assert client.delete(f"/transactions/{victim}", headers=headers).status_code == 204
        elif action == "transfer" or not transfers:
            source, target = rng.sample(accounts, 2)
            transfers.append(move(client, headers, source, target, _amount(rng), occurred_at=when())["id"])
        elif action == "retransfer":
            changes = rng.choice([{"amount": _amount(rng)}, {"occurred_at": when()}, {"description": "x"},
                                  {"amount": _amount(rng), "description": None}])
            response = client.patch(f"/transfers/{rng.choice(transfers)}", json=changes, headers=headers)
            assert response.status_code == 200, response.text
        else:
            victim = transfers.pop(rng.randrange(len(transfers)))
            assert client.delete(f"/transfers/{victim}", headers=headers).status_code == 204
        if step % 10 == 9:
            assert_balances_exact(client, headers)

    # A CSV import lands in the default account.
    before = balances(client, headers)
    csv = ("occurred_at,type,amount,category\n2026-02-01T10:00:00Z,income,1000.01,pay\n"
           "2026-02-02T10:00:00-05:00,expense,0.02,fee\n,expense,3,\n")
    imported = client.post("/transactions/import", content=csv.encode(),
                           headers={**headers, "Content-Type": "text/csv"})
    assert imported.status_code == 201, imported.text
    assert imported.json() == {"imported": 3}
    assert balances(client, headers) == {**before, accounts[0]: before[accounts[0]] + Decimal("996.99")}
    assert_balances_exact(client, headers)

    # Another default: imports and plain creates follow it; archiving changes no balance.
    client.patch(f"/accounts/{accounts[3]}", json={"is_default": True}, headers=headers)
    client.patch(f"/accounts/{accounts[0]}", json={"archived": True}, headers=headers)
    before = balances(client, headers)
    client.post("/transactions/import", content=b"type,amount\nincome,0.07\n",
                headers={**headers, "Content-Type": "text/csv"})
    create(client, headers, type="expense", amount="0.05")
    assert balances(client, headers) == {**before, accounts[3]: before[accounts[3]] + Decimal("0.02")}
    final = assert_balances_exact(client, headers)
    assert sum(final.values()) == Decimal(account_list(client, headers, include_archived="true")["total_balance"])
    check_totals(db)


def test_balances_of_largest_amounts_stay_exact(client):
    _, headers = user_with_headers(client)
    main = default_account(client, headers)
    big = open_account(client, headers, "Big", opening_balance="999999999999.99")
    for _ in range(3):
        create(client, headers, type="income", amount="999999999999.99", account_id=big["id"])
        move(client, headers, big["id"], main["id"], "999999999999.99")
    create(client, headers, type="income", amount="0.01", account_id=big["id"])
    assert balances(client, headers) == {big["id"]: Decimal("1000000000000.00"),
                                         main["id"]: Decimal("2999999999999.97")}
    assert account_list(client, headers)["total_balance"] == "3999999999999.97"
    assert_balances_exact(client, headers)


def test_one_users_writes_never_touch_another_users_balances(client):
    _, first = user_with_headers(client)
    _, second = user_with_headers(client)
    open_account(client, second, "Savings", opening_balance="10.00")
    before = all_accounts(client, second)
    savings = open_account(client, first, "Savings", opening_balance="10.00")
    create(client, first, type="income", amount="5.00")
    move(client, first, savings["id"], default_account(client, first)["id"], "2.00")
    assert all_accounts(client, second) == before



def test_a_user_has_at_most_1000_accounts_so_that_the_list_stays_bounded(client, db):
    user_id, headers = user_with_headers(client)
    db.execute(
        "INSERT INTO accounts (user_id, name, kind) SELECT %s, 'account ' || n, 'cash' FROM generate_series(2, 1000) n",
        (user_id,),
    )
    refused = client.post("/accounts", json={"name": "one more", "kind": "cash"}, headers=headers)
    assert_error(refused, 409, "too_many_accounts")
    listed = client.get("/accounts", headers=headers)
    assert listed.status_code == 200 and len(listed.json()["items"]) == 1000
    # Deleting one makes room for one.
    spare = next(item["id"] for item in listed.json()["items"] if item["name"] == "account 1000")
    assert client.delete(f"/accounts/{spare}", headers=headers).status_code == 204
    again = client.post("/accounts", json={"name": "one more", "kind": "cash"}, headers=headers)
    assert again.status_code == 201, again.text


def test_concurrent_creates_never_pass_the_account_cap(client, db, servers):
    user_id, headers = user_with_headers(client)
    db.execute(
        "INSERT INTO accounts (user_id, name, kind) SELECT %s, 'account ' || n, 'cash' FROM generate_series(2, 995) n",
        (user_id,),
    )

    def open_one(n: int) -> int:
        with httpx.Client(base_url=servers["tenant1"].url, timeout=30) as http:
            return http.post("/accounts", json={"name": f"parallel {n}", "kind": "cash"}, headers=headers).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(open_one, range(12)))
    assert sorted(statuses) == [201] * 5 + [409] * 7, statuses
    assert db.execute("SELECT count(*) AS n FROM accounts WHERE user_id = %s", (user_id,)).fetchone()["n"] == 1000
