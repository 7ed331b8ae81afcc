"""CSV export and import of transactions, the same columns both ways."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator

from marshmallow import ValidationError

from .records import TRANSACTION
from .schemas import TransactionCreate

EXPORT_COLUMNS = TRANSACTION.csv_columns
IMPORT_COLUMNS = TRANSACTION.import_columns
# The columns without which no row can be valid.
REQUIRED_COLUMNS = tuple(name for name, field in TransactionCreate().fields.items() if field.required)
# Text a client wrote, defused on export (below).
_TEXT_COLUMNS = {name for name, kind in TRANSACTION.columns.items() if kind is str}
MAX_REPORTED_ERRORS = 100
# The most one export holds: typical rows make 100,000 about 6 MB; long descriptions can make
# rows 40 times larger, hence a bound in bytes too. The proxy in front of the app buffers the
# whole answer, so a slow reader never holds a worker.
MAX_EXPORT_ROWS = 100_000
MAX_EXPORT_BYTES = 32 * 1024 * 1024
# The most bytes of an exported row besides its category and description: a 19-digit id, a
# 32-character instant, the type, a 15-character amount, the currency, six commas, CRLF, and
# the enclosing quotes and the apostrophe of two escaped cells.
_FIXED_ROW_BYTES = 19 + 32 + 7 + 15 + 3 + 6 + 2 + 2 * 3
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
    """Whether an export of `rows` rows whose categories and descriptions take `text_bytes` bytes
    stays within MAX_EXPORT_ROWS and MAX_EXPORT_BYTES."""
    return rows <= MAX_EXPORT_ROWS and rows * _FIXED_ROW_BYTES + text_bytes <= MAX_EXPORT_BYTES


def _cell(name: str, row: dict, currency: str) -> object:
    if name == "currency":
        return currency
    value = TRANSACTION.json_value(name, row[name])
    return _defuse(value) if name in _TEXT_COLUMNS else value


def export_lines(rows: Iterable[dict], currency: str) -> Iterator[str]:
    """Yield the header and one CSV line per transaction."""
    yield _line(EXPORT_COLUMNS)
    for row in rows:
        yield _line(_cell(name, row, currency) for name in EXPORT_COLUMNS)


def parse_import(raw: bytes, currency: str) -> tuple[list[dict], list[dict]]:
    """Validate the rows of an upload; return (valid rows, errors with their line numbers).

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
    valid: list[dict] = []
    errors: list[dict] = []
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
            try:
                valid.append(schema.load(cells))
            except ValidationError as exc:
                errors.append({"row": line, "fields": exc.messages})
    except csv.Error as exc:
        errors.append({"row": reader.line_num, "fields": {"_row": [f"Not valid CSV: {exc}."]}})
    return valid, errors
