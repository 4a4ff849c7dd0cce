"""Batch scoring of a table of new tickets, and making the result safe to open in Excel."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pandas as pd

from core.errors import DataError
from core.inference import NEEDS_REVIEW, Predictor

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def ticket_texts(table: pd.DataFrame, text_columns: Sequence[str]) -> list[str]:
    """Join the text columns of each row the same way training did (non-empty parts, newline)."""
    missing = [c for c in text_columns if c not in table.columns]
    if missing:
        raise DataError(
            f"The file has no column {', '.join(repr(c) for c in missing)}, which the model "
            f"reads. Columns in the file: {', '.join(map(str, table.columns))}."
        )
    parts = table[list(text_columns)].fillna("").astype(str)
    return [
        "\n".join(p.strip() for p in row if p.strip())
        for row in parts.itertuples(index=False, name=None)
    ]


def score_table(
    predictor: Predictor,
    table: pd.DataFrame,
    text_columns: Sequence[str],
    *,
    threshold: float | None = None,
    on_batch: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """The input rows plus predicted_label, confidence and the top-3 labels.

    With a ``threshold``, rows the model is less sure about than that are marked
    ``needs_review`` so a person looks at them.
    """
    texts = ticket_texts(table, text_columns)
    filled = [i for i, t in enumerate(texts) if t]
    kept = [texts[i] for i in filled]
    scores = predictor.predict_frame(kept, threshold=threshold, on_batch=on_batch)
    scores.index = filled
    scores = scores.reindex(range(len(texts)))
    result = pd.concat([table.reset_index(drop=True), scores.reset_index(drop=True)], axis=1)
    if threshold is not None:  # a ticket with no text was not scored: a person checks it
        result[NEEDS_REVIEW] = result[NEEDS_REVIEW].astype("boolean").fillna(True).astype(bool)
    return result


def spreadsheet_safe(table: pd.DataFrame) -> pd.DataFrame:
    """Prefix text cells that a spreadsheet would run as a formula with an apostrophe."""
    safe = table.copy()
    for column in safe.columns:
        if safe[column].dtype == object or pd.api.types.is_string_dtype(safe[column]):
            safe[column] = safe[column].map(_escape_cell)
    return safe


def _escape_cell(value: object) -> object:
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value
