"""Compare two runs: did the label decisions and the retraining help, and for which labels?"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from core.evaluation import Evaluation

OVERALL_METRICS = ("accuracy", "macro_f1", "weighted_f1")


@dataclass(frozen=True)
class RunComparison:
    """``overall``: metric, before, after, delta. ``per_label``: label, f1/support before and
    after, f1_delta (NaN where a label exists in one run only). ``changed``: test tickets in
    both runs whose prediction changed, with both predictions and whether each was right."""

    overall: pd.DataFrame
    per_label: pd.DataFrame
    changed: pd.DataFrame
    matched_on: str
    n_common: int


def compare_runs(before: Evaluation, after: Evaluation) -> RunComparison:
    """Overall and per-label deltas, and which shared test tickets changed prediction.

    Tickets are matched on the upload's id columns when both runs have the same ones, else on
    the ticket text (the first of repeated texts). Test sets can differ after decisions (merged
    or dropped labels, excluded tickets), so only tickets in both are compared.
    """
    overall = pd.DataFrame(
        [
            {
                "metric": m,
                "before": float(before.metrics.get(m, float("nan"))),
                "after": float(after.metrics.get(m, float("nan"))),
            }
            for m in OVERALL_METRICS
        ]
    )
    overall["delta"] = overall["after"] - overall["before"]
    per_label = before.per_class[["label", "f1", "support"]].merge(
        after.per_class[["label", "f1", "support"]],
        on="label",
        how="outer",
        suffixes=("_before", "_after"),
    )
    per_label["f1_delta"] = per_label["f1_after"] - per_label["f1_before"]
    per_label = per_label.sort_values("f1_delta", kind="stable", na_position="last")
    keys = _match_keys(before, after)
    changed, n_common = _changed(before.predictions, after.predictions, keys)
    return RunComparison(
        overall, per_label.reset_index(drop=True), changed, "+".join(keys), n_common
    )


def _match_keys(before: Evaluation, after: Evaluation) -> list[str]:
    if before.id_columns and tuple(before.id_columns) == tuple(after.id_columns):
        return list(before.id_columns)
    return ["text"]


def _changed(
    before: pd.DataFrame, after: pd.DataFrame, keys: list[str]
) -> tuple[pd.DataFrame, int]:
    shown = [c for c in ("row", "sheet_row") if c in after] + [c for c in keys if c != "text"]
    left = before.drop_duplicates(keys)[[*keys, "label", "predicted", "correct"]]
    right = after.drop_duplicates(keys)[
        [*dict.fromkeys([*shown, *keys, "text", "label", "predicted", "correct"])]
    ]
    both = right.merge(left, on=keys, suffixes=("", "_before"))
    moved = both[both["predicted"] != both["predicted_before"]]
    moved = moved.rename(
        columns={"predicted": "predicted_after", "correct": "correct_after", "label": "label_after"}
    )
    columns = [
        *shown,
        "text",
        "label_before",
        "label_after",
        "predicted_before",
        "predicted_after",
        "correct_before",
        "correct_after",
    ]
    return moved[[c for c in dict.fromkeys(columns) if c in moved]].reset_index(drop=True), len(
        both
    )
