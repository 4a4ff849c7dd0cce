"""Confused label pairs and the merge/drop what-if projection on stored predictions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.confusion import changed_predictions, confused_pairs, pairs_table, project
from core.decisions import Drop, Merge
from core.errors import ConfigError
from core.evaluation import Evaluation, compute_metrics, evaluate

LABELS = ["a", "b", "c", "d", "e"]


def make_evaluation(truth: list[str], probs: np.ndarray, labels=LABELS, ids=None) -> Evaluation:
    frame = pd.DataFrame(
        {"row": range(len(truth)), "text": [f"t{i}" for i in range(len(truth))], "label": truth}
    )
    if ids is not None:
        frame["ticket_id"] = ids
    return evaluate(frame, probs, labels)


def one_hot_predictions(truth: list[str], predicted: list[str]) -> Evaluation:
    probs = np.full((len(truth), len(LABELS)), 0.05)
    for i, p in enumerate(predicted):
        probs[i, LABELS.index(p)] = 0.8
    return make_evaluation(truth, probs)


def test_pairs_sum_both_directions_and_rank_by_count():
    truth = ["a"] * 10 + ["b"] * 10 + ["c"] * 10
    predicted = (
        ["a"] * 7 + ["b"] * 3  # a→b 3 times
        + ["a"] * 2 + ["b"] * 8  # b→a 2 times
        + ["c"] * 9 + ["a"]  # c→a once
    )  # fmt: skip
    pairs = confused_pairs(one_hot_predictions(truth, predicted))
    assert [(p.label_a, p.label_b, p.count) for p in pairs] == [("a", "b", 5), ("a", "c", 1)]
    top = pairs[0]
    assert (top.a_as_b, top.b_as_a, top.pair_tickets) == (3, 2, 20)
    assert top.share == pytest.approx(5 / 20)
    assert len(top.tickets) == 5
    assert set(top.tickets["label"]) == {"a", "b"} and not top.tickets["correct"].any()
    assert (top.tickets["sheet_row"] == top.tickets["row"] + 2).all()
    assert list(pairs_table(pairs)["count"]) == [5, 1]


def test_validation_predictions_are_counted_too():
    test = one_hot_predictions(["a", "b", "c"], ["b", "b", "c"])
    validation = one_hot_predictions(["a", "c", "c"], ["b", "a", "c"])
    pairs = confused_pairs(test, validation)
    assert [(p.label_a, p.label_b, p.count) for p in pairs] == [("a", "b", 2), ("a", "c", 1)]
    assert sorted(pairs[0].tickets["set"]) == ["test", "validation"]


def independent_metrics(evaluation: Evaluation, changes) -> dict:
    """Re-derive the changed predictions ticket by ticket, without core.confusion."""
    final: dict[str, str] = {}
    dropped: set[str] = set()

    def to_final(label: str) -> str:
        while label in final:
            label = final[label]
        return label

    for change in changes:
        if isinstance(change, Merge):
            for label in change.labels:
                if label != change.into:
                    final[label] = change.into
        else:
            dropped.add(change.label)
    truth, pred = [], []
    for _, row in evaluation.predictions.iterrows():
        true = to_final(row["label"])
        if true in dropped:
            continue
        ranked = [to_final(row[c]) for c in ("predicted", "top2_label", "top3_label")]
        alive = [label for label in ranked if label not in dropped]
        truth.append(true)
        pred.append(alive[0] if alive else ranked[0])
    return compute_metrics(truth, pred)


@st.composite
def evaluation_and_changes(draw):
    n = draw(st.integers(5, 40))
    seed = draw(st.integers(0, 10_000))
    rng = np.random.default_rng(seed)
    truth = [LABELS[i] for i in rng.integers(0, len(LABELS), n)]
    probs = rng.dirichlet(np.ones(len(LABELS)) * 0.5, size=n)
    labels = set(truth) | set(LABELS)
    changes = []
    fresh = 0
    for _ in range(draw(st.integers(1, 3))):
        if len(labels) < 3:
            break
        if draw(st.booleans()):
            picked = draw(st.lists(st.sampled_from(sorted(labels)), min_size=2, max_size=3))
            picked = list(dict.fromkeys(picked))
            if len(picked) < 2:
                continue
            fresh += 1
            into = draw(st.sampled_from([picked[0], f"merged{fresh}"]))
            changes.append(Merge(tuple(picked), into))
            labels = (labels - set(picked)) | {into}
        else:
            label = draw(st.sampled_from(sorted(labels)))
            changes.append(Drop(label))
            labels.discard(label)
    return make_evaluation(truth, probs), changes


@settings(max_examples=25, deadline=None)
@given(evaluation_and_changes())
def test_projection_equals_metrics_recomputed_from_the_changed_predictions(case):
    evaluation, changes = case
    projection = project(evaluation, changes)
    expected = independent_metrics(evaluation, changes)
    assert projection.after == pytest.approx(expected)
    changed = changed_predictions(evaluation.predictions, changes, evaluation.labels)
    assert projection.after == compute_metrics(changed["label"], changed["predicted"])
    assert projection.before == compute_metrics(
        evaluation.predictions["label"], evaluation.predictions["predicted"]
    )


def test_merging_the_confused_pair_removes_its_errors():
    truth = ["a"] * 10 + ["b"] * 10
    predicted = ["a"] * 6 + ["b"] * 4 + ["b"] * 10
    evaluation = one_hot_predictions(truth, predicted)
    projection = project(evaluation, [Merge(("a", "b"), "ab")])
    assert projection.before["accuracy"] == pytest.approx(0.8)
    assert projection.after["accuracy"] == 1.0
    assert "ab" in projection.labels_after and "a" not in projection.labels_after


def test_dropping_a_label_removes_its_tickets_and_uses_the_next_choice():
    probs = np.array(
        [
            [0.7, 0.2, 0.1, 0, 0],  # a: removed with its label
            [0.6, 0.3, 0.1, 0, 0],  # b, predicted a: the next choice, b, is right
            [0.1, 0.6, 0.3, 0, 0],  # c, predicted b: stays wrong
        ]
    )
    evaluation = make_evaluation(["a", "b", "c"], probs)
    projection = project(evaluation, [Drop("a")])
    assert projection.tickets_removed == 1
    changed = changed_predictions(evaluation.predictions, [Drop("a")])
    assert changed["predicted"].tolist() == ["b", "b"]
    assert projection.after["accuracy"] == pytest.approx(0.5)


@pytest.mark.parametrize(
    "changes",
    [
        [Drop("zzz")],
        [Merge(("a", "b"), "ab"), Drop("a")],
        [Drop("c"), Merge(("c", "d"), "cd")],
    ],
)
def test_a_label_that_no_longer_exists_is_a_clear_error(changes):
    evaluation = one_hot_predictions(["a", "b", "c", "d"], ["a", "b", "c", "d"])
    with pytest.raises(ConfigError, match=r"no label .* any more"):
        project(evaluation, changes)
