"""Batch scoring keeps every input row, flags unsure ones, and is safe to open in Excel."""

import pandas as pd
import pytest

from core.inference import Predictor
from core.scoring import score_table, spreadsheet_safe


@pytest.fixture(scope="module")
def predictor(trained_run) -> Predictor:
    return Predictor.load(trained_run.path)


def test_scored_table_keeps_rows_and_adds_predictions(predictor):
    table = pd.DataFrame(
        {"id": [1, 2, 3], "ticket": ["Where is my parcel", "", "password reset link broken"]}
    )
    scored = score_table(predictor, table, ["ticket"], threshold=0.99)
    assert list(scored["id"]) == [1, 2, 3]
    assert {"predicted_label", "confidence", "top3_label", "needs_review"} <= set(scored.columns)
    assert pd.isna(scored.loc[1, "predicted_label"]), "an empty ticket is not guessed"
    assert bool(scored.loc[1, "needs_review"]) is True
    expected_review = scored["confidence"].fillna(0) < 0.99
    assert scored["needs_review"].tolist() == expected_review.tolist()


def test_formula_cells_are_neutralised():
    table = pd.DataFrame({"text": ['=HYPERLINK("x")', "+1", "-2", "@SUM", "fine"], "n": range(5)})
    safe = spreadsheet_safe(table)
    assert safe["text"].tolist() == ['\'=HYPERLINK("x")', "'+1", "'-2", "'@SUM", "fine"]
    assert safe["n"].tolist() == list(range(5))
