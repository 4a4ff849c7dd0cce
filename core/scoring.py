"""Batch scoring of a table of new tickets, and making the result safe to open in Excel."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from core.text import ticket_texts

if TYPE_CHECKING:  # this module stays light: pages import it before any model is needed
    from core.inference import Predictor

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
NEEDS_REVIEW = "needs_review"

__all__ = ["NEEDS_REVIEW", "needs_review", "score_table", "spreadsheet_safe", "ticket_texts"]


def needs_review(confidence: float | np.ndarray, threshold: float) -> bool | np.ndarray:
    """Whether a person must check the guess: the model is less sure than the threshold.

    A missing confidence (NaN: the ticket was not scored) always needs review.
    """
    sure = np.nan_to_num(np.asarray(confidence, dtype=float), nan=-1.0) >= threshold
    return ~sure if sure.ndim else not bool(sure)


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
