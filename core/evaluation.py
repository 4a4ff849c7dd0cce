"""Test-set evaluation: headline metrics, per-class table, confusion matrix, drill-downs.

Everything the Results page shows is derived from one ``Evaluation``; it is saved into the
run folder (evaluation.json + predictions.csv) and can be rebuilt from there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    precision_recall_fscore_support,
)

from core.errors import ConfigError
from core.runs import Run
from core.schema import RESERVED_COLUMNS, sheet_row

EVALUATION_FILE = "evaluation.json"
PREDICTIONS_FILE = "predictions.csv"
PER_CLASS_COLUMNS = ["label", "precision", "recall", "f1", "support"]
TEXT_COLUMNS = ["text", "label", "predicted", "top2_label", "top3_label"]
TOP_K = 3


def compute_metrics(
    y_true: Sequence[str],
    y_pred: Sequence[str],
    labels: Sequence[str] | None = None,
    *,
    truth_labels_only: bool = False,
) -> dict[str, float]:
    """accuracy, macro_f1, weighted_f1 and n.

    F1 averages run over every label that occurs in ``y_true`` or ``y_pred``. Labels in
    ``labels`` that occur in neither have no defined F1 and are skipped, so the numbers do
    not depend on whether the caller passes the model's label list, and match ``evaluate``.

    ``truth_labels_only`` averages over the labels of ``y_true`` alone: a prediction of another
    label still counts as a miss, but that label's own F1 (0: it has no true tickets here) does
    not enter the average. For "did the model forget the earlier labels?": macro-F1 over the
    earlier labels, comparable to the earlier model's, however many new labels there are.
    """
    true = [str(v) for v in y_true]
    pred = [str(v) for v in y_pred]
    if len(true) != len(pred):
        raise ValueError(f"y_true has {len(true)} items but y_pred has {len(pred)}.")
    if not true:
        return {"accuracy": 0.0, "macro_f1": 0.0, "weighted_f1": 0.0, "n": 0}
    present = set(true) if truth_labels_only else set(true) | set(pred)
    known = [str(v) for v in labels] if labels is not None else []
    label_list = [v for v in dict.fromkeys(known) if v in present]
    label_list += sorted(present.difference(label_list))
    return {
        "accuracy": float(accuracy_score(true, pred)),
        "macro_f1": float(
            f1_score(true, pred, labels=label_list, average="macro", zero_division=0)
        ),
        "weighted_f1": float(
            f1_score(true, pred, labels=label_list, average="weighted", zero_division=0)
        ),
        "n": len(true),
    }


@dataclass
class Evaluation:
    """Predictions on the test set and everything derived from them."""

    labels: list[str]
    metrics: dict[str, float]
    per_class: pd.DataFrame
    confusion: np.ndarray
    predictions: pd.DataFrame
    id_columns: tuple[str, ...] = ()

    def _by_confidence(self, rows: pd.DataFrame) -> pd.DataFrame:
        ordered = rows.sort_values("confidence", ascending=False, kind="stable")
        return ordered.reset_index(drop=True)

    def confident_mistakes(self, n: int = 20) -> pd.DataFrame:
        """Wrong predictions, most confident first: the ones worth a human look."""
        wrong = self.predictions[~self.predictions["correct"].astype(bool)]
        return self._by_confidence(wrong).head(n)

    def tickets_for_cell(self, true_label: str, predicted_label: str) -> pd.DataFrame:
        """The tickets behind one confusion-matrix cell, most confident first."""
        p = self.predictions
        mask = (p["label"] == str(true_label)) & (p["predicted"] == str(predicted_label))
        return self._by_confidence(p[mask])

    def coverage_curve(self, thresholds: Sequence[float] | None = None) -> pd.DataFrame:
        """For each threshold: share of tickets at or above it, and accuracy on those.

        ``accuracy`` is NaN where no ticket reaches the threshold.
        """
        if thresholds is None:
            thresholds = np.round(np.arange(0, 100) / 100, 2)
        rows = [self.at_threshold(t) for t in thresholds]
        curve = pd.DataFrame(
            rows, columns=["threshold", "coverage", "accuracy", "n_automated", "n_total"]
        )
        curve["accuracy"] = curve["accuracy"].astype(float)
        return curve[["threshold", "coverage", "accuracy", "n_automated"]]

    def at_threshold(self, threshold: float) -> dict:
        """Coverage and accuracy if only tickets with confidence >= threshold are automated.

        ``accuracy`` is None when no ticket reaches the threshold.
        """
        confidence = self.predictions["confidence"].to_numpy(dtype=float)
        correct = self.predictions["correct"].to_numpy(dtype=bool)
        mask = confidence >= float(threshold)
        n_total = len(confidence)
        n_automated = int(mask.sum())
        return {
            "threshold": float(threshold),
            "coverage": n_automated / n_total if n_total else 0.0,
            "accuracy": float(correct[mask].mean()) if n_automated else None,
            "n_automated": n_automated,
            "n_total": n_total,
        }

    def save(self, run: Run) -> None:
        """predictions.csv first, then evaluation.json (its presence means both are complete)."""
        run.write_frame(PREDICTIONS_FILE, self.predictions)
        run.write_json(
            EVALUATION_FILE,
            {
                "labels": list(self.labels),
                "metrics": dict(self.metrics),
                "confusion": np.asarray(self.confusion).astype(int).tolist(),
                "per_class": self.per_class.to_dict(orient="records"),
                "id_columns": list(self.id_columns),
            },
        )

    @classmethod
    def load(cls, run: Run) -> Evaluation:
        """Rebuild from evaluation.json + predictions.csv (RunNotFoundError if missing)."""
        data = run.read_json(EVALUATION_FILE)
        labels = [str(v) for v in data["labels"]]
        n_labels = len(labels)
        id_columns = tuple(str(c) for c in data.get("id_columns", ()))
        dtypes = {c: str for c in (*TEXT_COLUMNS, *id_columns)}
        predictions = run.read_frame(PREDICTIONS_FILE, dtype=dtypes)
        if predictions is None:
            predictions = _empty_predictions()
        predictions = _normalise_predictions(predictions)
        per_class = pd.DataFrame.from_records(data["per_class"], columns=PER_CLASS_COLUMNS)
        per_class["label"] = per_class["label"].astype(str)
        per_class["support"] = per_class["support"].astype(int)
        confusion = np.asarray(data["confusion"], dtype=int).reshape(n_labels, n_labels)
        return cls(
            labels=labels,
            metrics=dict(data["metrics"]),
            per_class=per_class,
            confusion=confusion,
            predictions=predictions,
            id_columns=id_columns,
        )


def id_columns_of(frame: pd.DataFrame) -> tuple[str, ...]:
    """The upload's id columns a ticket frame carries: those after "row", "text", "label" that
    are not core's own (see ``PreparedData.id_columns``)."""
    return tuple(str(c) for c in frame.columns if c not in RESERVED_COLUMNS)


def _empty_predictions() -> pd.DataFrame:
    columns = ["text", "label", "predicted", "confidence", "correct"]
    for k in range(2, TOP_K + 1):
        columns += [f"top{k}_label", f"top{k}_confidence"]
    return pd.DataFrame({c: [] for c in columns})


def _normalise_predictions(frame: pd.DataFrame) -> pd.DataFrame:
    """Column types after a CSV round trip: texts as str, flags as bool, rows as int."""
    frame = frame.copy()
    for column in ("text", "label", "predicted"):
        if column in frame:
            frame[column] = frame[column].fillna("").astype(str)
    if "correct" in frame:
        frame["correct"] = frame["correct"].map(_as_bool).astype(bool)
    if "confidence" in frame:
        frame["confidence"] = frame["confidence"].astype(float)
    if "row" in frame and frame["row"].notna().all():
        frame["row"] = frame["row"].astype(int)
        if "sheet_row" not in frame:  # runs saved before sheet rows were stored
            frame.insert(frame.columns.get_loc("row") + 1, "sheet_row", sheet_row(frame["row"]))
    return frame


def _as_bool(value: object) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


def _report_labels(labels: Sequence[str], y_true: Sequence[str]) -> list[str]:
    """Model labels, then any test label the model never saw (so it still gets a row)."""
    known = list(labels)
    seen = set(known)
    unseen = sorted({v for v in y_true if v not in seen})
    return known + unseen


def _top_k(probabilities: np.ndarray, labels: list[str]) -> dict[str, list]:
    """top-1..top-K labels and confidences; missing ranks (few labels) are None/NaN."""
    order = np.argsort(-probabilities, axis=1, kind="stable")
    n = probabilities.shape[0]
    columns: dict[str, list] = {}
    for k in range(TOP_K):
        if k < probabilities.shape[1]:
            idx = order[:, k]
            columns[f"top{k + 1}_label"] = [labels[i] for i in idx]
            columns[f"top{k + 1}_confidence"] = probabilities[np.arange(n), idx].tolist()
        else:
            columns[f"top{k + 1}_label"] = [None] * n
            columns[f"top{k + 1}_confidence"] = [np.nan] * n
    return columns


def _confusion(y_true: list[str], y_pred: list[str], labels: list[str]) -> np.ndarray:
    """Counts, rows = true label, columns = predicted label, both in ``labels`` order."""
    index = {label: i for i, label in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels)), dtype=int)
    rows = np.array([index[t] for t in y_true], dtype=int)
    cols = np.array([index[p] for p in y_pred], dtype=int)
    np.add.at(matrix, (rows, cols), 1)
    return matrix


def _per_class(y_true: list[str], y_pred: list[str], labels: list[str]) -> pd.DataFrame:
    if not y_true:
        return pd.DataFrame(
            {"label": labels, "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0},
            columns=PER_CLASS_COLUMNS,
        )
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    return pd.DataFrame(
        {
            "label": labels,
            "precision": precision.astype(float),
            "recall": recall.astype(float),
            "f1": f1.astype(float),
            "support": support.astype(int),
        },
        columns=PER_CLASS_COLUMNS,
    )


def evaluate(frame: pd.DataFrame, probabilities: np.ndarray, labels: Sequence[str]) -> Evaluation:
    """Score predicted probabilities against the true labels in ``frame``.

    ``frame`` has "text" and "label", and optionally "row" (0-based data row of the upload)
    and the upload's id columns, which the predictions keep (with "sheet_row", the row number a
    spreadsheet shows); ``probabilities`` has one row per ticket and one column per label, in
    ``labels`` order.
    """
    model_labels = [str(v) for v in labels]
    probs = np.asarray(probabilities, dtype=float)
    if len(set(model_labels)) != len(model_labels) or not model_labels:
        raise ConfigError("The label list is empty or has duplicates.")
    if probs.ndim != 2 or probs.shape != (len(frame), len(model_labels)):
        raise ConfigError(
            f"Expected probabilities of shape ({len(frame)}, {len(model_labels)}), "
            f"got {probs.shape}."
        )
    y_true = frame["label"].astype(str).tolist()
    top = _top_k(probs, model_labels)
    y_pred = top["top1_label"]
    report_labels = _report_labels(model_labels, y_true)

    predictions = pd.DataFrame(index=range(len(frame)))
    if "row" in frame:
        predictions["row"] = frame["row"].to_numpy()
        predictions["sheet_row"] = sheet_row(frame["row"].to_numpy())
    id_columns = id_columns_of(frame)
    for column in id_columns:
        predictions[column] = pd.Series(frame[column].astype(str).tolist(), dtype="str")
    predictions["text"] = pd.Series(frame["text"].fillna("").astype(str).tolist(), dtype="str")
    predictions["label"] = pd.Series(y_true, dtype="str")
    predictions["predicted"] = pd.Series(y_pred, dtype="str")
    predictions["confidence"] = pd.Series(top["top1_confidence"], dtype=float)
    predictions["correct"] = np.asarray(y_true, dtype=object) == np.asarray(y_pred, dtype=object)
    for k in range(2, TOP_K + 1):
        predictions[f"top{k}_label"] = pd.Series(top[f"top{k}_label"], dtype="str")
        predictions[f"top{k}_confidence"] = pd.Series(top[f"top{k}_confidence"], dtype=float)

    return Evaluation(
        labels=report_labels,
        metrics=compute_metrics(y_true, y_pred),
        per_class=_per_class(y_true, y_pred, report_labels),
        confusion=_confusion(y_true, y_pred, report_labels),
        predictions=predictions,
        id_columns=id_columns,
    )
