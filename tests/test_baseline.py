"""Keyword baseline: TF-IDF + logistic regression learns an easy split and reports it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.baseline import baseline_probabilities, fit_baseline, run_baseline
from core.errors import DataError

BILLING_WORDS = ["invoice", "refund", "charge", "payment", "billing"]
ACCESS_WORDS = ["password", "login", "account locked", "sign in", "two-factor code"]
OPENERS = ["Hi, question about my", "Problem with the", "Please help with", "Urgent:", "Re:"]
CLOSERS = ["thanks", "asap please", "see attached", "regards", "since yesterday"]


def _tickets(words: list[str], label: str, offset: int) -> list[tuple[str, str]]:
    rows = []
    for i in range(20):
        word = words[(i + offset) % len(words)]
        text = f"{OPENERS[i % 5]} {word} {CLOSERS[(i // 5 + offset) % 5]}"
        rows.append((text, label))
    return rows


def _frame(offset: int) -> pd.DataFrame:
    rows = _tickets(BILLING_WORDS, "Billing", offset) + _tickets(ACCESS_WORDS, "Access", offset)
    return pd.DataFrame(rows, columns=["text", "label"])


def test_baseline_learns_separable_tickets() -> None:
    """40 training tickets about invoices vs logins: held-out accuracy at least 0.9."""
    train = _frame(offset=0)
    test = pd.DataFrame(
        {
            "text": [
                "I need a REFUND for a double charge",
                "the invoice amount is wrong",
                "payment failed on my card",
                "cannot login after password reset",
                "my account locked, need to sign in",
                "no two-factor code arrives",
            ],
            "label": ["Billing"] * 3 + ["Access"] * 3,
        }
    )
    evaluation = run_baseline(train, test)
    assert evaluation.metrics["accuracy"] >= 0.9
    assert evaluation.metrics["n"] == 6
    assert set(evaluation.labels) == {"Access", "Billing"}


def test_probabilities_follow_class_order() -> None:
    """Probabilities have one column per class, in classes_ order, rows summing to one."""
    train = _frame(offset=1)
    model = fit_baseline(train["text"], train["label"], seed=7)
    probs, classes = baseline_probabilities(model, ["refund my invoice", "forgot password"])
    assert classes == ["Access", "Billing"]
    assert probs.shape == (2, 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    assert probs[0, classes.index("Billing")] > 0.5
    assert probs[1, classes.index("Access")] > 0.5


def test_baseline_refuses_single_label_and_empty_text() -> None:
    """One label, or no words at all, gives a plain DataError instead of a sklearn trace."""
    with pytest.raises(DataError, match="two different labels"):
        fit_baseline(["a b", "c d"], ["x", "x"])
    with pytest.raises(DataError, match="no words"):
        fit_baseline(["", "!!"], ["x", "y"])


def test_unseen_test_label_is_reported() -> None:
    """A label only present in the test set shows up in the evaluation, not as a crash."""
    train = _frame(offset=2)
    test = pd.DataFrame({"text": ["refund please", "printer on fire"], "label": ["Billing", "IT"]})
    evaluation = run_baseline(train, test)
    assert evaluation.labels == ["Access", "Billing", "IT"]
    assert evaluation.per_class.set_index("label").loc["IT", "support"] == 1
