"""Which column holds what: describe each column of a table and guess the text and label columns.

The Data page preselects its guesses; the analyst always has the last word.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd

_TEXT_NAME_HINTS = ("body", "text", "description", "message", "content", "comment", "subject")
_TEXT_NAME_HINTS += ("title", "summary", "ticket", "email", "note", "request", "issue")
_LABEL_NAME_HINTS = ("label", "category", "class", "type", "topic", "intent", "tag", "queue")
_LABEL_NAME_HINTS += ("reason", "team", "group", "department", "priority")
_DATE_PATTERN = re.compile(r"^\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}([ T]\d{1,2}:\d{2}(:\d{2})?.*)?$")


def describe_columns(df: pd.DataFrame) -> list[dict[str, Any]]:
    """Summarise each column so the app can suggest which holds the text and which the label.

    Each dict has "name", "non_empty", "distinct", "mean_length" (characters, over non-empty
    cells), "examples" (up to 3 distinct values) and "kind": "text" (long, varied), "label" (a
    few values repeated), "id" (unique short values) or "other".
    """
    return [_describe(str(column), df[column]) for column in df.columns]


def _describe(name: str, column: pd.Series) -> dict[str, Any]:
    values = _clean_values(column)
    non_empty = len(values)
    distinct = int(values.nunique())
    mean_length = float(values.str.len().mean()) if non_empty else 0.0
    examples = [str(v) for v in values.drop_duplicates().head(3)]
    return {
        "name": name,
        "non_empty": non_empty,
        "distinct": distinct,
        "mean_length": round(mean_length, 1),
        "examples": examples,
        "kind": _guess_kind(values, distinct, mean_length),
    }


def _clean_values(column: pd.Series) -> pd.Series:
    values = column.astype(object).where(column.notna(), "").astype(str).str.strip()
    return values[values != ""]


def _guess_kind(values: pd.Series, distinct: int, mean_length: float) -> str:
    count = len(values)
    if count == 0:
        return "other"
    if distinct >= 2 and distinct <= _max_label_values(count) and mean_length <= 40:
        return "label"
    if _mostly_dates(values):
        return "other"
    if mean_length >= 15 and distinct >= 0.3 * count and values.str.contains(" ").mean() >= 0.5:
        return "text"
    if distinct == count and mean_length <= 40:
        return "id"
    return "other"


def _max_label_values(count: int) -> int:
    """Most distinct values a column may have and still look like a label (each repeats)."""
    return max(2, min(100, count // 3))


def _mostly_dates(values: pd.Series) -> bool:
    sample = values.head(200)
    return bool(sample.str.match(_DATE_PATTERN).mean() >= 0.9)


def guess_text_columns(df: pd.DataFrame) -> list[str]:
    """Columns that look like ticket text, best first (a telling name, then longer text)."""
    return _ranked(describe_columns(df), "text", _TEXT_NAME_HINTS, key="mean_length")


def guess_label_columns(df: pd.DataFrame) -> list[str]:
    """Columns that look like labels, best first (a telling name, then more distinct values)."""
    return _ranked(describe_columns(df), "label", _LABEL_NAME_HINTS, key="distinct")


def _ranked(
    descriptions: Iterable[dict[str, Any]], kind: str, hints: Sequence[str], *, key: str
) -> list[str]:
    def score(description: dict[str, Any]) -> tuple[int, float]:
        name = description["name"].lower()
        ranks = [i for i, hint in enumerate(hints) if hint in name]
        return (min(ranks) if ranks else len(hints), -description[key])

    matching = [d for d in descriptions if d["kind"] == kind]
    return [d["name"] for d in sorted(matching, key=score)]
