"""Batch scoring of a table of new tickets, and making the result safe to open in Excel."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from core.errors import DataError
from core.inference import Predictor

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
NEEDS_REVIEW = "needs_review"


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
    scores = predictor.predict_frame([texts[i] for i in filled], on_batch=on_batch)
    scores.index = filled
    scores = scores.reindex(range(len(texts)))
    result = pd.concat([table.reset_index(drop=True), scores.reset_index(drop=True)], axis=1)
    if threshold is not None:
        confidence = result["confidence"].to_numpy(dtype=float)
        result[NEEDS_REVIEW] = ~(np.nan_to_num(confidence, nan=-1.0) >= threshold)
    return result


def spreadsheet_safe(table: pd.DataFrame) -> pd.DataFrame:
    """Prefix text cells and column names that a spreadsheet would run as a formula with "'"."""
    safe = table.copy()
    safe.columns = [_escape_cell(column) for column in safe.columns]
    for position in range(safe.shape[1]):
        values = safe.iloc[:, position]
        if values.dtype == object or pd.api.types.is_string_dtype(values):
            safe.isetitem(position, values.map(_escape_cell))
    return safe


def _escape_cell(value: object) -> object:
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value
