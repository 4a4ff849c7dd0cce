"""Score a ticket file of any size in constant memory: read a chunk, score it, append it.

CSV/TSV are read with pandas' ``chunksize`` and JSON Lines line by line, after detecting the
encoding (and delimiter) on the first bytes with the same rules as :func:`core.tables.read_table`.
Excel files cannot be streamed and are read whole. Each scored chunk is made spreadsheet-safe
and appended to the output CSV, so the output equals scoring the whole table at once.
"""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pandas as pd

from core.encodings import decode_text
from core.errors import DataError
from core.scoring import score_table, spreadsheet_safe
from core.tables import file_extension, read_table, sniff_delimiter
from core.text import cell_to_str

DEFAULT_CHUNK_ROWS = 5000
_DETECT_BYTES = 64 * 1024
#: Excel has no streaming reader; it is read whole, so it keeps a size limit.
EXCEL_MAX_BYTES = 200 * 1024 * 1024


@dataclass(frozen=True)
class StreamProgress:
    """Where a streaming job is: tickets written, and the share of the input file read."""

    rows: int
    fraction: float
    seconds: float

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


def iter_table_chunks(
    path: str | os.PathLike,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    *,
    encoding: str | None = None,
):
    """Yield ``(frame, fraction_read)`` for consecutive chunks of a ticket file.

    Every frame has the same columns (those of the file's header, or of the first JSON
    records), cells as ``str``, missing cells "" — the same cells :func:`read_table` returns.
    """
    path = Path(path)
    extension = file_extension(path.name)
    if not path.is_file():
        raise DataError(f"There is no file at '{path}'. Check the path and try again.")
    if path.stat().st_size == 0:
        raise DataError(f"The file '{path.name}' is empty. It needs a header row and tickets.")
    if extension == ".xlsx":
        yield read_table(path, max_bytes=EXCEL_MAX_BYTES), 1.0
        return
    encoding, prefix_text = detect_encoding(path, encoding)
    if extension in (".jsonl", ".json") and not _looks_like_json_lines(prefix_text):
        # One JSON document (a list, or {"tickets": [...]}) must be parsed whole.
        yield read_table(path, max_bytes=EXCEL_MAX_BYTES, encoding=encoding), 1.0
        return
    with open(path, "rb") as raw:
        text = io.TextIOWrapper(raw, encoding=encoding, newline="")
        fraction = _fraction_reader(raw, path.stat().st_size)
        if extension in (".jsonl", ".json"):
            chunks = _json_line_chunks(text, path.name, chunk_rows)
        else:
            delimiter = "\t" if extension == ".tsv" else sniff_delimiter(prefix_text)
            chunks = _delimited_chunks(text, delimiter, path.name, chunk_rows)
        try:
            for frame in chunks:
                yield frame, fraction()
        except UnicodeDecodeError as exc:
            raise DataError(
                f"Part of '{path.name}' is not {encoding} text although its start is "
                f"({exc.reason}). Save the whole file as 'CSV UTF-8' and retry."
            ) from None


def detect_encoding(path: Path, encoding: str | None = None) -> tuple[str, str]:
    """The encoding of the file judged on its first bytes (or the one named), and those bytes
    decoded."""
    with open(path, "rb") as handle:
        head = handle.read(_DETECT_BYTES)
        more = bool(handle.read(1))
    if more:
        if head.startswith((b"\xff\xfe", b"\xfe\xff")):
            head = head[: len(head) // 2 * 2]
        elif b"\n" in head:
            # A newline byte is never inside a UTF-8, GB18030 or cp1252 character: cutting
            # there cannot split one, which would fool the detection.
            head = head[: head.rindex(b"\n") + 1]
    text, used = decode_text(head, path.name, encoding)
    return used, text


def _looks_like_json_lines(text: str) -> bool:
    first = next((line for line in text.splitlines() if line.strip()), "")
    try:
        return isinstance(json.loads(first), dict)
    except json.JSONDecodeError:
        return False


def _fraction_reader(raw: IO[bytes], size: int) -> Callable[[], float]:
    return lambda: min(1.0, raw.tell() / size) if size else 1.0


def _delimited_chunks(
    text: IO[str], delimiter: str, name: str, chunk_rows: int
) -> Iterator[pd.DataFrame]:
    reader = pd.read_csv(
        text,
        sep=delimiter,
        header=None,
        dtype=str,
        keep_default_na=False,
        na_filter=False,
        skip_blank_lines=True,
        chunksize=chunk_rows,
    )
    shaper: _Shaper | None = None
    try:
        for chunk in reader:
            rows = chunk.to_numpy(dtype=object).tolist()
            if shaper is None:
                first = _first_chunk(rows, name)
                shaper = _Shaper(rows[0], list(first.columns))
                rows = rows[1:]
            yield shaper.frame(rows)
    except pd.errors.ParserError as exc:
        raise DataError(
            f"The file '{name}' is not a consistent table: {str(exc).strip().splitlines()[0]}. "
            "Check that every row has as many values as the header row."
        ) from None
    except pd.errors.EmptyDataError:
        raise DataError(f"The file '{name}' is empty. It needs a header row and tickets.") from None


def _first_chunk(rows: list[list[Any]], name: str) -> pd.DataFrame:
    stand_in = "first-chunk.tsv"
    try:
        return read_table(_as_tsv(rows), filename=stand_in)
    except DataError as exc:
        raise DataError(str(exc).replace(stand_in, name)) from None


def _as_tsv(rows: list[list[Any]]) -> bytes:
    """Rows back as TSV bytes, so read_table checks the header exactly as for a whole file."""
    buffer = io.StringIO()
    pd.DataFrame(rows).to_csv(buffer, sep="\t", header=False, index=False)
    return buffer.getvalue().encode("utf-8")


class _Shaper:
    """Turns raw rows of later chunks into frames with the first chunk's columns.

    Like read_table: cells become strings, empty rows and copies of the header row are
    dropped, columns named in the header are kept.
    """

    def __init__(self, raw_header: list[Any], columns: list[str]) -> None:
        header = [cell_to_str(c).strip() for c in raw_header]
        self.header = header
        self.columns = columns
        self.positions = [header.index(c) for c in columns]

    def frame(self, rows: list[list[Any]]) -> pd.DataFrame:
        width = len(self.header)
        body = []
        for row in rows:
            cells = [cell_to_str(c) for c in row] + [""] * (width - len(row))
            stripped = [c.strip() for c in cells]
            if any(stripped) and stripped[:width] != self.header:
                body.append([cells[i] for i in self.positions])
        return pd.DataFrame(body, columns=pd.Index(self.columns, dtype=object), dtype=object)


def _json_line_chunks(text: IO[str], name: str, chunk_rows: int) -> Iterator[pd.DataFrame]:
    columns: list[str] | None = None
    records: list[dict[str, Any]] = []
    for number, line in enumerate(text, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(
                f"Line {number} of '{name}' is not valid JSON ({exc.msg}). JSON Lines files need "
                "one complete JSON object per line; fix or remove that line."
            ) from None
        if not isinstance(record, dict):
            raise DataError(f"Line {number} of '{name}' is not a JSON object with named fields.")
        records.append(record)
        if len(records) >= chunk_rows:
            columns = columns or _json_columns(records)
            yield _json_frame(records, columns)
            records = []
    if records or columns is None:
        if columns is None and not records:
            raise DataError(f"The file '{name}' has no tickets.")
        columns = columns or _json_columns(records)
        yield _json_frame(records, columns)


def _json_columns(records: list[dict[str, Any]]) -> list[str]:
    """The fields of the first chunk; fields seen only later are not in the output."""
    columns: dict[str, None] = {}
    for record in records:
        columns.update(dict.fromkeys(str(k).strip() for k in record))
    return list(columns)


def _json_frame(records: list[dict[str, Any]], columns: list[str]) -> pd.DataFrame:
    stripped = [{str(k).strip(): v for k, v in r.items()} for r in records]
    rows = [[cell_to_str(r.get(c)) for c in columns] for r in stripped]
    rows = [row for row in rows if any(cell.strip() for cell in row)]
    return pd.DataFrame(rows, columns=pd.Index(columns, dtype=object), dtype=object)


def score_file(
    predictor,
    source: str | os.PathLike,
    out: str | os.PathLike,
    text_columns: Sequence[str],
    *,
    threshold: float | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    encoding: str | None = None,
    on_progress: Callable[[StreamProgress], None] | None = None,
) -> int:
    """Score ``source`` chunk by chunk into the CSV ``out``; return the number of rows.

    The output is written to ``out + '.partial'`` and renamed at the end, so a failure never
    leaves a file that looks complete.
    """
    started = time.monotonic()
    out = Path(out)
    if not out.parent.is_dir():
        raise DataError(f"There is no folder '{out.parent}' to write '{out.name}' into.")
    partial = out.with_name(out.name + ".partial")
    rows = 0
    try:
        with open(partial, "w", encoding="utf-8", newline="") as handle:
            for frame, fraction in iter_table_chunks(source, chunk_rows, encoding=encoding):
                scored = score_table(predictor, frame, text_columns, threshold=threshold)
                spreadsheet_safe(scored).to_csv(handle, index=False, header=rows == 0)
                rows += len(scored)
                if on_progress is not None:
                    on_progress(StreamProgress(rows, fraction, time.monotonic() - started))
        partial.replace(out)
    finally:
        partial.unlink(missing_ok=True)
    return rows


def progress_bar(progress: StreamProgress, width: int = 30) -> str:
    filled = int(width * progress.fraction)
    return (
        f"[{'#' * filled}{'.' * (width - filled)}] {progress.fraction:4.0%} "
        f"{progress.rows:,} tickets, {progress.rate:,.0f}/s"
    )
