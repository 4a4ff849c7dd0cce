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
from core.tables import (
    DELIMITED_OPTIONS,
    HEADER_SAMPLE_ROWS,
    TableShape,
    empty_file_error,
    file_extension,
    inconsistent_table_error,
    json_keys,
    json_line_record,
    json_rows,
    no_tickets_error,
    read_table,
    reject_binary,
    sniff_delimiter,
)

DEFAULT_CHUNK_ROWS = 5000
_DETECT_BYTES = 64 * 1024
#: Up to this size a ticket file's lines are counted before it is read (one pass over the
#: bytes, ~10 ms per MB), so the share read is right from the first chunk. The byte position
#: is not: pandas' CSV parser reads ~256 KB ahead, which on a 1.6 MB file made the first
#: "about N tickets" five times too low. Above it, that read-ahead is under half a percent.
_COUNT_LINES_MAX_BYTES = 64 * 1024 * 1024
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
    filename: str | None = None,
) -> Iterator[tuple[pd.DataFrame, float]]:
    """Yield ``(frame, fraction_read)`` for consecutive chunks of a ticket file.

    Every frame has the same columns (those of the file's header, or of the first JSON
    records), cells as ``str``, missing cells "" — the same cells :func:`read_table` returns.
    ``filename`` (default: the path's name) gives the file type and names it in messages.
    """
    path = Path(path)
    name = filename or path.name
    extension = file_extension(name)
    if not path.is_file():
        raise DataError(f"There is no file at '{path}'. Check the path and try again.")
    if path.stat().st_size == 0:
        raise empty_file_error(name)
    whole = {"filename": name, "max_bytes": EXCEL_MAX_BYTES}
    if extension == ".xlsx":
        yield from _whole(read_table(path, **whole), chunk_rows)
        return
    encoding, prefix_text = detect_encoding(path, encoding, filename=name)
    if extension in (".jsonl", ".json") and not _looks_like_json_lines(prefix_text):
        # One JSON document (a list, or {"tickets": [...]}) must be parsed whole.
        yield from _whole(read_table(path, encoding=encoding, **whole), chunk_rows)
        return
    json_lines = extension in (".jsonl", ".json")
    size = path.stat().st_size
    # Rows expected: the lines, less the header row of a CSV/TSV (an estimate: a quoted cell
    # may hold a line break, and blank lines are skipped).
    expected = _line_count(path) - (not json_lines) if size <= _COUNT_LINES_MAX_BYTES else 0
    with open(path, "rb") as raw:
        text = io.TextIOWrapper(raw, encoding=encoding, newline="")
        fraction = _fraction_reader(raw, size)
        if json_lines:
            raw_chunks = _json_row_chunks(text, name, chunk_rows)
        else:
            delimiter = "\t" if extension == ".tsv" else sniff_delimiter(prefix_text)
            raw_chunks = _delimited_row_chunks(text, delimiter, name, chunk_rows)
        handed_on = 0
        try:
            for frame in _shaped_frames(raw_chunks, name, chunk_rows):
                handed_on += len(frame)
                yield frame, min(1.0, handed_on / expected) if expected > 0 else fraction()
        except UnicodeDecodeError as exc:
            raise DataError(
                f"Part of '{name}' is not {encoding} text although its start is "
                f"({exc.reason}). Save the whole file as 'CSV UTF-8' and retry."
            ) from None


def _whole(table: pd.DataFrame, chunk_rows: int) -> Iterator[tuple[pd.DataFrame, float]]:
    """A table read whole, handed on in chunks (the fraction: the share of rows handed on)."""
    for start in range(0, len(table), chunk_rows):
        chunk = table.iloc[start : start + chunk_rows].reset_index(drop=True)
        yield chunk, min(1.0, (start + len(chunk)) / len(table))


def detect_encoding(
    path: Path, encoding: str | None = None, *, filename: str | None = None
) -> tuple[str, str]:
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
    reject_binary(head, filename or path.name)
    text, used = decode_text(head, filename or path.name, encoding)
    return used, text


def _looks_like_json_lines(text: str) -> bool:
    first = next((line for line in text.splitlines() if line.strip()), "")
    try:
        return isinstance(json.loads(first), dict)
    except json.JSONDecodeError:
        return False


def _fraction_reader(raw: IO[bytes], size: int) -> Callable[[], float]:
    return lambda: min(1.0, raw.tell() / size) if size else 1.0


def _line_count(path: Path) -> int:
    """Lines in a file (a last line without a line break counts)."""
    lines, last = 0, b"\n"
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            lines += block.count(b"\n")
            last = block[-1:]
    return lines + (last != b"\n")


def _delimited_row_chunks(
    text: IO[str], delimiter: str, name: str, chunk_rows: int
) -> Iterator[list[list[Any]]]:
    """Raw rows (the header row first) read ``chunk_rows`` at a time."""
    try:
        reader = pd.read_csv(text, sep=delimiter, chunksize=chunk_rows, **DELIMITED_OPTIONS)
        for chunk in reader:
            yield chunk.to_numpy(dtype=object).tolist()
    except pd.errors.ParserError as exc:
        raise inconsistent_table_error(exc, delimiter, name) from None
    except pd.errors.EmptyDataError:
        raise empty_file_error(name) from None


def _json_row_chunks(text: IO[str], name: str, chunk_rows: int) -> Iterator[list[list[Any]]]:
    """Raw rows of a JSON Lines file, the header (the first chunk's fields) first; fields seen
    only in later chunks are not in the output."""
    keys: list[str] | None = None
    records: list[dict[str, Any]] = []
    for number, line in enumerate(text, start=1):
        record = json_line_record(line, number, name)
        if record is not None:
            records.append(record)
        if len(records) >= chunk_rows or (keys is None and len(records) > HEADER_SAMPLE_ROWS):
            if keys is None:
                keys = json_keys(records)
                yield [keys]
            yield json_rows(records, keys)
            records = []
    if keys is None:
        keys = json_keys(records)
        yield [keys]
    yield json_rows(records, keys)


def _shaped_frames(
    raw_chunks: Iterator[list[list[Any]]], name: str, chunk_rows: int
) -> Iterator[pd.DataFrame]:
    """Frames of at most ``chunk_rows`` tickets, shaped by the header like read_table.

    The header is judged on as many rows as :func:`read_table` looks at, so a file gets the
    same verdict streamed or whole.
    """
    shape: TableShape | None = None
    first: list[list[Any]] = []
    rows = 0
    for raw in raw_chunks:
        if shape is None:
            first.extend(raw)
            if len(first) <= HEADER_SAMPLE_ROWS:
                continue
            shape, body = TableShape.from_rows(first, name)
        else:
            body = shape.body(raw)
        rows += len(body)
        yield from _pieces(shape.frame(body), chunk_rows)
    if shape is None:
        shape, body = TableShape.from_rows(first, name)
        rows += len(body)
        yield from _pieces(shape.frame(body), chunk_rows)
    if not rows:
        raise no_tickets_error(shape.columns, name)


def _pieces(frame: pd.DataFrame, chunk_rows: int) -> Iterator[pd.DataFrame]:
    for start in range(0, len(frame), chunk_rows):
        yield frame.iloc[start : start + chunk_rows].reset_index(drop=True)


def score_file(
    predictor,
    source: str | os.PathLike,
    out: str | os.PathLike,
    text_columns: Sequence[str],
    *,
    threshold: float | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    encoding: str | None = None,
    filename: str | None = None,
    on_progress: Callable[[StreamProgress], None] | None = None,
    on_chunk: Callable[[pd.DataFrame, int], None] | None = None,
    excel_bom: bool = False,
) -> int:
    """Score ``source`` chunk by chunk into the CSV ``out``; return the number of rows.

    ``filename`` names the file (type and messages) when the path does not, e.g. an upload
    kept under another name. ``on_chunk(scored, first_row)`` sees each scored chunk before it
    is made safe for Excel, with the position of its first row in the file. ``excel_bom``
    starts the output with a UTF-8 byte order mark, so Excel reads accents right.

    The output is written to ``out + '.partial'`` and renamed at the end, so a failure never
    leaves a file that looks complete.
    """
    started = time.monotonic()
    out = Path(out)
    if not out.parent.is_dir():
        raise DataError(f"There is no folder '{out.parent}' to write '{out.name}' into.")
    partial = out.with_name(out.name + ".partial")
    rows = 0
    chunks = iter_table_chunks(source, chunk_rows, encoding=encoding, filename=filename)
    try:
        with open(partial, "w", encoding="utf-8-sig" if excel_bom else "utf-8", newline="") as f:
            for frame, fraction in chunks:
                scored = score_table(predictor, frame, text_columns, threshold=threshold)
                if on_chunk is not None:
                    on_chunk(scored, rows)
                spreadsheet_safe(scored).to_csv(f, index=False, header=rows == 0)
                rows += len(scored)
                if on_progress is not None:
                    on_progress(StreamProgress(rows, fraction, time.monotonic() - started))
        partial.replace(out)
    finally:
        partial.unlink(missing_ok=True)
    return rows


def peek_columns(
    path: str | os.PathLike, *, filename: str | None = None, encoding: str | None = None
) -> list[str]:
    """The columns of a ticket file, read from its start (Excel: the whole file), checked like
    :func:`read_table` checks them. DataError when the file cannot be read as tickets."""
    chunks = iter_table_chunks(path, HEADER_SAMPLE_ROWS, encoding=encoding, filename=filename)
    try:
        frame, _ = next(chunks)
    finally:
        chunks.close()
    return [str(column) for column in frame.columns]


def progress_bar(progress: StreamProgress, width: int = 30) -> str:
    filled = int(width * progress.fraction)
    return (
        f"[{'#' * filled}{'.' * (width - filled)}] {progress.fraction:4.0%} "
        f"{progress.rows:,} tickets, {progress.rate:,.0f}/s"
    )
