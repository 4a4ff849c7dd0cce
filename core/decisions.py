"""The analyst's label decisions: a versioned record kept beside the label scheme.

Reviewing a run leads to decisions — merge two labels, drop one, correct a ticket's label,
leave a ticket out, add newly labelled tickets. They are stored, never applied to the uploaded
file in place: :func:`apply_decisions` turns the upload (plus the new tickets) into a corrected
table to download and train on, and gives the label scheme the next run should use.

Each saved version is its own file, so an earlier state can always be looked at again::

    <folder>/decisions/v0001.json, v0002.json, ...

Rows are 0-based positions among the data rows of the upload they belong to (spreadsheet row
numbers are ``row + 2``, see ``core.schema.sheet_row``).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from core import atomic
from core.errors import ConfigError, DataError
from core.runs import utc_now_iso
from core.schema import LabelScheme
from core.text import cell_to_str

DECISIONS_FOLDER = "decisions"
SOURCE_UPLOAD = "_source_upload"
SOURCE_ROW = "_source_row"
_VERSION_RE = re.compile(r"^v(\d{4,})\.json$")


@dataclass(frozen=True)
class Merge:
    """Make several labels one: the tickets of ``labels`` get the label ``into``."""

    labels: tuple[str, ...]
    into: str
    by: str = ""
    at: str = ""
    kind: Literal["merge"] = "merge"

    def __post_init__(self) -> None:
        labels = tuple(dict.fromkeys(str(v).strip() for v in _as_tuple(self.labels)))
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "into", str(self.into).strip())
        if len(labels) < 2 or not all(labels) or not self.into:
            raise ConfigError("A merge needs at least two labels and a name for the result.")


@dataclass(frozen=True)
class Drop:
    """Leave out every ticket of one label."""

    label: str
    by: str = ""
    at: str = ""
    kind: Literal["drop"] = "drop"


@dataclass(frozen=True)
class Correction:
    """One ticket's label in the file is wrong: it should be ``new_label``."""

    row: int
    new_label: str
    old_label: str = ""
    by: str = ""
    at: str = ""
    kind: Literal["correction"] = "correction"


@dataclass(frozen=True)
class Exclusion:
    """Leave one ticket out (unclear, spam, a duplicate...)."""

    row: int
    reason: str = ""
    by: str = ""
    at: str = ""
    kind: Literal["exclusion"] = "exclusion"


@dataclass(frozen=True)
class NewTicket:
    """A newly labelled ticket: its text columns, its label and where it came from."""

    texts: Mapping[str, str]
    label: str
    upload: str = ""
    row: int | None = None
    by: str = ""
    at: str = ""
    kind: Literal["new_ticket"] = "new_ticket"

    def __post_init__(self) -> None:
        object.__setattr__(self, "texts", {str(k): str(v) for k, v in dict(self.texts).items()})


LabelChange = Merge | Drop
Decision = Merge | Drop | Correction | Exclusion | NewTicket
_KINDS: dict[str, type] = {
    "merge": Merge,
    "drop": Drop,
    "correction": Correction,
    "exclusion": Exclusion,
    "new_ticket": NewTicket,
}


@dataclass(frozen=True)
class LabelDecisions:
    """All decisions so far, in the order they were made, on top of ``scheme``.

    ``version`` 0 means nothing decided yet; :meth:`add` returns the next version.
    """

    scheme: LabelScheme
    decisions: tuple[Decision, ...] = ()
    version: int = 0
    upload: str = ""
    saved_at: str = ""

    def add(self, *decisions: Decision, by: str = "") -> LabelDecisions:
        """A new version with ``decisions`` appended, stamped with who and when."""
        now = utc_now_iso()
        stamped = tuple(replace(d, by=d.by or by, at=d.at or now) for d in decisions)
        return replace(self, decisions=self.decisions + stamped, version=self.version + 1)

    def label_changes(self) -> list[LabelChange]:
        return [d for d in self.decisions if isinstance(d, Merge | Drop)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "upload": self.upload,
            "saved_at": self.saved_at,
            "scheme": self.scheme.to_dict(),
            "decisions": [_decision_to_dict(d) for d in self.decisions],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LabelDecisions:
        try:
            decisions = tuple(_decision_from_dict(d) for d in data.get("decisions", ()))
            return cls(
                scheme=LabelScheme.from_dict(data["scheme"]),
                decisions=decisions,
                version=int(data.get("version", 0)),
                upload=str(data.get("upload", "")),
                saved_at=str(data.get("saved_at", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"The saved label decisions cannot be read ({exc}).") from exc


def _as_tuple(value: Any) -> tuple:
    return (value,) if isinstance(value, str) else tuple(value)


def _decision_to_dict(decision: Decision) -> dict[str, Any]:
    data = {f: getattr(decision, f) for f in decision.__dataclass_fields__}
    if isinstance(decision, Merge):
        data["labels"] = list(decision.labels)
    if isinstance(decision, NewTicket):
        data["texts"] = dict(decision.texts)
    return data


def _decision_from_dict(data: Mapping[str, Any]) -> Decision:
    kind = data.get("kind")
    if kind not in _KINDS:
        raise ValueError(f"unknown decision kind {kind!r}")
    cls = _KINDS[kind]
    return cls(**{k: v for k, v in data.items() if k != "kind"})


class DecisionStore:
    """Versions of the label decisions for one upload, each in its own JSON file."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder) / DECISIONS_FOLDER

    def versions(self) -> list[int]:
        if not self.folder.is_dir():
            return []
        found = (_VERSION_RE.match(p.name) for p in self.folder.iterdir())
        return sorted(int(m.group(1)) for m in found if m)

    def save(self, decisions: LabelDecisions) -> LabelDecisions:
        """Store ``decisions`` as its version; a version is written once and never replaced."""
        path = self._path(decisions.version)
        if path.exists():
            raise ConfigError(
                f"Version {decisions.version} of the label decisions is already saved; "
                "load the latest version and add to it."
            )
        saved = replace(decisions, saved_at=utc_now_iso())
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic.write_json(path, saved.to_dict())
        return saved

    def load(self, version: int | None = None) -> LabelDecisions | None:
        """A saved version (the latest by default), or None when nothing is saved."""
        versions = self.versions()
        if not versions:
            return None
        version = versions[-1] if version is None else version
        try:
            data = json.loads(self._path(version).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"There is no version {version} of the label decisions.") from None
        return LabelDecisions.from_dict(data)

    def _path(self, version: int) -> Path:
        return self.folder / f"v{version:04d}.json"


@dataclass
class CorrectedData:
    """The upload with the decisions applied, and the label scheme that goes with it.

    ``table`` has the upload's columns (new tickets fill only the text and label columns) plus
    :data:`SOURCE_UPLOAD` and :data:`SOURCE_ROW` saying where each row came from; ``labels``
    are the final labels after the decisions.
    """

    table: pd.DataFrame
    scheme: LabelScheme
    version: int
    labels: list[str]
    counts: dict[str, int] = field(default_factory=dict)


def apply_decisions(
    table: pd.DataFrame, decisions: LabelDecisions, *, upload_name: str = ""
) -> CorrectedData:
    """Apply the decisions, in order, to a copy of ``table`` (the upload is never modified).

    Raises ConfigError for a correction or new ticket to a label not in the scheme, a merge or
    drop naming a label that no longer exists, and a row that is not in the table.
    """
    scheme = decisions.scheme
    scheme.check_columns(table)
    label_column = scheme.label_column
    corrected = table.copy()
    corrected[label_column] = [cell_to_str(v).strip() for v in corrected[label_column]]
    corrected[SOURCE_UPLOAD] = upload_name or decisions.upload
    corrected[SOURCE_ROW] = range(len(table))
    rename = dict(scheme.rename)
    drop = list(scheme.drop)

    def final(raw: str) -> str:
        return rename.get(raw, raw)

    def current_labels() -> set[str]:
        raws = set(corrected[label_column]) - set(drop) - {""}
        return {final(raw) for raw in raws}

    excluded: set[int] = set()
    counts = dict.fromkeys(_KINDS, 0)
    for decision in decisions.decisions:
        labels = current_labels()
        counts[decision.kind] += 1
        if isinstance(decision, Merge | Drop):
            named = decision.labels if isinstance(decision, Merge) else (decision.label,)
            _require_labels(named, labels, "merge" if isinstance(decision, Merge) else "drop")
            raws = {raw for raw in set(corrected[label_column]) if final(raw) in named}
            if isinstance(decision, Merge):
                rename.update({raw: decision.into for raw in raws | set(decision.labels)})
            else:
                drop.extend(sorted(raws - set(drop)))
        elif isinstance(decision, Correction):
            _require_row(decision.row, len(table))
            _require_labels((decision.new_label,), labels, "correct a ticket to")
            corrected.loc[decision.row, label_column] = decision.new_label
        elif isinstance(decision, Exclusion):
            _require_row(decision.row, len(table))
            excluded.add(decision.row)
        elif isinstance(decision, NewTicket):
            _require_labels((decision.label,), labels, "label a new ticket as")
            corrected = pd.concat([corrected, _new_row(decision, scheme)], ignore_index=True)
    corrected = corrected.drop(index=sorted(excluded)).reset_index(drop=True)
    next_scheme = replace(scheme, rename=rename, drop=tuple(drop))
    labels = sorted(next_scheme.labels_after_mapping(corrected[label_column], count_rare=False))
    return CorrectedData(corrected, next_scheme, decisions.version, labels, counts)


def downloadable(corrected: CorrectedData) -> pd.DataFrame:
    """The corrected table as the analyst downloads it: the upload's columns, then the source."""
    return corrected.table.copy()


def _new_row(ticket: NewTicket, scheme: LabelScheme) -> pd.DataFrame:
    missing = [c for c in scheme.text_columns if c not in ticket.texts]
    if missing:
        raise DataError(
            f"A new ticket from '{ticket.upload}' lacks the text column(s) {', '.join(missing)}."
        )
    row = {c: ticket.texts[c] for c in scheme.text_columns}
    row[scheme.label_column] = ticket.label
    row[SOURCE_UPLOAD] = ticket.upload
    row[SOURCE_ROW] = ticket.row if ticket.row is not None else -1
    return pd.DataFrame([row])


def _require_labels(named: Iterable[str], labels: set[str], action: str) -> None:
    missing = [label for label in named if label not in labels]
    if missing:
        names = ", ".join(f"'{label}'" for label in missing)
        raise ConfigError(
            f"Cannot {action} {names}: there is no such label in the label scheme any more "
            f"(labels now: {', '.join(sorted(labels))})."
        )


def _require_row(row: int, n_rows: int) -> None:
    if not 0 <= int(row) < n_rows:
        raise ConfigError(f"There is no ticket at row {row}: the file has {n_rows} data rows.")
