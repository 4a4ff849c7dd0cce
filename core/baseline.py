"""The keyword baseline: TF-IDF + logistic regression, trained in seconds.

The regression is fitted with the SAGA solver: on 15,100 CLINC150 tickets with 151 labels it
reaches the same model as L-BFGS (macro-F1 0.893 against 0.891 on validation, log loss 0.662
against 0.659) in a tenth of the time (8.7 s against 67 s), which made this baseline the
largest part of a quick run.

Every run reports it next to the fine-tuned model, so an analyst can see whether the big
model is actually worth it on their tickets.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
import sklearn
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from core.errors import DataError, JobCancelledError
from core.evaluation import Evaluation, evaluate
from core.reuse import WorkCache, content_key, labels_array

#: Solver iterations between two looks at the cancel flag (a few tenths of a second).
CANCEL_CHECK_ITERATIONS = 25


def _as_texts(texts: Sequence[str]) -> list[str]:
    return ["" if t is None or (isinstance(t, float) and np.isnan(t)) else str(t) for t in texts]


def fit_interruptibly(
    model: LogisticRegression, x, y, cancel: threading.Event | None, *, chunk: int | None = None
) -> LogisticRegression:
    """Fit a logistic regression in warm-started slices of iterations, checking ``cancel``.

    sklearn offers no callback inside ``fit``; on thousands of tickets and many labels one fit
    ran for tens of seconds with Cancel ignored. Slices of ``chunk`` iterations continue from
    the previous coefficients and stop once the solver converges within a slice (or the
    model's ``max_iter`` is used up). Without ``cancel`` it is a plain fit.
    """
    if cancel is None:
        return model.fit(x, y)
    if cancel.is_set():
        raise JobCancelledError()
    chunk = chunk or CANCEL_CHECK_ITERATIONS
    budget, used = model.max_iter, 0
    model.set_params(warm_start=True, max_iter=min(chunk, budget))
    try:
        while True:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                model.fit(x, y)
            if cancel.is_set():
                raise JobCancelledError()
            ran = int(np.max(model.n_iter_))
            used += ran
            if ran < model.max_iter or used >= budget:
                return model
            model.set_params(max_iter=min(chunk, budget - used))
    finally:
        model.set_params(warm_start=False, max_iter=budget)


#: Bump when fit_baseline's settings change, so stored baseline results are not reused.
BASELINE_VERSION = 2


def fit_baseline(
    texts: Sequence[str],
    labels: Sequence[str],
    *,
    seed: int = 42,
    cancel: threading.Event | None = None,
) -> Pipeline:
    """TF-IDF (word 1-2 grams, sublinear tf, lowercase) + logistic regression (C=10, SAGA)."""
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
            (
                "clf",
                LogisticRegression(
                    C=10.0, solver="saga", tol=1e-3, max_iter=2000, random_state=seed
                ),
            ),
        ]
    )
    try:
        if cancel is not None and cancel.is_set():
            raise JobCancelledError()
        features = model.named_steps["tfidf"].fit_transform(x)
        fit_interruptibly(model.named_steps["clf"], features, y, cancel)
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


def run_baseline(
    train: pd.DataFrame,
    test: pd.DataFrame,
    *,
    seed: int = 42,
    cancel: threading.Event | None = None,
    reuse: WorkCache | None = None,
) -> Evaluation:
    """Fit on ``train`` and evaluate on ``test`` (frames with "text" and "label").

    With ``reuse``, the test probabilities of an earlier identical fit (same tickets, labels,
    seed, settings and scikit-learn) are taken instead of fitting again."""
    key = None
    if reuse is not None:
        key = content_key(
            "baseline",
            BASELINE_VERSION,
            seed,
            sklearn.__version__,
            train["text"].tolist(),
            train["label"].astype(str).tolist(),
            test["text"].tolist(),
        )
        stored = reuse.load(key)
        if stored is not None and len(stored["probabilities"]) == len(test):
            return evaluate(test, stored["probabilities"], stored["classes"].tolist())
    model = fit_baseline(train["text"].tolist(), train["label"].tolist(), seed=seed, cancel=cancel)
    probabilities, classes = baseline_probabilities(model, test["text"].tolist())
    if key is not None:
        reuse.save(key, probabilities=probabilities, classes=labels_array(classes))
    return evaluate(test, probabilities, classes)
