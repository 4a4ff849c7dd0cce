"""Label decisions: applying them, storing versions, the errors; comparing two runs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.compare import compare_runs
from core.decisions import (
    SOURCE_ROW,
    SOURCE_UPLOAD,
    Correction,
    DecisionStore,
    Drop,
    Exclusion,
    LabelDecisions,
    Merge,
    NewTicket,
    apply_decisions,
)
from core.errors import ConfigError
from core.evaluation import evaluate
from core.schema import LabelScheme

SCHEME = LabelScheme(text_columns=("subject", "body"), label_column="category", min_count=1)


def upload() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "ticket_id": ["T1", "T2", "T3", "T4", "T5", "T6"],
            "subject": ["Refund", "Invoice", "Login", "Password", "Parcel", "Spam"],
            "body": ["money back", "wrong amount", "cannot log in", "reset", "late", "buy now"],
            "category": ["refund", "billing", "login", "login", "shipping", "billing"],
        }
    )


def test_decisions_give_the_corrected_table_and_next_scheme():
    table = upload()
    original = table.copy()
    decisions = LabelDecisions(SCHEME, upload="tickets.csv").add(
        Merge(("refund", "billing"), "finance"),
        Correction(row=3, new_label="shipping", old_label="login"),
        Exclusion(row=5, reason="spam"),
        NewTicket({"subject": "Card", "body": "charged twice"}, "finance", "new.csv", row=0),
        Drop("login"),
        by="ana",
    )
    assert decisions.version == 1
    assert all(d.by == "ana" and d.at for d in decisions.decisions)
    corrected = apply_decisions(table, decisions)
    pd.testing.assert_frame_equal(table, original)  # the upload is never modified
    out = corrected.table
    assert out["ticket_id"].tolist()[:5] == ["T1", "T2", "T3", "T4", "T5"]
    assert "T6" not in out["ticket_id"].tolist()
    assert out.loc[3, "category"] == "shipping"
    new = out.iloc[-1]
    assert (new["subject"], new["category"], new[SOURCE_UPLOAD], new[SOURCE_ROW]) == (
        "Card",
        "finance",
        "new.csv",
        0,
    )
    assert out[SOURCE_UPLOAD].tolist()[:5] == ["tickets.csv"] * 5
    assert corrected.labels == ["finance", "shipping"]
    prepared = corrected.scheme.apply(out)
    assert prepared.label_counts() == {"finance": 3, "shipping": 2}
    assert prepared.dropped["label dropped by you"] == 1  # T3, still 'login'


def test_store_keeps_every_version(tmp_path):
    store = DecisionStore(tmp_path)
    assert store.load() is None
    first = store.save(LabelDecisions(SCHEME).add(Drop("login")))
    second = store.save(first.add(Correction(row=0, new_label="billing")))
    assert store.versions() == [1, 2]
    assert store.load() == second
    assert store.load(1) == first
    assert store.load(1).scheme == SCHEME
    with pytest.raises(ConfigError, match="already saved"):
        store.save(first)
    with pytest.raises(ConfigError, match="no version 7"):
        store.load(7)


@pytest.mark.parametrize(
    ("decision", "words"),
    [
        (Correction(row=0, new_label="nonsense"), "correct a ticket to 'nonsense'"),
        (Merge(("refund", "login"), "x"), None),
        (Correction(row=99, new_label="billing"), "no ticket at row 99"),
        (NewTicket({"subject": "a", "body": "b"}, "nope"), "label a new ticket as 'nope'"),
    ],
)
def test_clear_errors(decision, words):
    decisions = LabelDecisions(SCHEME).add(Merge(("refund", "billing"), "finance"), decision)
    with pytest.raises(ConfigError, match=words or "merge 'refund'"):
        apply_decisions(upload(), decisions)


def test_run_comparison_deltas_and_changed_tickets():
    labels = ["a", "b"]
    frame = pd.DataFrame(
        {"row": [0, 1, 2, 3], "text": ["w", "x", "y", "z"], "label": ["a", "a", "b", "b"]}
    )
    frame["ticket_id"] = ["T1", "T2", "T3", "T4"]
    before = evaluate(frame, np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.6, 0.4]]), labels)
    after = evaluate(frame, np.array([[0.9, 0.1], [0.7, 0.3], [0.3, 0.7], [0.4, 0.6]]), labels)
    comparison = compare_runs(before, after)
    overall = comparison.overall.set_index("metric")
    assert overall.loc["accuracy", "before"] == 0.5 and overall.loc["accuracy", "after"] == 1.0
    assert overall.loc["accuracy", "delta"] == pytest.approx(0.5)
    assert comparison.matched_on == "ticket_id" and comparison.n_common == 4
    changed = comparison.changed
    assert changed["ticket_id"].tolist() == ["T2", "T4"]
    assert changed["sheet_row"].tolist() == [3, 5]
    assert changed["predicted_before"].tolist() == ["b", "a"]
    assert changed["correct_after"].all() and not changed["correct_before"].any()
    per_label = comparison.per_label.set_index("label")
    assert per_label.loc["a", "f1_delta"] == pytest.approx(1.0 - 0.5)
