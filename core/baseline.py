"""The keyword baseline: TF-IDF + logistic regression, trained in seconds.

Every run reports it next to the fine-tuned model, so an analyst can see whether the big
model is actually worth it on their tickets.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from core.errors import DataError
from core.evaluation import Evaluation, evaluate


def _as_texts(texts: Sequence[str]) -> list[str]:
    return ["" if t is None or (isinstance(t, float) and np.isnan(t)) else str(t) for t in texts]


def fit_baseline(texts: Sequence[str], labels: Sequence[str], *, seed: int = 42) -> Pipeline:
    """TF-IDF (word 1-2 grams, sublinear tf, lowercase) + logistic regression (C=10)."""
    x = _as_texts(texts)
    y = [str(v) for v in labels]
    if len(x) != len(y):
        raise ValueError(f"{len(x)} texts but {len(y)} labels.")
    if len(set(y)) < 2:
        raise DataError("The keyword baseline needs tickets with at least two different labels.")
    model = Pipeline(
        [
            (
                "tfidf",
                TfidfVectorizer(lowercase=True, ngram_range=(1, 2), sublinear_tf=True),
            ),
            ("clf", LogisticRegression(C=10.0, max_iter=2000, random_state=seed)),
        ]
    )
    try:
        model.fit(x, y)
    except ValueError as exc:
        if "empty vocabulary" in str(exc):
            raise DataError(
                "The keyword baseline found no words in the training tickets. "
                "Check that the text column is the right one."
            ) from exc
        raise
    return model


def baseline_probabilities(model: Pipeline, texts: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Class probabilities (one column per class) and the class order."""
    classes = [str(c) for c in model.classes_]
    x = _as_texts(texts)
    if not x:
        return np.zeros((0, len(classes))), classes
    return np.asarray(model.predict_proba(x), dtype=float), classes


def run_baseline(train: pd.DataFrame, test: pd.DataFrame, *, seed: int = 42) -> Evaluation:
    """Fit on ``train`` and evaluate on ``test`` (frames with "text" and "label")."""
    model = fit_baseline(train["text"].tolist(), train["label"].tolist(), seed=seed)
    probabilities, classes = baseline_probabilities(model, test["text"].tolist())
    return evaluate(test, probabilities, classes)
