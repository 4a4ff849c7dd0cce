"""The data report: what the analyst should know about their tickets before training.

Numbers (class counts, duplicates, lengths, leakage) plus plain-language warnings that say what
was found and what to do about it. The report is a plain dataclass that round-trips via JSON.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from core.schema import DROPPED_BY_USER, EMPTY_TEXT, MISSING_LABEL, RARE_LABEL, PreparedData
from core.serialization import from_known_fields

if TYPE_CHECKING:
    from core.split import DataSplit

PERCENTILES = (50, 90, 95, 99)
MAX_CONFLICT_EXAMPLES = 10
FEW_EXAMPLES = 20
SEVERE_IMBALANCE = 10.0
MANY_DUPLICATES_SHARE = 0.05
SMALL_TEST_SET = 30
TOKENS_PER_WORD = 1.3
DEFAULT_MAX_TOKENS = 512
_TOKENIZER_BATCH = 256

_DROP_PHRASES = {
    EMPTY_TEXT: "{n} with empty text",
    MISSING_LABEL: "{n} with no label",
    DROPPED_BY_USER: "{n} whose label you chose to drop",
    RARE_LABEL: "{n} with a rare label",
}


@dataclass
class DataReport:
    """Facts about the prepared tickets (and their split, once made), JSON-serialisable."""

    rows_read: int
    rows_used: int
    dropped: dict[str, int]
    class_counts: dict[str, int]
    imbalance_ratio: float
    duplicate_texts: int
    conflicting_duplicates: int
    conflict_examples: list[dict]
    length_unit: str
    length_percentiles: dict[str, int]
    rare_labels: dict[str, int]
    leakage: int | None = None
    split_sizes: dict[str, int] | None = None
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary_lines(self) -> list[str]:
        """The report in a few plain lines, for places without the app's report view (the CLI).

        Rows read and used, each reason rows were left out, duplicates and conflicting labels,
        then every warning not already said by those lines.
        """
        left_out = self.rows_read - self.rows_used
        lines = [f"Read {self.rows_read} rows: {self.rows_used} used, {left_out} left out."]
        drops = _drop_parts(self.dropped)
        if drops:
            lines[0] = lines[0][:-1] + f" ({', '.join(drops)})."
        lines.append(
            f"{self.duplicate_texts} tickets repeat an earlier ticket's text; "
            f"{self.conflicting_duplicates} texts carry conflicting labels."
        )
        said = _dropped_rows_warning(self)
        lines.extend(f"Warning: {w}" for w in self.warnings if w != said)
        return lines

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DataReport:
        """Rebuild a report; unknown keys are ignored, missing required ones a ConfigError."""
        return from_known_fields(cls, d, "the saved data report")


def build_report(
    prepared: PreparedData,
    *,
    split: DataSplit | None = None,
    tokenizer: Callable[..., Any] | None = None,
    max_tokens: int = DEFAULT_MAX_TOKENS,
) -> DataReport:
    """Summarise ``prepared`` (and ``split``); lengths are in tokens when a tokenizer is given.

    ``max_tokens`` is how much of a ticket the model reads; longer tickets get a warning.
    """
    frame = prepared.frame
    counts = prepared.label_counts()
    lengths = _token_lengths(frame["text"].tolist(), tokenizer)
    conflicts = _conflicting_texts(frame)
    report = DataReport(
        rows_read=int(prepared.rows_read),
        rows_used=len(frame),
        dropped={reason: int(n) for reason, n in prepared.dropped.items()},
        class_counts=counts,
        imbalance_ratio=round(max(counts.values()) / min(counts.values()), 2) if counts else 0.0,
        duplicate_texts=int(frame["text"].duplicated().sum()),
        conflicting_duplicates=len(conflicts),
        conflict_examples=_conflict_examples(frame, conflicts),
        length_unit="tokens" if tokenizer is not None else "words",
        length_percentiles=_percentiles(lengths),
        rare_labels={label: int(n) for label, n in prepared.rare_labels.items()},
        leakage=split.leakage() if split is not None else None,
        split_sizes=split.sizes() if split is not None else None,
    )
    report.warnings = _warnings(report, prepared, frame, conflicts, split, max_tokens)
    return report


def _token_lengths(texts: Sequence[str], tokenizer: Callable[..., Any] | None) -> list[int]:
    if tokenizer is None:
        return [len(text.split()) for text in texts]
    lengths: list[int] = []
    for start in range(0, len(texts), _TOKENIZER_BATCH):
        batch = list(texts[start : start + _TOKENIZER_BATCH])
        lengths.extend(len(ids) for ids in tokenizer(batch, add_special_tokens=True)["input_ids"])
    return lengths


def _percentiles(lengths: Sequence[int]) -> dict[str, int]:
    if not lengths:
        return {**{f"p{q}": 0 for q in PERCENTILES}, "max": 0}
    values = np.asarray(lengths)
    result = {f"p{q}": int(np.percentile(values, q, method="higher")) for q in PERCENTILES}
    result["max"] = int(values.max())
    return result


def _conflicting_texts(frame: pd.DataFrame) -> list[str]:
    """Distinct texts that carry more than one label, in order of first appearance."""
    pairs = frame.drop_duplicates(["text", "label"])
    labels_per_text = pairs["text"].value_counts()
    conflicting = set(labels_per_text[labels_per_text > 1].index)
    return [text for text in pairs["text"].drop_duplicates() if text in conflicting]


def _conflict_examples(frame: pd.DataFrame, conflicts: list[str]) -> list[dict]:
    examples = conflicts[:MAX_CONFLICT_EXAMPLES]
    rows = frame[frame["text"].isin(examples)]
    by_text: dict[str, dict[str, Any]] = {
        text: {"text": text, "labels": [], "rows": []} for text in examples
    }
    for row, text, label in rows[["row", "text", "label"]].itertuples(index=False):
        by_text[text]["rows"].append(int(row))
        if label not in by_text[text]["labels"]:
            by_text[text]["labels"].append(label)
    for example in by_text.values():
        example["labels"].sort()
    return list(by_text.values())


def _warnings(
    report: DataReport,
    prepared: PreparedData,
    frame: pd.DataFrame,
    conflicts: list[str],
    split: DataSplit | None,
    max_tokens: int,
) -> list[str]:
    candidates = [
        _dropped_rows_warning(report),
        _rare_labels_warning(prepared),
        _few_examples_warning(report),
        _imbalance_warning(report),
        _case_variants_warning(report),
        _conflicts_warning(frame, conflicts),
        _duplicates_warning(report),
        _long_tickets_warning(report, max_tokens),
        _leakage_warning(report),
        _unknown_test_labels_warning(split),
        _small_test_set_warning(report),
    ]
    return [warning for warning in candidates if warning]


def _dropped_rows_warning(report: DataReport) -> str | None:
    total = sum(report.dropped.values())
    if not total:
        return None
    parts = _drop_parts(report.dropped)
    return f"{total} of {report.rows_read} rows were left out: {', '.join(parts)}."


def _drop_parts(dropped: dict[str, int]) -> list[str]:
    """'2 with no label', ... for each reason that left rows out."""
    return [_DROP_PHRASES.get(r, "{n} for " + r).format(n=n) for r, n in dropped.items() if n]


def _rare_labels_warning(prepared: PreparedData) -> str | None:
    if not prepared.rare_labels:
        return None
    scheme = prepared.scheme
    listed = _listed(prepared.rare_labels)
    threshold = f"fewer than {scheme.min_count} tickets" if scheme else "too few tickets"
    if scheme is not None and scheme.rare_policy == "other":
        return (
            f"These labels had {threshold} and were merged into '{scheme.other_label}': {listed}."
        )
    return (
        f"These labels had {threshold} and were left out: {listed}. If they matter, merge them "
        "with a similar label, or merge rare labels into 'other' instead."
    )


def _few_examples_warning(report: DataReport) -> str | None:
    few = {label: n for label, n in report.class_counts.items() if n < FEW_EXAMPLES}
    if not few:
        return None
    return (
        f"Some labels have very few tickets to learn from: {_listed(few)}. Aim for at least "
        f"{FEW_EXAMPLES} per label; with fewer, the model will often miss them."
    )


def _imbalance_warning(report: DataReport) -> str | None:
    if report.imbalance_ratio <= SEVERE_IMBALANCE:
        return None
    (big, big_n), (small, small_n) = _largest_and_smallest(report.class_counts)
    return (
        f"Your labels are very unbalanced: '{big}' has {big_n} tickets, "
        f"{report.imbalance_ratio:g} times as many as '{small}' ({small_n}). The model will "
        "lean towards the big labels; add tickets for the small ones, merge them, or turn on "
        "class weighting."
    )


def _largest_and_smallest(counts: dict[str, int]) -> tuple[tuple[str, int], tuple[str, int]]:
    ordered = list(counts.items())
    return ordered[0], ordered[-1]


def _case_variants_warning(report: DataReport) -> str | None:
    groups: dict[str, list[str]] = defaultdict(list)
    for label in report.class_counts:
        groups[" ".join(label.casefold().split())].append(label)
    variants = [" / ".join(f"'{v}'" for v in sorted(g)) for g in groups.values() if len(g) > 1]
    if not variants:
        return None
    return (
        f"Some labels differ only in capitals or spacing: {'; '.join(variants)}. If they mean "
        "the same, merge them with a rename."
    )


def _conflicts_warning(frame: pd.DataFrame, conflicts: list[str]) -> str | None:
    if not conflicts:
        return None
    tickets = int(frame["text"].isin(conflicts).sum())
    return (
        f"{tickets} tickets have the same text as another ticket but a different label "
        f"({len(conflicts)} distinct texts) — the model cannot get them all right; fix the "
        "labels in your file or accept it."
    )


def _duplicates_warning(report: DataReport) -> str | None:
    if not report.rows_used or report.duplicate_texts / report.rows_used <= MANY_DUPLICATES_SHARE:
        return None
    share = report.duplicate_texts / report.rows_used
    return (
        f"{report.duplicate_texts} tickets ({share:.0%}) repeat the exact text of an earlier "
        "ticket. Many duplicates make the model over-learn those tickets and the test score "
        "look better than it is; consider removing them from your file."
    )


def _long_tickets_warning(report: DataReport, max_tokens: int) -> str | None:
    p95 = report.length_percentiles["p95"]
    if report.length_unit == "tokens":
        if p95 <= max_tokens:
            return None
        measured = f"95% of tickets are up to {p95} tokens long"
    else:
        if p95 * TOKENS_PER_WORD <= max_tokens:
            return None
        tokens = round(p95 * TOKENS_PER_WORD)
        measured = f"95% of tickets are up to {p95} words, roughly {tokens} tokens"
    return (
        f"More than 5% of tickets are longer than the {max_tokens} tokens the model reads "
        f"({measured}); the end of those tickets will be cut off. Put the most telling text "
        "(e.g. the subject) first."
    )


def _leakage_warning(report: DataReport) -> str | None:
    if not report.leakage:
        return None
    return (
        f"{report.leakage} ticket texts appear in both the training and the test set, so the "
        "test score will look better than it really is. Remove the duplicate tickets for an "
        "honest score."
    )


def _unknown_test_labels_warning(split: DataSplit | None) -> str | None:
    if split is None or not split.dropped_unknown_test_labels:
        return None
    listed = _listed(split.unknown_test_labels) if split.unknown_test_labels else "unknown"
    return (
        f"{split.dropped_unknown_test_labels} validation/test tickets were left out because "
        f"their label never occurs in the training data ({listed}); the model cannot predict "
        "a label it has not seen."
    )


def _small_test_set_warning(report: DataReport) -> str | None:
    test_size = (report.split_sizes or {}).get("test")
    if test_size is None or test_size >= SMALL_TEST_SET:
        return None
    return (
        f"The test set has only {test_size} tickets, so its scores are rough (one ticket moves "
        f"accuracy by {100 / max(test_size, 1):.0f} points). More labelled tickets give a "
        "steadier estimate."
    )


def _listed(counts: dict[str, int]) -> str:
    return ", ".join(f"{label} ({n})" for label, n in counts.items())
