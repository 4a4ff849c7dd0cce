"""Split the prepared tickets into train, validation and test sets.

Three ways: a stratified random split (the default), a column of the uploaded table that says
which set each ticket belongs to, or a separately uploaded test file. Every label the model is
scored on is present in train.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from core.errors import ConfigError, DataError
from core.schema import PreparedData
from core.text import cell_to_str

SPLIT_COLUMN_VALUES: dict[str, tuple[str, ...]] = {
    "train": ("train", "training"),
    "validation": ("validation", "valid", "val", "dev"),
    "test": ("test",),
}
MIN_ROWS = 10


@dataclass
class DataSplit:
    """The three sets, each with the columns of ``PreparedData.frame`` ("row", "text", "label").

    ``dropped_unknown_test_labels`` counts validation/test tickets left out because their label
    never occurs in train (the model could not predict it); ``unknown_test_labels`` says which.
    """

    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    strategy: str
    dropped_unknown_test_labels: int = 0
    unknown_test_labels: dict[str, int] = field(default_factory=dict)

    def sizes(self) -> dict[str, int]:
        return {
            "train": len(self.train),
            "validation": len(self.validation),
            "test": len(self.test),
        }

    def leakage(self) -> int:
        """Distinct ticket texts present in both train and test: they inflate the test score."""
        return len(set(self.train["text"]) & set(self.test["text"]))

    @property
    def labels(self) -> list[str]:
        """The labels the model can learn: those in train, sorted."""
        return sorted(set(self.train["label"]))


def split_data(
    prepared: PreparedData,
    *,
    validation_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 42,
    split_column: str | None = None,
    source: pd.DataFrame | None = None,
    test_data: PreparedData | None = None,
) -> DataSplit:
    """Split ``prepared`` reproducibly (same seed, same split).

    With ``split_column``, the values of that column of ``source`` (the uploaded table) decide;
    with ``test_data``, that file is the test set and ``prepared`` gives train and validation.
    Labels too small to spread over the sets stay in train.
    """
    _check_fractions(validation_fraction, test_fraction)
    if split_column is not None and test_data is not None:
        raise ConfigError("Use either a split column or a separate test file, not both.")
    frame = prepared.frame.reset_index(drop=True)
    _check_enough_rows(frame)
    rng = np.random.default_rng(seed)
    if test_data is not None:
        result = _split_with_test_file(frame, test_data.frame, validation_fraction, rng)
    elif split_column is not None:
        result = _split_by_column(
            frame, split_column, source, validation_fraction, test_fraction, rng
        )
    else:
        rest, test = _take_stratified(frame, _count(test_fraction, len(frame)), rng)
        train, validation = _take_stratified(rest, _count(validation_fraction, len(frame)), rng)
        result = DataSplit(train, validation, test, "stratified")
    _check_train_labels(result)
    _check_not_empty(result, validation_fraction, test_fraction)
    return result


def _check_fractions(validation_fraction: float, test_fraction: float) -> None:
    problems = [
        f"the {name} share must be at least 0 and below 1 (got {value})"
        for name, value in (("validation", validation_fraction), ("test", test_fraction))
        if not 0 <= value < 1
    ]
    if not problems and validation_fraction + test_fraction >= 1:
        problems.append(
            f"the validation and test shares add up to {validation_fraction + test_fraction:g}, "
            "leaving nothing to train on"
        )
    if problems:
        raise ConfigError("The split settings need fixing: " + "; ".join(problems) + ".")


def _check_enough_rows(frame: pd.DataFrame) -> None:
    if len(frame) < MIN_ROWS:
        raise DataError(
            f"Only {len(frame)} usable tickets are left, and at least {MIN_ROWS} are needed to "
            "train and test a model (a few dozen per label is much better). Add more labelled "
            "tickets, or check why rows were left out."
        )


def _count(fraction: float, total: int) -> int:
    """Rows a fraction of ``total`` stands for: rounded, but at least 1 for any share above 0."""
    return max(1, round(fraction * total)) if fraction > 0 else 0


def _take_stratified(
    frame: pd.DataFrame, n_take: int, rng: np.random.Generator
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Take about ``n_take`` rows with each label in proportion, leaving one of each behind.

    Unlike sklearn's stratified split, this never fails on labels with one or two tickets or on
    a set smaller than the number of labels: such labels simply stay where they are. Copies of
    one text never end up on both sides (that would inflate the test score): a text taken that
    also stays behind is put back, so the taken part can come out a little smaller.
    """
    groups = {
        label: rows.to_numpy() for label, rows in sorted(frame.groupby("label").groups.items())
    }
    quotas = _allocate({label: len(rows) for label, rows in groups.items()}, n_take, rng)
    taken = [
        index for label, rows in groups.items() for index in rng.permutation(rows)[: quotas[label]]
    ]
    taken_mask = frame.index.isin(taken)
    on_both_sides = set(frame.loc[taken_mask, "text"]) & set(frame.loc[~taken_mask, "text"])
    taken_mask &= ~frame["text"].isin(on_both_sides).to_numpy()
    return _tidy(frame[~taken_mask]), _tidy(frame[taken_mask])


def _allocate(counts: dict[str, int], n_take: int, rng: np.random.Generator) -> dict[str, int]:
    """Share ``n_take`` among labels by largest remainder, keeping at least one of each label."""
    capacity = {label: count - 1 for label, count in counts.items()}
    n_take = min(n_take, sum(capacity.values()))
    total = sum(counts.values())
    exact = {label: n_take * count / total for label, count in counts.items()}
    quotas = {label: min(capacity[label], int(exact[label])) for label in counts}
    order = sorted(counts, key=lambda label: (int(exact[label]) - exact[label], rng.random()))
    left = n_take - sum(quotas.values())
    while left > 0:
        for label in order:
            if left > 0 and quotas[label] < capacity[label]:
                quotas[label] += 1
                left -= 1
    return quotas


def _tidy(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_index().reset_index(drop=True)


def _split_by_column(
    frame: pd.DataFrame,
    split_column: str,
    source: pd.DataFrame | None,
    validation_fraction: float,
    test_fraction: float,
    rng: np.random.Generator,
) -> DataSplit:
    parts = _parts_from_column(frame, split_column, source)
    train = _tidy(frame[parts == "train"])
    if train.empty:
        raise DataError(
            f"No ticket is marked 'train' in the split column '{split_column}', so there is "
            "nothing to learn from. Mark the training tickets with 'train'."
        )
    validation, dropped_validation = _without_unknown_labels(
        _tidy(frame[parts == "validation"]), train
    )
    test, dropped_test = _without_unknown_labels(_tidy(frame[parts == "test"]), train)
    if test.empty and dropped_test:
        raise DataError(
            f"None of the tickets marked 'test' in '{split_column}' has a label that also occurs "
            f"in the training tickets (test labels: {', '.join(sorted(dropped_test))}). Mark "
            "some tickets of every label as 'train'."
        )
    if test.empty:
        train, test = _take_stratified(train, _count(test_fraction, len(train)), rng)
    if validation.empty:
        train, validation = _take_stratified(train, _count(validation_fraction, len(train)), rng)
    unknown = dropped_validation + dropped_test
    return DataSplit(train, validation, test, "column", sum(unknown.values()), dict(unknown))


def _parts_from_column(
    frame: pd.DataFrame, split_column: str, source: pd.DataFrame | None
) -> np.ndarray:
    """The set ("train", "validation", "test") each prepared ticket belongs to."""
    if source is None:
        raise ConfigError("A split column needs the uploaded table (source) to read it from.")
    if split_column not in source.columns:
        raise DataError(
            f"No column named '{split_column}' to split by. Columns in your file: "
            f"{', '.join(map(str, source.columns))}. Pick one of those as the split column."
        )
    synonyms = {name: part for part, names in SPLIT_COLUMN_VALUES.items() for name in names}
    raw = [cell_to_str(value).strip() for value in source[split_column].iloc[frame["row"]]]
    parts = np.array([synonyms.get(value.lower()) for value in raw], dtype=object)
    unknown = Counter(value for value, part in zip(raw, parts, strict=True) if part is None)
    if unknown:
        shown = ", ".join(
            f"'{value}' ({n} rows)" if value else f"(empty) ({n} rows)"
            for value, n in unknown.most_common(10)
        )
        accepted = "; ".join(
            f"{part}: {', '.join(names)}" for part, names in SPLIT_COLUMN_VALUES.items()
        )
        raise DataError(
            f"The split column '{split_column}' has values TicketTune does not understand: "
            f"{shown}. Every ticket needs one of these (any capitalisation) — {accepted}."
        )
    return parts


def _split_with_test_file(
    frame: pd.DataFrame,
    test_frame: pd.DataFrame,
    validation_fraction: float,
    rng: np.random.Generator,
) -> DataSplit:
    train, validation = _take_stratified(frame, _count(validation_fraction, len(frame)), rng)
    test, unknown = _without_unknown_labels(test_frame.reset_index(drop=True), train)
    if test.empty:
        raise DataError(
            f"None of the {len(test_frame)} tickets in your test file has a label that the "
            f"training data has (test file labels: {', '.join(sorted(unknown))}; training "
            f"labels: {', '.join(sorted(set(train['label'])))}). Check that both files use the "
            "same label column and the same label names."
        )
    return DataSplit(train, validation, test, "test file", sum(unknown.values()), dict(unknown))


def _without_unknown_labels(
    frame: pd.DataFrame, train: pd.DataFrame
) -> tuple[pd.DataFrame, Counter[str]]:
    known = frame["label"].isin(set(train["label"]))
    unknown = Counter(frame.loc[~known, "label"].tolist())
    return frame[known].reset_index(drop=True), unknown


def _check_train_labels(split: DataSplit) -> None:
    labels = split.labels
    if len(labels) < 2:
        raise DataError(
            f"The training tickets have only one label ('{labels[0]}'). A classifier needs at "
            "least two: mark tickets of other labels as 'train' too."
        )


def _check_not_empty(split: DataSplit, validation_fraction: float, test_fraction: float) -> None:
    """Asked-for sets may come out empty only when every label is too small to share."""
    wanted = {"validation": validation_fraction, "test": test_fraction}
    empty = [name for name, fraction in wanted.items() if fraction > 0 and split.sizes()[name] == 0]
    if not empty:
        return
    counts = Counter(split.train["label"].tolist())
    small = ", ".join(f"{label} ({n})" for label, n in sorted(counts.items()) if n < 3)
    sets = " or ".join(empty)
    if not small:  # the labels are big enough: repeated texts kept the tickets together
        texts = split.train["text"].nunique()
        raise DataError(
            f"Too few different tickets to set aside a {sets} set: the {len(split.train)} "
            f"tickets have only {texts} different texts, and copies of one text always stay "
            "in the same set (so the test score is honest). Check that the text column is the "
            "right one, or add tickets."
        )
    raise DataError(
        f"Too few tickets to set aside a {sets} set: every label keeps at least "
        f"one ticket for training, and the labels have only one or two each ({small}). Raise "
        "the 'minimum examples per label' setting, merge small labels, or add tickets."
    )
