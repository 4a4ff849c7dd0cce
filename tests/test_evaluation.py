"""Evaluation: metrics against hand-computed values, drill-downs, coverage, persistence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.errors import ConfigError
from core.evaluation import Evaluation, compute_metrics, evaluate
from core.runs import RunStore

LABELS = ["billing", "access", "other"]
#            billing access other    true       -> predicted (confidence)
PROBS = [
    [0.90, 0.05, 0.05],  # billing  -> billing (0.90)
    [0.60, 0.30, 0.10],  # billing  -> billing (0.60)
    [0.15, 0.80, 0.05],  # billing  -> access  (0.80) wrong
    [0.20, 0.70, 0.10],  # access   -> access  (0.70)
    [0.55, 0.40, 0.05],  # access   -> billing (0.55) wrong
    [0.10, 0.50, 0.40],  # other    -> access  (0.50) wrong
]
TRUE = ["billing", "billing", "billing", "access", "access", "other"]


@pytest.fixture
def evaluation() -> Evaluation:
    frame = pd.DataFrame(
        {
            "row": [2, 3, 4, 5, 6, 7],
            "text": ["t0", "NA", "t2, with comma", "t3\nsecond line", "None", "Grüße"],
            "label": TRUE,
        }
    )
    return evaluate(frame, np.array(PROBS), LABELS)


def test_compute_metrics_hand_computed() -> None:
    """accuracy 3/6; F1 billing 2/3, access 2/5, other 0 -> macro 16/45, weighted 7/15."""
    pred = ["billing", "billing", "access", "access", "billing", "access"]
    metrics = compute_metrics(TRUE, pred)
    assert metrics["accuracy"] == pytest.approx(0.5)
    assert metrics["macro_f1"] == pytest.approx(16 / 45)
    assert metrics["weighted_f1"] == pytest.approx(7 / 15)
    assert metrics["n"] == 6
    assert compute_metrics([], [])["n"] == 0


def test_compute_metrics_ignores_labels_absent_from_both() -> None:
    """Passing the model's label list (with labels absent from the test) changes nothing."""
    pred = ["billing", "billing", "access", "access", "billing", "access"]
    assert compute_metrics(TRUE, pred, ["never", *LABELS]) == compute_metrics(TRUE, pred)


def test_truth_labels_only_averages_over_the_earlier_labels() -> None:
    """Two earlier labels, each with one ticket mislabelled as a new label: each earlier label
    has recall 1/2 and precision 1 (F1 2/3); the new label (F1 0, no true tickets) is left out
    of the average instead of pulling it down to 4/9."""
    true = ["billing", "billing", "access", "access"]
    pred = ["billing", "refund", "access", "refund"]
    assert compute_metrics(true, pred)["macro_f1"] == pytest.approx(4 / 9)
    earlier = compute_metrics(true, pred, truth_labels_only=True)
    assert earlier["macro_f1"] == pytest.approx(2 / 3)
    assert earlier["accuracy"] == pytest.approx(0.5)


def test_evaluate_metrics_per_class_and_confusion(evaluation: Evaluation) -> None:
    """evaluate() takes argmax predictions and reports the same hand-computed numbers."""
    assert evaluation.labels == LABELS
    assert evaluation.metrics["accuracy"] == pytest.approx(0.5)
    assert evaluation.metrics["macro_f1"] == pytest.approx(16 / 45)
    per_class = evaluation.per_class.set_index("label")
    assert list(evaluation.per_class["label"]) == LABELS
    assert per_class.loc["billing", "precision"] == pytest.approx(2 / 3)
    assert per_class.loc["access", "recall"] == pytest.approx(1 / 2)
    assert per_class.loc["access", "f1"] == pytest.approx(2 / 5)
    assert per_class.loc["other", "f1"] == 0.0
    assert per_class["support"].tolist() == [3, 2, 1]
    np.testing.assert_array_equal(evaluation.confusion, [[2, 1, 0], [1, 1, 0], [0, 1, 0]])


def test_predictions_top_k_columns(evaluation: Evaluation) -> None:
    """Each prediction row carries the row number, confidence, correctness and top-2/3."""
    p = evaluation.predictions
    assert p["row"].tolist() == [2, 3, 4, 5, 6, 7]
    assert p["predicted"].tolist() == [
        "billing",
        "billing",
        "access",
        "access",
        "billing",
        "access",
    ]
    assert p["correct"].tolist() == [True, True, False, True, False, False]
    last = p.iloc[5]
    assert (last["top2_label"], last["top2_confidence"]) == ("other", pytest.approx(0.4))
    assert (last["top3_label"], last["top3_confidence"]) == ("billing", pytest.approx(0.1))


def test_cell_drill_down_and_confident_mistakes(evaluation: Evaluation) -> None:
    """Cell drill-down returns exactly that cell; mistakes come most confident first."""
    cell = evaluation.tickets_for_cell("billing", "billing")
    assert cell["text"].tolist() == ["t0", "NA"]
    assert evaluation.tickets_for_cell("billing", "access")["row"].tolist() == [4]
    assert evaluation.tickets_for_cell("other", "billing").empty
    mistakes = evaluation.confident_mistakes()
    assert mistakes["confidence"].tolist() == [0.80, 0.55, 0.50]
    assert len(evaluation.confident_mistakes(n=1)) == 1


def test_coverage_curve_and_threshold(evaluation: Evaluation) -> None:
    """Coverage never rises with the threshold; at 0.6 four tickets are automated, 3 right."""
    curve = evaluation.coverage_curve()
    assert len(curve) == 100 and curve["threshold"].iloc[0] == 0.0
    assert curve["threshold"].iloc[-1] == pytest.approx(0.99)
    assert curve["coverage"].is_monotonic_decreasing
    assert curve["coverage"].iloc[0] == 1.0 and curve["accuracy"].iloc[0] == 0.5
    assert np.isnan(curve["accuracy"].iloc[-1])
    point = evaluation.at_threshold(0.6)
    assert point == {
        "threshold": 0.6,
        "coverage": pytest.approx(4 / 6),
        "accuracy": pytest.approx(3 / 4),
        "n_automated": 4,
        "n_total": 6,
    }
    assert evaluation.at_threshold(0.95)["accuracy"] is None
    assert evaluation.coverage_curve([0.5, 0.7])["n_automated"].tolist() == [6, 3]


def test_save_load_round_trip(evaluation: Evaluation, tmp_path: Path) -> None:
    """save() then load() rebuilds identical metrics, tables and predictions."""
    run = RunStore(tmp_path).create("eval")
    evaluation.save(run)
    loaded = Evaluation.load(run)
    assert loaded.labels == evaluation.labels
    assert loaded.metrics == evaluation.metrics
    np.testing.assert_array_equal(loaded.confusion, evaluation.confusion)
    pd.testing.assert_frame_equal(loaded.per_class, evaluation.per_class)
    pd.testing.assert_frame_equal(loaded.predictions, evaluation.predictions)
    assert loaded.confident_mistakes()["row"].tolist() == [4, 6, 7]


def test_unseen_test_label_gets_a_row(tmp_path: Path) -> None:
    """A test label the model never saw is added to the report instead of crashing."""
    frame = pd.DataFrame({"text": ["a", "b", "c"], "label": ["x", "y", "new"]})
    ev = evaluate(frame, np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]), ["x", "y"])
    assert ev.labels == ["x", "y", "new"]
    np.testing.assert_array_equal(ev.confusion, [[1, 0, 0], [0, 1, 0], [1, 0, 0]])
    row = ev.per_class.set_index("label").loc["new"]
    assert row["support"] == 1 and row["recall"] == 0.0
    ev.save(RunStore(tmp_path).create())


def test_single_label_and_bad_shapes() -> None:
    """One label leaves top-2/3 empty; a probability matrix of the wrong shape is refused."""
    frame = pd.DataFrame({"text": ["a"], "label": ["x"]})
    ev = evaluate(frame, np.array([[1.0]]), ["x"])
    assert ev.metrics["accuracy"] == 1.0
    assert pd.isna(ev.predictions["top2_label"].iloc[0])
    with pytest.raises(ConfigError):
        evaluate(frame, np.array([[0.5, 0.5]]), ["x"])
