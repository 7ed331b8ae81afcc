"""CSV export and import of transactions, the same columns both ways."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from marshmallow import ValidationError

from .records import TRANSACTION
from .schemas import MAX_ACCOUNT_NAME_CHARS, TransactionCreate, storable_text

EXPORT_COLUMNS = TRANSACTION.csv_columns
IMPORT_COLUMNS = TRANSACTION.import_columns
# The name of the transaction's account (its account_id in the record): the export writes it, an
# import finds the user's account of that name in any letter case; a row without it goes to the
# user's default account.
ACCOUNT_COLUMN = "account"
# The columns without which no row can be valid.
REQUIRED_COLUMNS = tuple(name for name, field in TransactionCreate().fields.items() if field.required)
# Text a client wrote, defused on export (below).
_TEXT_COLUMNS = {name for name, kind in TRANSACTION.columns.items() if kind is str} | {ACCOUNT_COLUMN}
MAX_REPORTED_ERRORS = 100
# The most one export holds: typical rows make 100,000 about 6 MB; long descriptions can make
# rows 40 times larger, hence a bound in bytes too. The proxy in front of the app buffers the
# whole answer, so a slow reader never holds a worker.
MAX_EXPORT_ROWS = 100_000
MAX_EXPORT_BYTES = 32 * 1024 * 1024
# The most bytes of an exported row besides its category, description and account name: a 19-digit
# id, a 32-character instant, the type, a 15-character amount, the currency, seven commas, CRLF,
# and the enclosing quotes and the apostrophe of three escaped cells.
_FIXED_ROW_BYTES = 19 + 32 + 7 + 15 + 3 + 7 + 2 + 3 * 3
# A spreadsheet runs a cell starting with one of these as a formula; exports defuse such cells
# with a leading apostrophe, which imports remove again.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# Text that itself starts with an apostrophe is escaped the same way, so that an import can tell
# an escape from a real apostrophe and the round trip keeps "'=x" as "'=x".
_ESCAPED_STARTS = (*_FORMULA_STARTS, "'")


class CsvError(Exception):
    """The upload is not a CSV file this import can read."""


def _defuse(text: str | None) -> str:
    if not text:
        return ""
    return "'" + text if text.startswith(_ESCAPED_STARTS) else text


def _restore(text: str) -> str:
    return text[1:] if text.startswith("'") and text[1:].startswith(_ESCAPED_STARTS) else text


def _line(values: Iterable) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerow(values)
    return buffer.getvalue()


def export_within_limits(rows: int, text_bytes: int) -> bool:
    """Whether an export of `rows` rows whose categories, descriptions and account names take
    `text_bytes` bytes (each double quote counted twice) stays within MAX_EXPORT_ROWS and
    MAX_EXPORT_BYTES."""
    return rows <= MAX_EXPORT_ROWS and rows * _FIXED_ROW_BYTES + text_bytes <= MAX_EXPORT_BYTES


def _cell(name: str, row: dict, currency: str) -> object:
    if name == "currency":
        return currency
    if name == ACCOUNT_COLUMN:
        return _defuse(row[ACCOUNT_COLUMN])
    value = TRANSACTION.json_value(name, row[name])
    return _defuse(value) if name in _TEXT_COLUMNS else value


def export_lines(rows: Iterable[dict], currency: str) -> Iterator[str]:
    """Yield the header and one CSV line per transaction (a row of the record with its account's
    name as `account`)."""
    yield _line(EXPORT_COLUMNS)
    for row in rows:
        yield _line(_cell(name, row, currency) for name in EXPORT_COLUMNS)


_ARCHIVED = "The account is archived: it takes no new transactions."


@dataclass
class Upload:
    """The rows of an import, validated; those that name an account wait for resolve_accounts."""

    # Valid rows, as TransactionCreate loads them.
    rows: list[dict] = field(default_factory=list)
    # {"row": line number, "fields": {column: [messages]}}, by line number.
    errors: list[dict] = field(default_factory=list)
    # (line, index in rows or None for an invalid row, the account's name as written) of each row
    # with an account cell.
    named: list[tuple[int, int | None, str]] = field(default_factory=list)

    def account_names(self) -> list[str]:
        """The distinct names the rows give, as written, that could be an account's (at most
        MAX_ACCOUNT_NAME_CHARS characters, storable): at most one per row of the upload."""
        return sorted({name for _, _, name in self.named if _could_be_account_name(name)})

    def resolve_accounts(self, accounts: Mapping[str, dict]) -> None:
        """Give each row that names an account that account's id. `accounts` maps a name as
        written to the user's account of that name in any letter case ({"id", "archived"}); a name
        it lacks, or an archived account (it takes no new transaction), is an error of the row."""
        by_line = {error["row"]: error for error in self.errors}
        for line, index, name in self.named:
            account = accounts.get(name)
            if account is not None and not account["archived"]:
                if index is not None:
                    self.rows[index]["account_id"] = account["id"]
                continue
            problem = "No such account." if account is None else _ARCHIVED
            error = by_line.setdefault(line, {"row": line, "fields": {}})
            error["fields"][ACCOUNT_COLUMN] = [problem]
        self.errors = sorted(by_line.values(), key=lambda error: error["row"])


def _could_be_account_name(name: str) -> bool:
    if len(name) > MAX_ACCOUNT_NAME_CHARS:
        return False
    try:
        storable_text(name)
    except ValidationError:
        return False
    return True


def parse_import(raw: bytes, currency: str) -> Upload:
    """Validate the rows of an upload: the valid rows, the errors with their line numbers, and the
    rows that name an account (Upload.resolve_accounts, once the names are looked up).

    Validation stops at MAX_REPORTED_ERRORS errors, so the error list may not be exhaustive.
    """
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CsvError("The file is not UTF-8 text.") from exc
    reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
    try:
        header = reader.fieldnames or []
    except csv.Error as exc:
        raise CsvError(f"The header row is not valid CSV: {exc}.") from exc
    known = set(EXPORT_COLUMNS)
    unknown = [name for name in header if name not in known]
    missing = [name for name in REQUIRED_COLUMNS if name not in header]
    if unknown or missing or len(set(header)) != len(header):
        raise CsvError(
            f"The header must name columns among {', '.join(EXPORT_COLUMNS)} once each,"
            f" including {' and '.join(REQUIRED_COLUMNS)}."
        )

    schema = TransactionCreate()
    upload = Upload()
    errors = upload.errors
    try:
        for record in reader:
            if len(errors) >= MAX_REPORTED_ERRORS:
                # Nothing will be imported and no more would be reported: stop, rather than
                # spend most of the worker timeout validating a megabyte of bad rows.
                break
            line = reader.line_num
            if None in record or None in record.values():
                errors.append({"row": line, "fields": {"_row": ["Wrong number of cells."]}})
                continue
            if record.get("currency", currency) not in ("", currency):
                errors.append({"row": line, "fields": {"currency": [f"Must be {currency}."]}})
                continue
            cells = {
                name: _restore(value) for name, value in record.items()
                if name in IMPORT_COLUMNS and value != ""
            }
            index: int | None = None
            try:
                upload.rows.append(schema.load(cells))
                index = len(upload.rows) - 1
            except ValidationError as exc:
                errors.append({"row": line, "fields": exc.messages})
            account = record.get(ACCOUNT_COLUMN, "")
            if account != "":
                upload.named.append((line, index, _restore(account)))
    except csv.Error as exc:
        errors.append({"row": reader.line_num, "fields": {"_row": [f"Not valid CSV: {exc}."]}})
    return upload
