"""Cells and rows as text: one way for training, scoring and everything else."""

from __future__ import annotations

import io

import pandas as pd
import pytest

from core import scoring
from core.errors import DataError
from core.schema import LabelScheme
from core.tables import read_table
from core.text import cell_to_str, ticket_texts


def test_cell_to_str_normalises_values():
    """Cells from any source become text the same way."""
    values = [None, float("nan"), pd.NA, 3.0, 2.5, True, "x", {"a": 1}]
    assert [cell_to_str(v) for v in values] == ["", "", "", "3", "2.5", "true", "x", '{"a": 1}']


CSV_WITH_NUMBERS = (
    "id,order,subject,body,category\n"
    "1,12,Refund,for order 12,billing\n"
    "2,,Login fails, ,login\n"
    "3,7,,parcel is late,shipping\n"
)


def numeric_frames() -> dict[str, pd.DataFrame]:
    """The same tickets read from a CSV file, and built in code with floats, ints and NaN."""
    built = pd.DataFrame(
        {
            "order": [12.0, float("nan"), 7.0, 2.5],
            "count": [1, 2, 3, 4],
            "subject": ["Refund", "Login fails", None, True],
            "body": ["for order 12", " ", "parcel is late", "  late  "],
            "category": ["billing", "login", "shipping", "shipping"],
        }
    )
    return {
        "csv": read_table(CSV_WITH_NUMBERS.encode(), filename="t.csv"),
        "pandas-csv": pd.read_csv(io.StringIO(CSV_WITH_NUMBERS)),
        "built": built,
    }


@pytest.mark.parametrize("source", ["csv", "pandas-csv", "built"])
def test_training_and_scoring_see_the_same_texts(source):
    """A numeric cell is "12" both when a model is trained and when it scores (was "12.0" at
    scoring), a missing one is left out both times."""
    table = numeric_frames()[source]
    columns = [c for c in ("order", "count", "subject", "body") if c in table.columns]
    prepared = LabelScheme(tuple(columns), "category", min_count=1).apply(table)
    scored = scoring.ticket_texts(table, columns)
    assert [scored[row] for row in prepared.frame["row"]] == prepared.frame["text"].tolist()
    assert scored[0].startswith("12\n")
    assert scored == ticket_texts(table, columns)


def test_ticket_texts_joins_non_empty_parts_with_a_line_break():
    table = pd.DataFrame(
        {"subject": ["Refund", "", " ", 3.0], "body": ["for order 7", "hi", "", 1]}
    )
    assert ticket_texts(table, ["subject", "body"]) == ["Refund\nfor order 7", "hi", "", "3\n1"]


def test_ticket_texts_names_missing_and_repeated_columns():
    with pytest.raises(DataError, match=r"no column 'body'.*Columns in the file: subject"):
        ticket_texts(pd.DataFrame({"subject": ["x"]}), ["body"])
    repeated = pd.DataFrame([["a", "b"]], columns=["body", "body"])
    with pytest.raises(DataError, match="more than one column named 'body'"):
        ticket_texts(repeated, ["body"])
