"""Hypothesis strategies for hostile ticket files, and the properties every input must satisfy.

Shared by tests/test_fuzz.py (small budget, runs in CI) and bench/fuzz_long.py (big budget).
A property holds when the code returns a valid result or raises a :class:`TicketTuneError`
with a message; any other exception is a bug.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from collections import Counter
from pathlib import Path

import pandas as pd
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from core.errors import TicketTuneError

settings.register_profile(
    "ci",
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
)
settings.register_profile(
    "long",
    max_examples=int(os.environ.get("TICKETTUNE_FUZZ_EXAMPLES", "2000")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

EXTENSIONS = (".csv", ".tsv", ".txt", ".jsonl", ".json", ".xlsx", ".xls", "")
ENCODINGS = ("utf-8", "utf-8-sig", "utf-16", "cp1252", "gb18030", "latin-1")
HOSTILE_CELLS = (
    "",
    " ",
    "\t",
    "\x00",
    "=1+1",
    "+SUM(A1)",
    "-2",
    "@cmd",
    '=HYPERLINK("http://evil")',
    '"',
    '""',
    "a,b",
    "line\nbreak",
    "\r",
    "12",
    "3.0",
    "nan",
    "NULL",
    "None",
    "<script>alert(1)</script>",
    "[x](http://evil)",
    "$x^2$",
    "é",
    "中文",
    "\ufeff",
    "\u202e",
    "🎫",
)

#: A single cell: ordinary words, a hostile classic, or arbitrary unicode (NUL included).
cells = st.one_of(
    st.sampled_from(HOSTILE_CELLS),
    st.text(min_size=0, max_size=30),
    st.text(alphabet="abc xyz", min_size=1, max_size=20),
)
column_names = st.one_of(
    st.sampled_from(["text", "label", "body", "category", "subject", " text ", "=x", "", "1"]),
    st.text(min_size=0, max_size=12),
)


NICE_NAMES = ("text", "label", "body", "category", "subject", "team", "id", "notes")
LABEL_VALUES = ("billing", "login", " billing ", "Billing", "1", "2.0", "", " ", "nan", "=x")


@st.composite
def rows_of_cells(draw, max_columns: int = 6, max_rows: int = 12) -> list[list[str]]:
    """A header row and data rows; often tidy, sometimes ragged, blank or duplicate names."""
    width = draw(st.integers(1, max_columns))
    if draw(st.booleans()):
        header = (
            draw(st.lists(st.sampled_from(NICE_NAMES), min_size=width, max_size=width, unique=True))
            if width <= len(NICE_NAMES)
            else None
        )
    else:
        header = None
    if header is None:
        header = draw(st.lists(column_names, min_size=width, max_size=width))
    values = st.one_of(cells, st.sampled_from(LABEL_VALUES))
    ragged = draw(st.booleans())
    size = st.integers(0, width + 2) if ragged else st.just(width)
    body = [
        draw(st.lists(values, min_size=n, max_size=n))
        for n in draw(st.lists(size, min_size=0, max_size=max_rows))
    ]
    return [header, *body]


def delimited(rows: list[list[str]], delimiter: str, quote: bool) -> str:
    if quote:
        buffer = io.StringIO()
        import csv

        csv.writer(buffer, delimiter=delimiter, lineterminator="\n").writerows(rows)
        return buffer.getvalue()
    return "\n".join(delimiter.join(row) for row in rows) + "\n"


@st.composite
def table_text(draw) -> str:
    rows = draw(rows_of_cells())
    delimiter = draw(st.sampled_from([",", ";", "\t", "|"]))
    return delimited(rows, delimiter, draw(st.booleans()))


@st.composite
def table_file(draw) -> tuple[bytes, str]:
    """(bytes, file name) of something an analyst might upload, from fine to hostile."""
    kind = draw(st.sampled_from(["text", "text", "bytes", "json", "wide", "big-cell", "xlsx"]))
    extension = draw(st.sampled_from(EXTENSIONS[:3] * 4 + EXTENSIONS))
    if kind == "bytes":
        data = draw(st.binary(max_size=2_000))
    elif kind == "json":
        data = draw(json_text()).encode("utf-8")
        extension = draw(st.sampled_from([".jsonl", ".json"]))
    elif kind == "xlsx":
        data, extension = draw(xlsx_bytes()), ".xlsx"
    else:
        text = draw(table_text()) if kind == "text" else draw(wide_or_big(kind))
        data = encode(text, draw(st.sampled_from(ENCODINGS)))
        if kind == "text" and draw(st.booleans()):
            data = data[: draw(st.integers(0, len(data)))]  # truncated upload
        if kind == "text" and draw(st.booleans()):
            data = mixed_encodings(data, draw(st.sampled_from(ENCODINGS)))
    return data, "tickets" + extension


def encode(text: str, encoding: str) -> bytes:
    return text.encode(encoding, errors="replace")


def mixed_encodings(data: bytes, other: str) -> bytes:
    """Append a row saved in another encoding (two exports pasted together)."""
    return data + "é,ü,中\n".encode(other, errors="replace")


@st.composite
def wide_or_big(draw, kind: str) -> str:
    if kind == "wide":
        width = draw(st.integers(500, 3_000))
        header = [f"c{i}" for i in range(width)]
        if draw(st.booleans()):
            header[-1] = header[0]  # a duplicate far to the right
        row = ["x"] * width
        return delimited([header, row, row], ",", False)
    cell = draw(st.sampled_from(["a", "a b ", "=", "\x00", "é"])) * (1_000_000 // 2)
    return delimited([["text", "label"], [cell, "billing"], ["short", "login"]], ",", True)


@st.composite
def json_text(draw) -> str:
    import json

    values = st.one_of(cells, st.integers(), st.floats(), st.none(), st.booleans())
    record = st.dictionaries(column_names, values, max_size=4)
    document = draw(
        st.one_of(
            st.lists(record, max_size=5),
            st.lists(st.one_of(record, values), max_size=5),
            record,
            values,
        )
    )
    if isinstance(document, list) and draw(st.booleans()):
        return "\n".join(json.dumps(item) for item in document)
    text = json.dumps(document)
    return text[: draw(st.integers(0, len(text)))] if draw(st.booleans()) else text


@st.composite
def xlsx_bytes(draw) -> bytes:
    from openpyxl import Workbook

    rows = draw(rows_of_cells(max_rows=6))
    workbook = Workbook()
    sheet = workbook.active
    for row in rows:
        sheet.append([_excel_safe(cell) for cell in row])
    buffer = io.BytesIO()
    workbook.save(buffer)
    data = buffer.getvalue()  # its zip timestamps change: draw where to cut, not a byte count
    return data[: len(data) * draw(st.integers(0, 1000)) // 1000] if draw(st.booleans()) else data


def _excel_safe(cell: str) -> str:
    """openpyxl refuses control characters; what it cannot store is not an input at all."""
    return "".join(ch for ch in cell if ord(ch) >= 32 or ch in "\t\n\r")


@st.composite
def frames(draw) -> pd.DataFrame:
    """A DataFrame as the UI or an API may hand over: any cells, maybe duplicate names."""
    header = draw(rows_of_cells(max_rows=0))[0]
    width = len(header)
    labels = st.one_of(st.sampled_from(LABEL_VALUES), st.sampled_from([1, 1.0, None, float("nan")]))
    values = st.one_of(cells, labels, st.integers(-5, 5), st.floats(allow_nan=True), st.none())
    rows = draw(st.integers(0, 40))
    body = [
        draw(st.lists(st.one_of(labels, values), min_size=width, max_size=width))
        for _ in range(rows)
    ]
    return pd.DataFrame(body, columns=header, dtype=object)


# ----------------------------------------------------------------------------------- properties

TRIED: Counter[str] = Counter()


def check_read_table(data: bytes, name: str) -> pd.DataFrame | None:
    """A valid table (unique, non-empty str column names; str cells) or a DataError."""
    from core.tables import read_table

    TRIED["read_table"] += 1
    try:
        frame = read_table(data, filename=name)
    except TicketTuneError as exc:
        assert str(exc).strip(), "an error without a message"
        TRIED["read_table: clear error"] += 1
        return None
    TRIED["read_table: table"] += 1
    assert len(frame) >= 1 and len(frame.columns) >= 1
    names = list(frame.columns)
    assert all(isinstance(c, str) and c.strip() == c and c for c in names), names
    assert len(set(names)) == len(names), names
    for position in range(frame.shape[1]):
        assert all(isinstance(v, str) for v in frame.iloc[:, position])
    return frame


def check_scheme(
    frame: pd.DataFrame, text: list[int], label: int, min_count: int, drop_first: bool
) -> None:
    """LabelScheme.apply gives consistent PreparedData or a TicketTuneError with a message."""
    from core.schema import DROP_REASONS, LabelScheme

    TRIED["scheme"] += 1
    names = [str(c) for c in frame.columns]
    try:
        scheme = LabelScheme(
            text_columns=tuple(names[i % len(names)] for i in text),
            label_column=names[label % len(names)],
            drop=(str(frame.iloc[0, label % len(names)]),) if drop_first and len(frame) else (),
            min_count=min_count,
        )
        prepared = scheme.apply(frame)
    except TicketTuneError as exc:
        assert str(exc).strip()
        TRIED["scheme: clear error"] += 1
        return
    TRIED["scheme: prepared"] += 1
    kept = len(prepared.frame)
    assert kept + sum(prepared.dropped.values()) == len(frame) == prepared.rows_read
    assert set(prepared.dropped) == set(DROP_REASONS)
    assert len(prepared.labels) >= 2
    assert all(isinstance(t, str) and t for t in prepared.frame["text"])
    assert all(isinstance(t, str) and t.strip() == t and t for t in prepared.frame["label"])


def check_cli(run_dir: str, data: bytes, name: str, command: str) -> None:
    """In-process CLI on a written file: exit 0, or exit 2 with one line on stderr."""
    from core.cli import main

    TRIED["cli"] += 1
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / (os.path.basename(name) or "x.csv")
        path.write_bytes(data)
        argv = [command, run_dir, "--data", str(path)]
        if command == "predict":
            argv += ["--out", str(Path(folder) / "out.csv")]
        stderr, stdout = io.StringIO(), io.StringIO()
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(stdout):
            code = main(argv)
    lines = stderr.getvalue().strip().splitlines()
    TRIED[f"cli: exit {code}"] += 1
    if code == 2:
        assert len(lines) == 1 and lines[0].startswith("error: "), lines
        assert lines[0].isprintable(), f"terminal control characters in {lines[0]!r}"
    else:
        assert code == 0, (code, stderr.getvalue())


def check_scoring(predictor, frame: pd.DataFrame, text: list[int]) -> None:
    """score_table keeps every row and adds the prediction columns, or raises a DataError."""
    from core.scoring import score_table, spreadsheet_safe

    TRIED["scoring"] += 1
    names = list(frame.columns)
    columns = [str(names[i % len(names)]) for i in text] if names else ["text"]
    try:
        scored = score_table(predictor, frame, columns, threshold=0.5)
    except TicketTuneError as exc:
        assert str(exc).strip()
        TRIED["scoring: clear error"] += 1
        return
    TRIED["scoring: scored"] += 1
    assert len(scored) == len(frame)
    assert {"predicted_label", "confidence", "needs_review"} <= set(scored.columns)
    spreadsheet_safe(scored).to_csv(io.StringIO(), index=False)
