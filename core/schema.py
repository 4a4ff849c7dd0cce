"""The label scheme: which columns hold a ticket's text and label, and how labels are tidied up.

Applying a scheme to the uploaded table gives :class:`PreparedData`: one row per usable ticket
with its text and final label, plus a count of every row left out and why.
"""

from __future__ import annotations

import json
import operator
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from core.errors import ConfigError, DataError
from core.serialization import from_known_fields
from core.text import clean_cells, ticket_texts

if TYPE_CHECKING:  # loaded where tickets are prepared: `python -m core --help` is fast
    import numpy as np
    import pandas as pd

RarePolicy = Literal["drop", "other"]
RARE_POLICIES: tuple[str, ...] = ("drop", "other")

EMPTY_TEXT = "empty text"
MISSING_LABEL = "missing label"
DROPPED_BY_USER = "label dropped by you"
RARE_LABEL = "rare label"
DROP_REASONS: tuple[str, ...] = (EMPTY_TEXT, MISSING_LABEL, DROPPED_BY_USER, RARE_LABEL)

# A spreadsheet shows the header as row 1, so data row i (0-based) is row i + 2 there.
SHEET_ROW_OFFSET = 2
# Columns core adds to ticket lists; an id column with one of these names is not carried.
RESERVED_COLUMNS = frozenset(
    {"row", "sheet_row", "text", "label", "predicted", "confidence", "correct", "score"}
)
_ID_WORDS = frozenset(
    {"id", "ids", "uuid", "guid", "number", "no", "nr", "num", "ref", "reference", "key"}
)


def sheet_row(row: int | np.ndarray | pd.Series) -> Any:
    """The spreadsheet row number of a 0-based data row (header is row 1)."""
    return row + SHEET_ROW_OFFSET


def guess_id_columns(df: pd.DataFrame, exclude: Iterable[str] = ()) -> tuple[str, ...]:
    """Columns that identify a ticket: named like an id/number/ref and unique and filled in.

    ``exclude`` (the text and label columns) and names core uses itself are never picked.
    """
    skip = set(exclude) | RESERVED_COLUMNS
    picked = []
    for column in df.columns:
        name = str(column)
        if name in skip or list(df.columns).count(column) > 1 or not _looks_like_id(name):
            continue
        values = clean_cells(df[column])
        if all(values) and len(set(values)) == len(values):
            picked.append(name)
    return tuple(picked)


def _looks_like_id(name: str) -> bool:
    spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", name)
    words = [w for w in re.split(r"[^0-9a-zA-Z]+", spaced.lower()) if w]
    return any(w in _ID_WORDS for w in words)


@dataclass(frozen=True)
class LabelScheme:
    """What the analyst chose: text columns, label column, and label renames, drops and merges.

    ``rename`` maps an original label to a new name (several to one merges them); ``drop`` lists
    original labels to leave out. Labels with fewer than ``min_count`` tickets after that are
    rare: dropped, or merged into ``other_label``, as ``rare_policy`` says.
    """

    text_columns: tuple[str, ...]
    label_column: str
    rename: Mapping[str, str] = field(default_factory=dict)
    drop: tuple[str, ...] = ()
    min_count: int = 5
    rare_policy: RarePolicy = "drop"
    other_label: str = "other"

    def __post_init__(self) -> None:
        set_field = object.__setattr__
        set_field(self, "text_columns", _as_tuple(self.text_columns))
        set_field(self, "drop", tuple(dict.fromkeys(s.strip() for s in _as_tuple(self.drop))))
        set_field(self, "rename", _clean_rename(self.rename))
        set_field(self, "other_label", str(self.other_label).strip())
        try:
            set_field(self, "min_count", operator.index(self.min_count))
        except TypeError:
            raise ConfigError(
                f"The minimum examples per label must be a whole number (got {self.min_count!r})."
            ) from None
        problems = list(self._problems())
        if problems:
            raise ConfigError("The label setup needs fixing: " + "; ".join(problems) + ".")

    def _problems(self) -> Iterable[str]:
        if not self.text_columns:
            yield "pick at least one text column"
        repeated = [c for c, n in Counter(self.text_columns).items() if n > 1]
        if repeated:
            yield f"the text column(s) {_quoted(repeated)} are picked more than once"
        if not str(self.label_column).strip():
            yield "pick a label column"
        elif self.label_column in self.text_columns:
            yield (
                f"'{self.label_column}' is both a text column and the label column, so the model "
                "would be shown the answer; pick a different label column or remove it from the "
                "text columns"
            )
        if self.min_count < 1:
            yield f"the minimum examples per label must be at least 1 (got {self.min_count})"
        if self.rare_policy not in RARE_POLICIES:
            yield (
                f"the rare-label policy must be 'drop' or 'other' (merge them), "
                f"not '{self.rare_policy}'"
            )
        if not self.other_label:
            yield "the name for merged rare labels is empty"
        blank = [old for old, new in self.rename.items() if not old or not new]
        if blank:
            yield f"renames need a label and a new name (check {_quoted(blank)})"

    def __hash__(self) -> int:
        return hash(json.dumps(self.to_dict(), sort_keys=True))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; :meth:`from_dict` turns it back into an equal scheme."""
        return {
            "text_columns": list(self.text_columns),
            "label_column": self.label_column,
            "rename": dict(self.rename),
            "drop": list(self.drop),
            "min_count": self.min_count,
            "rare_policy": self.rare_policy,
            "other_label": self.other_label,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LabelScheme:
        """Unknown keys (a newer TicketTune) are ignored; missing required ones a ConfigError."""
        return from_known_fields(cls, d, "the saved label setup")

    def check_columns(self, df: pd.DataFrame) -> None:
        """Raise a DataError naming the chosen columns the table lacks and those it has."""
        wanted = [(c, "text") for c in self.text_columns] + [(self.label_column, "label")]
        present = {str(c) for c in df.columns}
        missing = [(c, role) for c, role in wanted if c not in present]
        if not missing:
            self._check_unique(df, [c for c, _ in wanted])
            return
        noun = "column" if len(missing) == 1 else "columns"
        names = ", ".join(f"'{c}'" for c, _ in missing)
        roles = " and ".join(dict.fromkeys(role for _, role in missing))
        choose = "one of those" if len(missing) == 1 else "from those"
        raise DataError(
            f"No {noun} named {names}. Columns in your file: {', '.join(map(str, df.columns))}. "
            f"Pick {choose} as the {roles} {noun}."
        )

    @staticmethod
    def _check_unique(df: pd.DataFrame, columns: list[str]) -> None:
        repeated = [c for c in columns if list(df.columns).count(c) > 1]
        if repeated:
            raise DataError(
                f"The table has more than one column named {_quoted(repeated)}. Rename them so "
                "each name is different, then pick the columns again."
            )

    def apply(self, df: pd.DataFrame, *, id_columns: Iterable[str] | None = None) -> PreparedData:
        """Build the ticket texts and final labels; leave out (and count) unusable rows.

        A row is left out for the first reason that applies, in the order of
        :data:`DROP_REASONS`. The table's id columns (``id_columns``, else those
        :func:`guess_id_columns` finds) ride along after "label", as text, so every ticket
        list can show the file's own ids.
        """
        self.check_columns(df)
        import numpy as np
        import pandas as pd

        texts = np.array(ticket_texts(df, self.text_columns), dtype=object)
        raw = np.array(clean_cells(df[self.label_column]), dtype=object)
        empty_text = texts == ""
        missing_label = ~empty_text & (raw == "")
        dropped_by_user = ~empty_text & ~missing_label & np.isin(raw, list(self.drop))
        usable = ~(empty_text | missing_label | dropped_by_user)
        labels = np.array([self.rename.get(label, label) for label in raw], dtype=object)
        counts = Counter(labels[usable].tolist())
        rare = {label: n for label, n in sorted(counts.items()) if n < self.min_count}
        is_rare = usable & np.isin(labels, list(rare))
        if self.rare_policy == "drop":
            usable &= ~is_rare
        else:
            labels[is_rare] = self.other_label
        dropped = {
            EMPTY_TEXT: int(empty_text.sum()),
            MISSING_LABEL: int(missing_label.sum()),
            DROPPED_BY_USER: int(dropped_by_user.sum()),
            RARE_LABEL: int(is_rare.sum()) if self.rare_policy == "drop" else 0,
        }
        frame = pd.DataFrame(
            {"row": np.flatnonzero(usable), "text": texts[usable], "label": labels[usable]}
        )
        ids = self._id_columns(df, id_columns)
        for column in ids:
            frame[column] = np.array(clean_cells(df[column]), dtype=object)[usable]
        prepared = PreparedData(frame, len(df), dropped, rare, scheme=self, id_columns=ids)
        self._check_usable(prepared)
        return prepared

    def _id_columns(self, df: pd.DataFrame, chosen: Iterable[str] | None) -> tuple[str, ...]:
        used = {*self.text_columns, self.label_column}
        if chosen is None:
            return guess_id_columns(df, exclude=used)
        chosen = _as_tuple(chosen)
        missing = [c for c in chosen if c not in {str(c) for c in df.columns}]
        if missing:
            raise DataError(f"No id column named {_quoted(missing)} in the table.")
        clash = [c for c in chosen if c in used or c in RESERVED_COLUMNS]
        if clash:
            raise ConfigError(f"{_quoted(clash)} cannot be an id column: it is used already.")
        return chosen

    def _check_usable(self, prepared: PreparedData) -> None:
        if prepared.frame.empty:
            reasons = ", ".join(f"{n} with {reason}" for reason, n in prepared.dropped.items() if n)
            raise DataError(
                f"No usable tickets are left out of {prepared.rows_read} rows ({reasons}). "
                f"Check that the text columns ({', '.join(self.text_columns)}) and the label "
                f"column ('{self.label_column}') are the right ones."
            )
        labels = prepared.labels
        if len(labels) < 2:
            raise DataError(
                f"Only one label ('{labels[0]}') is left after {self._what_happened(prepared)}. "
                "A classifier needs at least two labels: pick another label column, or undo the "
                "merges/drops."
            )

    def _what_happened(self, prepared: PreparedData) -> str:
        steps = [f"reading the label column '{self.label_column}'"]
        if self.rename:
            steps.append("your renames and merges")
        if prepared.dropped[DROPPED_BY_USER]:
            steps.append("dropping the labels you picked")
        if prepared.rare_labels:
            rare = f"labels with fewer than {self.min_count} examples"
            if self.rare_policy == "drop":
                steps.append(f"dropping {rare}")
            else:
                steps.append(f"merging {rare} into '{self.other_label}'")
        return ", ".join(steps[:-1]) + " and " + steps[-1] if len(steps) > 1 else steps[0]

    def labels_after_mapping(
        self, raw_labels: Iterable[Any], *, count_rare: bool = True
    ) -> list[str]:
        """The sorted labels this scheme would produce from a label column, for a preview.

        Pass every label cell (with repeats) so rare labels can be counted, or set
        ``count_rare=False`` to apply only the drops and renames. Rows with empty text are not
        known here, so counts can differ slightly from :meth:`apply`.
        """
        kept = [label for label in clean_cells(raw_labels) if label and label not in self.drop]
        counts = Counter(self.rename.get(label, label) for label in kept)
        if not count_rare:
            return sorted(counts)
        final = {
            label if n >= self.min_count else self.other_label
            for label, n in counts.items()
            if n >= self.min_count or self.rare_policy == "other"
        }
        return sorted(final)


@dataclass
class PreparedData:
    """The usable tickets: ``frame`` has "row" (0-based row in the uploaded table), "text" and
    "label", then the table's ``id_columns``; ``dropped`` counts the rows left out per reason in
    :data:`DROP_REASONS`."""

    frame: pd.DataFrame
    rows_read: int
    dropped: dict[str, int]
    rare_labels: dict[str, int]
    scheme: LabelScheme | None = None
    id_columns: tuple[str, ...] = ()

    @property
    def labels(self) -> list[str]:
        return sorted(self.frame["label"].unique().tolist())

    def label_counts(self) -> dict[str, int]:
        """Tickets per label, largest first (ties by name)."""
        counts = Counter(self.frame["label"].tolist())
        return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def _as_tuple(value: str | Iterable[str]) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    return tuple(str(item) for item in value)


def _clean_rename(rename: Mapping[str, str] | None) -> dict[str, str]:
    return {str(old).strip(): str(new).strip() for old, new in dict(rename or {}).items()}


def _quoted(items: Iterable[str]) -> str:
    return ", ".join(f"'{item}'" for item in items)
