"""Read the table an analyst uploaded (CSV, TSV, Excel, JSON Lines) into a DataFrame of strings.

Everything that can be wrong with the file itself (size, encoding, layout, column names) is
reported here as a :class:`DataError` that says what was found and what to do about it.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pandas as pd

from core.encodings import decode_bytes
from core.errors import DataError
from core.text import cell_to_str

DEFAULT_MAX_BYTES = 200 * 1024 * 1024
SUPPORTED_EXTENSIONS = (".csv", ".tsv", ".txt", ".xlsx", ".jsonl", ".json")
# The same list as file-uploader types (no dots).
FILE_TYPES = tuple(ext.lstrip(".") for ext in SUPPORTED_EXTENSIONS)

DELIMITER_CANDIDATES = ",;\t|"
_SNIFF_CHARS = 64 * 1024
#: Data rows the header check looks at (is the first row a ticket rather than names?).
HEADER_SAMPLE_ROWS = 1000

#: Starts of common binary files, so a renamed file gets a precise message.
_MAGIC_NUMBERS: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive (an .xlsx or .docx file is one)"),
    (b"\xd0\xcf\x11\xe0", "an old Office file (.xls or .doc)"),
    (b"\x1f\x8b", "a gzip archive"),
)

_FIELD_COUNT_ERROR = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")
_NUMBER = re.compile(r"^[-+]?\d+([.,]\d+)?$")


@dataclass(frozen=True)
class TableRead:
    """A table read from a file, and how it was read.

    ``encoding`` is Python's name of the text encoding used (None for Excel); ``encoding_guessed``
    is True when TicketTune detected it from the bytes, which can be wrong for a short file in a
    legacy code page: show it to the analyst and let them pick another (``encoding=``).
    """

    frame: pd.DataFrame
    filename: str
    format: str
    encoding: str | None
    encoding_guessed: bool
    delimiter: str | None
    size_bytes: int


def read_table(
    source: str | os.PathLike | bytes,
    *,
    filename: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    encoding: str | None = None,
) -> pd.DataFrame:
    """Read an uploaded table: a path, or the raw bytes of an upload named by ``filename``.

    Column names come back stripped, every cell is a Python ``str`` and missing cells are "".
    Rows in which every cell is empty are left out. ``encoding`` (e.g. "cp1251") overrides the
    detected text encoding. ``df.attrs`` holds "format" ("csv", "tsv", "excel", "jsonl"),
    "encoding" (None for Excel) and "delimiter" (None unless a text format); see
    :func:`read_table_details` for all of it.
    """
    return read_table_details(
        source, filename=filename, max_bytes=max_bytes, encoding=encoding
    ).frame


def read_table_details(
    source: str | os.PathLike | bytes,
    *,
    filename: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    encoding: str | None = None,
) -> TableRead:
    """:func:`read_table`, and how the file was read (format, encoding, delimiter)."""
    data, name = _load_bytes(source, filename, max_bytes)
    extension = file_extension(name)
    if not data.strip():
        raise empty_file_error(name)
    used, guessed, delimiter = None, False, None
    if extension == ".xlsx":
        rows, file_format = _read_excel_rows(data, name), "excel"
    else:
        reject_binary(data, name)
        text, used, guessed = decode_bytes(data, name, encoding)
        if not text.strip():
            raise empty_file_error(name)
        if extension in (".jsonl", ".json"):
            rows, file_format = _read_json_rows(text, name), "jsonl"
        else:
            delimiter = "\t" if extension == ".tsv" else sniff_delimiter(text)
            rows = _read_delimited_rows(text, delimiter, name)
            file_format = "tsv" if delimiter == "\t" else "csv"
    frame = _rows_to_frame(rows, name)
    attrs = {"format": file_format, "encoding": used, "delimiter": delimiter}
    frame.attrs.update({**attrs, "filename": name, "size_bytes": len(data)})
    return TableRead(frame, name, file_format, used, guessed, delimiter, len(data))


def empty_file_error(name: str) -> DataError:
    return DataError(f"The file '{name}' is empty. Upload a file with a header row and tickets.")


def _load_bytes(
    source: str | os.PathLike | bytes, filename: str | None, max_bytes: int
) -> tuple[bytes, str]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        name = filename or "upload"
        _check_size(len(data), max_bytes, name)
        return data, name
    path = os.fspath(source)
    name = filename or os.path.basename(path)
    file_extension(name)
    try:
        _check_size(os.path.getsize(path), max_bytes, name)
        with open(path, "rb") as handle:
            return handle.read(), name
    except FileNotFoundError:
        raise DataError(f"There is no file at '{path}'. Check the path and try again.") from None
    except IsADirectoryError:
        raise DataError(f"'{path}' is a folder, not a file. Pick the file itself.") from None


def _check_size(size: int, max_bytes: int, name: str) -> None:
    if size > max_bytes:
        raise DataError(
            f"The file '{name}' is {_megabytes(size)}, over the {_megabytes(max_bytes)} limit. "
            "Split it into smaller files, or raise the upload size limit if this machine has "
            "the memory for it."
        )


def _megabytes(size: int) -> str:
    value = size / (1024 * 1024)
    return f"{value:,.1f} MB" if value >= 0.1 else f"{value:.1f} MB ({size:,} bytes)"


def file_extension(name: str) -> str:
    extension = os.path.splitext(name)[1].lower()
    if extension not in SUPPORTED_EXTENSIONS:
        found = f"is a '{extension}' file" if extension else "has no file extension"
        hint = " Save it as .xlsx or CSV from Excel." if extension == ".xls" else ""
        raise DataError(
            f"The file '{name}' {found}, which TicketTune cannot read. "
            f"Supported file types: {', '.join(SUPPORTED_EXTENSIONS)}.{hint}"
        )
    return extension


def reject_binary(data: bytes, name: str) -> None:
    """DataError when the bytes (a file's start at least) are not a text table."""
    for magic, kind in _MAGIC_NUMBERS:
        if data.startswith(magic):
            raise DataError(
                f"The file '{name}' is not a text table: it looks like {kind}. "
                "Upload a CSV, TSV, Excel (.xlsx) or JSON Lines file."
            )
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return
    if b"\x00" in data[:65536]:
        raise DataError(
            f"The file '{name}' contains binary data (NUL bytes), so it is not a text table. "
            "Export your tickets as CSV (UTF-8) or .xlsx and upload that."
        )


def sniff_delimiter(text: str) -> str:
    """Guess the delimiter of a delimited text among , ; tab |; comma when nothing fits."""
    sample = text[:_SNIFF_CHARS]
    if len(text) > _SNIFF_CHARS and "\n" in sample:
        sample = sample[: sample.rindex("\n")]
    try:
        delimiter = csv.Sniffer().sniff(sample, delimiters=DELIMITER_CANDIDATES).delimiter
    except csv.Error:
        delimiter = None
    if delimiter and delimiter in DELIMITER_CANDIDATES and _is_consistent(sample, delimiter):
        return delimiter
    consistent = [d for d in DELIMITER_CANDIDATES if _is_consistent(sample, d)]
    return max(consistent, key=lambda d: _header_width(sample, d), default=",")


def _is_consistent(sample: str, delimiter: str) -> bool:
    """True when the header splits into several fields and most rows have as many."""
    rows = [row for row in _parse_prefix(sample, delimiter) if row]
    if not rows or len(rows[0]) < 2:
        return False
    same = sum(1 for row in rows[1:] if len(row) == len(rows[0]))
    return len(rows) == 1 or same >= 0.8 * (len(rows) - 1)


def _header_width(sample: str, delimiter: str) -> int:
    rows = _parse_prefix(sample, delimiter)
    return len(rows[0]) if rows else 0


def _parse_prefix(sample: str, delimiter: str, limit: int = 50) -> list[list[str]]:
    rows: list[list[str]] = []
    try:
        for row in csv.reader(io.StringIO(sample), delimiter=delimiter):
            rows.append(row)
            if len(rows) >= limit:
                break
    except csv.Error:
        return rows
    return rows


def _read_delimited_rows(text: str, delimiter: str, name: str) -> list[list[Any]]:
    try:
        frame = pd.read_csv(io.StringIO(text), sep=delimiter, **DELIMITED_OPTIONS)
    except pd.errors.EmptyDataError:
        raise empty_file_error(name) from None
    except pd.errors.ParserError as exc:
        raise inconsistent_table_error(exc, delimiter, name) from None
    return frame.to_numpy(dtype=object).tolist()


#: How pandas reads a delimited file: no header inference, every cell a string, "" for empty.
DELIMITED_OPTIONS: dict[str, Any] = {
    "header": None,
    "dtype": str,
    "keep_default_na": False,
    "na_filter": False,
    "skip_blank_lines": True,
}


def inconsistent_table_error(exc: Exception, delimiter: str, name: str) -> DataError:
    """What pandas' tokenizer found wrong with a delimited file, said for the analyst."""
    shown = "tab" if delimiter == "\t" else f"'{delimiter}'"
    return DataError(
        f"The file '{name}' is not a consistent table with {shown} between values: "
        f"{_parser_problem(exc)}. Check that every row has as many values as the header "
        "row, and that text containing the delimiter or line breaks is wrapped in double "
        "quotes."
    )


def _parser_problem(exc: Exception) -> str:
    """pandas' tokenizer message, said plainly when it is the usual 'too many fields'."""
    message = str(exc).strip()
    found = _FIELD_COUNT_ERROR.search(message)
    if found:
        expected, line, seen = found.groups()
        return f"line {line} has {seen} values but the first row has {expected}"
    return message.splitlines()[0].rstrip(".")


def _read_excel_rows(data: bytes, name: str) -> list[list[Any]]:
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:
        raise DataError(
            f"The Excel file '{name}' is damaged or is not really an .xlsx file "
            f"({type(exc).__name__}). Open it in Excel, save it again as .xlsx (or export CSV) "
            "and upload that."
        ) from None
    try:
        sheet = workbook.worksheets[0]
        return [list(row) for row in sheet.iter_rows(values_only=True)]
    except Exception as exc:
        raise DataError(
            f"The Excel file '{name}' could not be read ({type(exc).__name__}: {exc}). "
            "Save it again as .xlsx from Excel, or export CSV, and upload that."
        ) from None
    finally:
        workbook.close()


def _read_json_rows(text: str, name: str) -> list[list[Any]]:
    records = _json_records(text, name)
    header = json_keys(records)
    return [header, *json_rows(records, header)]


def json_keys(records: list[dict[str, Any]]) -> list[str]:
    """Every field named in the records, in order of first appearance: the header row."""
    columns: dict[str, None] = {}
    for record in records:
        columns.update(dict.fromkeys(record))
    return list(columns)


def json_rows(records: list[dict[str, Any]], keys: list[str]) -> list[list[Any]]:
    """The records as rows under the header ``keys`` (a missing field is a missing cell)."""
    return [[record.get(key) for key in keys] for record in records]


def _json_records(text: str, name: str) -> list[dict[str, Any]]:
    """Records of a JSON list of objects ({"tickets": [...]} too), else of JSON Lines."""
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            return _objects(json.loads(stripped), name)
        except json.JSONDecodeError as exc:
            raise DataError(
                f"The JSON in '{name}' is malformed at line {exc.lineno}: {exc.msg}. "
                "Fix that line or upload a CSV instead."
            ) from None
    try:
        document = json.loads(stripped)
    except json.JSONDecodeError:
        return _json_lines(text, name)
    if isinstance(document, dict):
        wrapped = [value for value in document.values() if _is_list_of_objects(value)]
        return wrapped[0] if len(wrapped) == 1 else [document]
    return _json_lines(text, name)


def _is_list_of_objects(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _objects(items: Any, name: str) -> list[dict[str, Any]]:
    for number, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            raise DataError(
                f"Item {number} of the JSON list in '{name}' is not an object with named "
                'fields (like {"subject": "...", "category": "..."}). Every item must be one.'
            )
    return items


def _json_lines(text: str, name: str) -> list[dict[str, Any]]:
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        record = json_line_record(line, number, name)
        if record is not None:
            records.append(record)
    return records


def json_line_record(line: str, number: int, name: str) -> dict[str, Any] | None:
    """Line ``number`` of a JSON Lines file as a record; None for a blank line."""
    if not line.strip():
        return None
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise DataError(
            f"Line {number} of '{name}' is not valid JSON ({exc.msg}). JSON Lines files need "
            "one complete JSON object per line; fix or remove that line."
        ) from None
    if not isinstance(record, dict):
        raise DataError(
            f"Line {number} of '{name}' is not a JSON object with named fields (like "
            '{"subject": "...", "category": "..."}). Every line must be one.'
        )
    return record


def _rows_to_frame(rows: list[list[Any]], name: str) -> pd.DataFrame:
    """Turn header + data rows into a DataFrame of strings, checking the header."""
    shape, body = TableShape.from_rows(rows, name)
    if not body:
        raise no_tickets_error(shape.columns, name)
    return shape.frame(body)


def no_tickets_error(columns: list[str], name: str) -> DataError:
    return DataError(
        f"Your file has column names but no tickets: '{name}' has only the header row "
        f"({', '.join(columns)}). Add rows with tickets below it."
    )


@dataclass(frozen=True)
class TableShape:
    """What the header row says about a table's rows: the one home of the header rules.

    Cells become ``str`` (missing: ""); rows in which every cell is empty, and copies of the
    header row (left by pasting several exports together), are not data; a column with no name
    is dropped when it is empty and an error when it holds values; the header must name the
    columns (not be a ticket) without repeating a name. :func:`read_table` applies it to a
    whole file, :mod:`core.batch_scoring` to each chunk of a streamed one.
    """

    header: tuple[str, ...]  # the stripped header cells, one per raw column
    keep: tuple[int, ...]  # positions of the columns kept
    name: str  # the file's name, for messages

    @property
    def columns(self) -> list[str]:
        return [self.header[i] for i in self.keep]

    @classmethod
    def from_rows(cls, rows: list[list[Any]], name: str) -> tuple[TableShape, list[list[str]]]:
        """The shape given by the first non-empty row, and the data rows that follow it
        (shaped). Raises DataError for an empty table or a header that does not name columns.
        """
        rows = [row for row in _text_rows(rows) if _has_text(row)]
        if not rows:
            raise empty_file_error(name)
        width = max(len(row) for row in rows)
        rows = [row + [""] * (width - len(row)) for row in rows]
        header = tuple(cell.strip() for cell in rows[0])
        body = [row for row in rows[1:] if not _is_copy_of(row, header)]
        keep = tuple(i for i in range(width) if header[i] or any(row[i].strip() for row in body))
        shape = cls(header, keep, name)
        kept = [[row[i] for i in keep] for row in body]
        _check_header(shape.columns, kept, name)
        return shape, kept

    def body(self, rows: list[list[Any]]) -> list[list[str]]:
        """Later data rows in this shape (the kept columns; empty rows, header copies out)."""
        width = len(self.header)
        shaped = []
        for row in _text_rows(rows):
            if not _has_text(row) or _is_copy_of(row, self.header):
                continue
            row = row + [""] * (width - len(row))
            self._check_dropped(row)
            shaped.append([row[i] for i in self.keep])
        return shaped

    def frame(self, body: list[list[str]]) -> pd.DataFrame:
        columns = pd.Index(self.columns, dtype=object)
        return pd.DataFrame(body, columns=columns, dtype=object)

    def _check_dropped(self, row: list[str]) -> None:
        """A value in a column dropped for having no name and no values (so far)."""
        if len(self.keep) == len(row):
            return
        kept = set(self.keep)
        named = [i + 1 for i, cell in enumerate(row) if i not in kept and cell.strip()]
        if named:
            raise _nameless_column_error([str(i) for i in named], self.name)


def _text_rows(rows: list[list[Any]]) -> list[list[str]]:
    return [[cell_to_str(cell) for cell in row] for row in rows]


def _has_text(row: list[str]) -> bool:
    return any(cell.strip() for cell in row)


def _is_copy_of(row: list[str], header: tuple[str, ...]) -> bool:
    """A copy of the header row (as wide as it, or wider with only empty cells beyond)."""
    cells = [cell.strip() for cell in row] + [""] * (len(header) - len(row))
    return tuple(cells[: len(header)]) == header and not any(cells[len(header) :])


def _nameless_column_error(numbers: list[str], name: str) -> DataError:
    return DataError(
        f"Column {', '.join(numbers)} of '{name}' has no name in the header row but contains "
        "values. Give every column a name in the first row."
    )


def _check_header(header: list[str], body: list[list[str]], name: str) -> None:
    data_like = _data_like_header_cells(header, body)
    if data_like and len(data_like) * 2 >= len(header):
        shown = ", ".join(f"'{_shorten(cell)}'" for cell in data_like)
        raise DataError(
            f"The first row of '{name}' looks like a ticket, not column names (it holds {shown}). "
            "The first row must name the columns, e.g. subject, body, category: add such a "
            "header row."
        )
    blank = [str(i + 1) for i, column in enumerate(header) if not column]
    if blank:
        raise _nameless_column_error(blank, name)
    duplicates = [column for column, count in Counter(header).items() if count > 1]
    if duplicates:
        names = ", ".join(f"'{c}'" for c in duplicates)
        raise DataError(
            f"The header row of '{name}' uses the same column name more than once: {names}. "
            "Rename the columns so every name is different."
        )


def _data_like_header_cells(header: list[str], body: list[list[str]]) -> list[str]:
    """Header cells that look like data: a number, or a value that recurs in its own column."""
    sample = body[:HEADER_SAMPLE_ROWS]
    found = []
    for i, cell in enumerate(header):
        if cell and (_NUMBER.match(cell) or any(row[i].strip() == cell for row in sample)):
            found.append(cell)
    return found


def _shorten(text: str, width: int = 60) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"
