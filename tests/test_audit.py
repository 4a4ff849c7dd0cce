"""The label audit: out-of-fold probabilities + cleanlab find deliberately flipped labels."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from core.audit import AuditConfig, audit_labels, choose_folds, embed_texts, rank_tickets
from core.errors import DataError
from core.schema import LabelScheme

N_FLIPS = 20


def flipped_sample(table: pd.DataFrame, seed: int = 0) -> tuple[pd.DataFrame, list[int]]:
    """The sample tickets with N_FLIPS labelled tickets given a random other category."""
    rng = np.random.default_rng(seed)
    table = table.copy()
    labelled = np.flatnonzero(table["category"].astype(str).str.strip() != "")
    labels = sorted(set(table["category"].iloc[labelled]))
    rows = sorted(rng.choice(labelled, N_FLIPS, replace=False).tolist())
    for row in rows:
        others = [label for label in labels if label != table.loc[row, "category"]]
        table.loc[row, "category"] = others[rng.integers(len(others))]
    return table, rows


@pytest.fixture(scope="module")
def audited(sample_table, tiny_model_dir):
    table, flipped = flipped_sample(sample_table)
    prepared = LabelScheme(("subject", "body"), "category").apply(table)
    result = audit_labels(prepared, AuditConfig(model=str(tiny_model_dir)))
    return table, flipped, result


def test_audit_finds_the_flipped_labels(audited):
    """Most flipped tickets rank within the top 1.5 × flips (chance would find about 7%)."""
    table, flipped, result = audited
    top = set(result.tickets["row"].head(int(1.5 * N_FLIPS)))
    found = len(top & set(flipped)) / N_FLIPS
    assert found >= 0.6, f"only {found:.0%} of the flipped labels are among the most suspicious"
    for row in set(top) & set(flipped):
        ticket = result.tickets.set_index("row").loc[row]
        assert ticket["given_label"] == table.loc[row, "category"]


def test_every_ticket_is_ranked_with_its_ids_and_rows(audited, sample_table):
    _table, _flipped, result = audited
    tickets = result.tickets
    assert result.id_columns == ("ticket_id",)
    assert len(tickets) == tickets["row"].nunique() > 400
    assert tickets["score"].is_monotonic_increasing
    assert (tickets["sheet_row"] == tickets["row"] + 2).all()
    ids = sample_table["ticket_id"].to_numpy()[tickets["row"].to_numpy()]
    assert (tickets["ticket_id"].to_numpy() == ids).all()
    assert (tickets["given_label"] != tickets["suggested_label"]).all()
    assert 0 < result.n_flagged < len(tickets)
    assert result.folds == 5


def test_rank_tickets_orders_by_cleanlab_score():
    frame = pd.DataFrame({"text": ["x", "y", "z"], "label": ["a", "b", "a"]})
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.05, 0.95]])
    ranked = rank_tickets(frame, probs, ["a", "b"], method="self_confidence")
    assert ranked["text"].tolist() == ["z", "y", "x"]  # given-label probability 0.05, 0.8, 0.9
    assert ranked.loc[0, "suggested_label"] == "b"
    assert ranked.loc[0, "score"] == pytest.approx(0.05)


_FORKS: list[int] = []
_WATCHING_FORKS = False


def _note_fork() -> None:
    if _WATCHING_FORKS:
        _FORKS.append(os.getpid())


os.register_at_fork(before=_note_fork)


def test_ranking_never_forks_the_process():
    """cleanlab's filter forks a multiprocessing pool unless told n_jobs=1. Forking the app's
    server (torch, ONNX Runtime and web threads running) can deadlock the child, and the audit
    then waited for it forever: a browser test saw "Checking part 5 of 5" for 6 minutes. (On a
    one-core machine cleanlab would not fork anyway; on two or more this test tells.)"""
    global _WATCHING_FORKS
    rng = np.random.default_rng(0)
    labels = [f"l{i % 4}" for i in range(400)]
    frame = pd.DataFrame({"text": [f"t{i}" for i in range(400)], "label": labels})
    probs = rng.dirichlet(np.ones(4), size=400)
    _FORKS.clear()
    _WATCHING_FORKS = True
    try:
        ranked = rank_tickets(frame, probs, ["l0", "l1", "l2", "l3"])
    finally:
        _WATCHING_FORKS = False
    assert len(ranked) == 400 and ranked["flagged"].any()
    assert _FORKS == []


def test_folds_shrink_to_the_smallest_label_or_fail_clearly():
    assert choose_folds(["a"] * 10 + ["b"] * 3, 5) == 3
    assert choose_folds(["a"] * 10 + ["b"] * 10, 5) == 5
    with pytest.raises(DataError, match=r"'b'.* only one ticket"):
        choose_folds(["a"] * 10 + ["b"], 5)
    with pytest.raises(DataError, match="at least two labels"):
        choose_folds(["a"] * 10, 5)


def test_one_label_file_is_a_clear_error(tiny_model_dir):
    from core.schema import PreparedData

    frame = pd.DataFrame({"row": range(6), "text": [f"t {i}" for i in range(6)], "label": "a"})
    prepared = PreparedData(frame, 6, {}, {})
    with pytest.raises(DataError, match="Every ticket has the label 'a'"):
        audit_labels(prepared, AuditConfig(model=str(tiny_model_dir)))


def test_embeddings_are_the_quick_models(tiny_model_dir):
    """Unit length, one row per text, same text → same vector."""
    vectors = embed_texts(["refund please", "cannot log in", "refund please"], str(tiny_model_dir))
    assert vectors.shape[0] == 3
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.allclose(vectors[0], vectors[2], atol=1e-5)
