"""Near-duplicate tickets: across train and test (leakage) and within train with other labels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.near_duplicates import (
    DEFAULT_THRESHOLD,
    find_near_duplicates,
    nearest_similarities,
    similar_pairs,
)
from core.schema import LabelScheme
from core.split import DataSplit

CONFLICTING_IDS = {("T-10197", "T-10198"), ("T-10004", "T-10005")}  # see assets/README.md


def unit(rows: list[list[float]]) -> np.ndarray:
    x = np.asarray(rows, dtype=float)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_similar_pairs_within_and_across():
    a = unit([[1, 0, 0], [0.99, 0.1, 0], [0, 1, 0], [0, 0, 1]])
    within = similar_pairs(a, threshold=0.95)
    assert within[["i", "j"]].values.tolist() == [[0, 1]]
    across = similar_pairs(a, unit([[0, 0.05, 1], [1, 0, 0]]), threshold=0.95)
    assert sorted(across[["i", "j"]].values.tolist()) == [[0, 1], [1, 1], [3, 0]]
    assert across["similarity"].is_monotonic_decreasing
    assert across["similarity"].max() <= 1.0


def test_nearest_similarities_report_the_label_of_the_nearest():
    x = unit([[1, 0], [0.98, 0.2], [0, 1], [0.1, 1]])
    nearest = nearest_similarities(x, ["a", "a", "b", "c"])
    assert nearest["same_label"].tolist() == [True, True, False, False]


@pytest.fixture(scope="module")
def sample_split(sample_table):
    """The sample tickets as train, with a test set holding copies of two training tickets."""
    frame = LabelScheme(("subject", "body"), "category").apply(sample_table).frame
    frame = frame.drop_duplicates("text", keep=False).reset_index(drop=True)
    train = frame.iloc[:400].reset_index(drop=True)
    test = frame.iloc[400:].reset_index(drop=True)
    copies = train.iloc[[5, 50]].copy()
    test = pd.concat([test, copies], ignore_index=True)
    conflicting = LabelScheme(("subject", "body"), "category").apply(sample_table).frame
    pairs = conflicting[conflicting["ticket_id"].isin({i for p in CONFLICTING_IDS for i in p})]
    train = pd.concat([train, pairs], ignore_index=True)
    return DataSplit(train, train.iloc[:0], test, "stratified")


def test_leakage_and_conflicting_copies_are_found(sample_split, tiny_model_dir):
    report = find_near_duplicates(sample_split, model=str(tiny_model_dir), threshold=0.9999)
    leaked = set(zip(report.leakage["ticket_id_a"], report.leakage["ticket_id_b"], strict=True))
    copied = sample_split.train["ticket_id"].iloc[[5, 50]].tolist()
    assert {(i, i) for i in copied} <= leaked
    conflicts = set(
        zip(report.conflicts["ticket_id_a"], report.conflicts["ticket_id_b"], strict=True)
    )
    assert conflicts >= CONFLICTING_IDS
    assert (report.conflicts["label_a"] != report.conflicts["label_b"]).all()
    assert (report.leakage["sheet_row_a"] == report.leakage["row_a"] + 2).all()


@pytest.mark.slow
def test_default_threshold_keeps_only_rewordings_with_the_real_model(sample_split):
    """With all-MiniLM-L6-v2, pairs above the default threshold are copies or near-copies:
    their texts share most words; unrelated tickets stay below it."""
    report = find_near_duplicates(sample_split, threshold=DEFAULT_THRESHOLD)
    assert len(report.leakage) >= 2
    for _, pair in report.leakage.iterrows():
        a, b = (set(pair[f"text_{s}"].lower().split()) for s in ("a", "b"))
        assert len(a & b) / len(a | b) > 0.5, (pair["text_a"], pair["text_b"])
