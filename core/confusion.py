"""Which labels the model mixes up, and what merging or dropping labels would do to the scores.

Both work on a run's stored predictions (``Evaluation.predictions``), so they cost nothing:
the what-if projection answers "what if A and B were one label?" without retraining.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.decisions import Drop, LabelChange, Merge
from core.errors import ConfigError
from core.evaluation import TOP_K, Evaluation, compute_metrics

_TOP1 = "_top1_label"  # the model's own first choice, kept while drops replace "predicted"


@dataclass(frozen=True)
class ConfusedPair:
    """Two labels the model mixes up, both directions summed.

    ``share`` is ``count`` over the tickets whose true label is one of the two; ``tickets`` are
    the mixed-up tickets (a "set" column says test or validation), most confident first.
    """

    label_a: str
    label_b: str
    count: int
    a_as_b: int
    b_as_a: int
    pair_tickets: int
    share: float
    tickets: pd.DataFrame


def confused_pairs(
    evaluation: Evaluation, validation: Evaluation | None = None, *, top: int | None = None
) -> list[ConfusedPair]:
    """Label pairs ranked by how often the model confuses them (ties: higher share, then name).

    Test predictions count, and validation predictions too when given.
    """
    frames = [evaluation.predictions.assign(set="test")]
    if validation is not None:
        frames.append(validation.predictions.assign(set="validation"))
    predictions = pd.concat(frames, ignore_index=True)
    if predictions.empty:
        return []
    truth = predictions["label"].astype(str)
    predicted = predictions["predicted"].astype(str)
    support = truth.value_counts().to_dict()
    wrong = predictions[truth != predicted]
    pairs: dict[tuple[str, str], list[int]] = {}
    for index, t, p in zip(wrong.index, truth[wrong.index], predicted[wrong.index], strict=True):
        pairs.setdefault(tuple(sorted((t, p))), []).append(index)
    result = []
    for (a, b), indices in pairs.items():
        rows = predictions.loc[indices]
        a_as_b = int((rows["label"] == a).sum())
        n_pair = support.get(a, 0) + support.get(b, 0)
        tickets = rows.sort_values("confidence", ascending=False, kind="stable")
        result.append(
            ConfusedPair(
                label_a=a,
                label_b=b,
                count=len(indices),
                a_as_b=a_as_b,
                b_as_a=len(indices) - a_as_b,
                pair_tickets=n_pair,
                share=len(indices) / n_pair if n_pair else 0.0,
                tickets=tickets.reset_index(drop=True),
            )
        )
    result.sort(key=lambda pair: (-pair.count, -pair.share, pair.label_a, pair.label_b))
    return result[:top] if top is not None else result


def pairs_table(pairs: Sequence[ConfusedPair]) -> pd.DataFrame:
    """One row per pair, for a table or an export (without the tickets)."""
    columns = ["label_a", "label_b", "count", "a_as_b", "b_as_a", "pair_tickets", "share"]
    return pd.DataFrame([{c: getattr(p, c) for c in columns} for p in pairs], columns=columns)


@dataclass(frozen=True)
class Projection:
    """Scores before and after label changes, on the same stored predictions."""

    before: dict[str, float]
    after: dict[str, float]
    labels_before: list[str]
    labels_after: list[str]
    tickets_removed: int

    def delta(self, metric: str) -> float:
        return self.after[metric] - self.before[metric]


def project(evaluation: Evaluation, changes: Iterable[LabelChange]) -> Projection:
    """What accuracy and macro-F1 the stored predictions would have after merges and drops.

    Equal by construction to ``compute_metrics`` on :func:`changed_predictions`.
    """
    predictions = evaluation.predictions
    changed = changed_predictions(predictions, changes, labels=evaluation.labels)
    return Projection(
        before=compute_metrics(predictions["label"], predictions["predicted"]),
        after=compute_metrics(changed["label"], changed["predicted"]),
        labels_before=_labels_of(predictions, evaluation.labels),
        labels_after=_labels_of(changed, ()),
        tickets_removed=len(predictions) - len(changed),
    )


def changed_predictions(
    predictions: pd.DataFrame, changes: Iterable[LabelChange], labels: Iterable[str] = ()
) -> pd.DataFrame:
    """The predictions as if the label changes had been made, applied in order.

    A merge renames the labels in the true label, the prediction and the runner-up columns.
    A drop removes the tickets of that label; a ticket predicted as it gets the model's next
    choice that still exists (from the top-k columns), as the retrained model would most
    likely say; if none of its top-k is left, the prediction is the model's first choice, a
    dropped label (so wrong).
    A change naming a label that no longer exists raises ConfigError.
    """
    frame = predictions.copy()
    frame[_TOP1] = frame["predicted"]
    label_columns = ["label", "predicted", _TOP1] + [
        f"top{k}_label" for k in range(2, TOP_K + 1) if f"top{k}_label" in frame
    ]
    existing = set(_labels_of(frame, labels))
    for change in changes:
        named = change.labels if isinstance(change, Merge) else (change.label,)
        missing = [label for label in named if label not in existing]
        if missing:
            gone = ", ".join(f"'{label}'" for label in missing)
            raise ConfigError(
                f"There is no label {gone} any more (it was merged, dropped or never existed). "
                f"Labels now: {', '.join(sorted(existing))}."
            )
        if isinstance(change, Merge):
            mapping = {label: change.into for label in change.labels}
            for column in label_columns:
                frame[column] = frame[column].map(lambda v, m=mapping: m.get(v, v))
            existing = (existing - set(change.labels)) | {change.into}
        elif isinstance(change, Drop):
            frame = frame[frame["label"] != change.label]
            existing.discard(change.label)
            frame = _next_choice(frame, label_columns, existing)
        else:  # pragma: no cover - LabelChange is Merge | Drop
            raise TypeError(f"Not a label change: {change!r}")
    frame = frame.drop(columns=_TOP1).reset_index(drop=True)
    frame["correct"] = frame["label"].to_numpy() == frame["predicted"].to_numpy()
    return frame


def _next_choice(frame: pd.DataFrame, label_columns: list[str], existing: set[str]) -> pd.DataFrame:
    """Replace dropped predictions by the best-ranked label that still exists."""
    frame = frame.copy()
    ranked = frame[label_columns[2:]].to_numpy(dtype=object)
    predicted = []
    for row in ranked:
        alive = [v for v in row if v in existing]
        predicted.append(alive[0] if alive else row[0])
    frame["predicted"] = np.asarray(predicted, dtype=object)
    return frame


def _labels_of(frame: pd.DataFrame, labels: Iterable[str]) -> list[str]:
    return sorted({*map(str, labels), *frame["label"].astype(str), *frame["predicted"].astype(str)})
