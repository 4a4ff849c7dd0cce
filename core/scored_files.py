"""Files of new tickets scored in the app: where they live in a run, and what is kept with them.

Scoring streams the input (:func:`core.batch_scoring.score_file`), so memory stays flat at any
size; what the page shows afterwards is kept small and on disk, beside the output::

    <run>/scored/<scored id>/labelled.csv   every row plus the model's columns (the download:
                                             UTF-8 with BOM, safe to open in Excel)
    <run>/scored/<scored id>/shown.csv      the first rows and the first tickets the model was
                                             unsure about, as scored (not escaped for Excel)
    <run>/scored/<scored id>/meta.json      source name, upload id, text columns, threshold,
                                             counts per label, how many go to a person

A folder without meta.json is being written (or was left by a crash): listings skip it. Only
the newest :data:`KEEP_SCORED` scored files of a run are kept.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from core import atomic
from core.batch_scoring import StreamProgress, score_file
from core.inference import NEEDS_REVIEW
from core.runs import Run, slugify, utc_now_iso

SCORED_FOLDER = "scored"
OUTPUT_FILE = "labelled.csv"
SHOWN_FILE = "shown.csv"
META_FILE = "meta.json"
#: Rows of the file the page shows, and unsure tickets kept for labelling them by hand.
FIRST_ROWS = 200
UNSURE_ROWS = 500
KEEP_SCORED = 10
#: Tickets scored at a time in the app: progress moves, and the model is not held for long.
APP_CHUNK_ROWS = 1000


@dataclass(frozen=True)
class ScoredFile:
    """A finished scored file of a run (read from its meta.json)."""

    folder: Path
    source_name: str
    upload_id: str | None
    text_columns: tuple[str, ...]
    threshold: float | None
    rows: int
    needs_review: int | None  # None when scored without a threshold
    label_counts: tuple[tuple[str, int], ...]  # most frequent first
    finished_at: str

    @property
    def id(self) -> str:
        return self.folder.name

    @property
    def labelled(self) -> int:
        """Tickets that got a label (a row without text gets none)."""
        return sum(count for _, count in self.label_counts)

    @property
    def download_name(self) -> str:
        return f"{Path(self.source_name).stem or 'tickets'}-labelled.csv"

    @property
    def size_bytes(self) -> int:
        return (self.folder / OUTPUT_FILE).stat().st_size

    def read_bytes(self) -> bytes:
        """The scored file as it is downloaded (read only when asked: it can be large)."""
        return (self.folder / OUTPUT_FILE).read_bytes()

    def first_rows(self) -> pd.DataFrame:
        """The first :data:`FIRST_ROWS` rows as scored; the index is the row's position."""
        shown = _read_shown(self.folder)
        return shown[shown.index < min(FIRST_ROWS, self.rows)]

    def unsure_rows(self) -> pd.DataFrame:
        """The first :data:`UNSURE_ROWS` labelled tickets below the threshold (index: row)."""
        shown = _read_shown(self.folder)
        if NEEDS_REVIEW not in shown:
            return shown.iloc[0:0]
        return shown[shown[NEEDS_REVIEW] & shown["predicted_label"].notna()]


def scored_folder(run: Run) -> Path:
    """Where a run's scored files live."""
    return run.path / SCORED_FOLDER


def new_scored_folder(run: Run, source_name: str) -> Path:
    """A fresh folder for scoring ``source_name`` (its name is the scored file's id)."""
    root = scored_folder(run)
    root.mkdir(parents=True, exist_ok=True)
    base = f"{dt.datetime.now(dt.timezone.utc):%Y%m%d-%H%M%S}-{slugify(Path(source_name).stem)}"
    for suffix in range(1, 1000):
        folder = root / (base if suffix == 1 else f"{base}-{suffix}")
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            continue
    raise FileExistsError(f"No free folder name for {base} in {root}")


def list_scored(run: Run, limit: int | None = None) -> list[ScoredFile]:
    """The run's finished scored files, newest first."""
    found = _finished(scored_folder(run))
    return found if limit is None else found[:limit]


def _finished(root: Path) -> list[ScoredFile]:
    if not root.is_dir():
        return []
    found = [f for f in map(_load, root.iterdir()) if f is not None]
    return sorted(found, key=lambda f: (f.finished_at, f.id), reverse=True)


def get_scored(run: Run, scored_id: str) -> ScoredFile | None:
    """The finished scored file ``scored_id`` of the run, or None."""
    folder = scored_folder(run) / scored_id
    if os.sep in scored_id or "/" in scored_id or scored_id in ("", ".", ".."):
        return None
    return _load(folder) if folder.is_dir() else None


def score_into(
    folder: Path,
    predictor,
    source: str | os.PathLike,
    source_name: str,
    text_columns: Sequence[str],
    *,
    threshold: float | None,
    upload_id: str | None = None,
    encoding: str | None = None,
    chunk_rows: int = APP_CHUNK_ROWS,
    on_progress: Callable[[StreamProgress], None] | None = None,
) -> ScoredFile:
    """Score ``source`` into ``folder`` (from :func:`new_scored_folder`), keeping what the page
    shows. On any error the folder is removed and the error raised."""
    tally = _Tally()
    try:
        score_file(
            predictor,
            source,
            folder / OUTPUT_FILE,
            text_columns,
            threshold=threshold,
            chunk_rows=chunk_rows,
            encoding=encoding,
            filename=source_name,
            on_progress=on_progress,
            on_chunk=tally.add,
            excel_bom=True,
        )
        atomic.write_text(folder / SHOWN_FILE, tally.shown().to_csv())
        meta = {
            "source_name": source_name,
            "upload_id": upload_id,
            "text_columns": list(text_columns),
            "threshold": threshold,
            "rows": tally.rows,
            "needs_review": tally.needs_review if threshold is not None else None,
            "label_counts": dict(tally.labels.most_common()),
            "finished_at": utc_now_iso(),
        }
        atomic.write_json(folder / META_FILE, meta)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    scored = _load(folder)
    assert scored is not None
    prune(folder.parent, keep=KEEP_SCORED, keep_id=folder.name)
    return scored


def prune(root: Path, keep: int = KEEP_SCORED, keep_id: str | None = None) -> None:
    """Delete all but the ``keep`` newest finished scored files (and ``keep_id``)."""
    for scored in _finished(root)[keep:]:
        if scored.id != keep_id:
            shutil.rmtree(scored.folder, ignore_errors=True)


class _Tally:
    """What scoring a file adds up to, chunk by chunk, in bounded memory."""

    def __init__(self) -> None:
        self.rows = 0
        self.needs_review = 0
        self.labels: Counter[str] = Counter()
        self.first: list[pd.DataFrame] = []
        self.unsure: list[pd.DataFrame] = []
        self.unsure_kept = 0

    def add(self, scored: pd.DataFrame, start: int) -> None:
        scored = scored.set_axis(range(start, start + len(scored)))
        self.rows += len(scored)
        self.labels.update(scored["predicted_label"].dropna().astype(str))
        if start < FIRST_ROWS:
            self.first.append(scored.head(FIRST_ROWS - start))
        if NEEDS_REVIEW in scored:
            flagged = scored[NEEDS_REVIEW].astype(bool)
            self.needs_review += int(flagged.sum())
            unsure = scored[flagged & scored["predicted_label"].notna()]
            if self.unsure_kept < UNSURE_ROWS and len(unsure):
                self.unsure.append(unsure.head(UNSURE_ROWS - self.unsure_kept))
                self.unsure_kept += len(self.unsure[-1])

    def shown(self) -> pd.DataFrame:
        parts = self.first + self.unsure
        if not parts:
            return pd.DataFrame()
        both = pd.concat(parts)
        return both[~both.index.duplicated()].sort_index()


def _load(folder: Path) -> ScoredFile | None:
    try:
        meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
        if not (folder / OUTPUT_FILE).is_file() or not isinstance(meta, dict):
            return None
        return ScoredFile(
            folder=folder,
            source_name=str(meta.get("source_name") or "tickets"),
            upload_id=meta.get("upload_id"),
            text_columns=tuple(str(c) for c in meta.get("text_columns") or ()),
            threshold=_number(meta.get("threshold")),
            rows=int(meta.get("rows") or 0),
            needs_review=None if meta.get("needs_review") is None else int(meta["needs_review"]),
            label_counts=tuple(
                (str(k), int(v)) for k, v in (meta.get("label_counts") or {}).items()
            ),
            finished_at=str(meta.get("finished_at") or ""),
        )
    except (OSError, ValueError, TypeError, AttributeError, KeyError):
        return None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) else None


def _read_shown(folder: Path) -> pd.DataFrame:
    """shown.csv with the model's columns typed again (the file's own cells stay text)."""
    try:
        shown = pd.read_csv(
            folder / SHOWN_FILE, index_col=0, dtype=str, keep_default_na=False, encoding="utf-8"
        )
    except (OSError, ValueError):  # missing, or empty (pandas' EmptyDataError is a ValueError)
        return pd.DataFrame()
    shown.index = shown.index.astype(int)
    columns = list(shown.columns)
    model = columns[columns.index("predicted_label") :] if "predicted_label" in columns else []
    for column in model:
        if column.endswith("_label"):
            shown[column] = shown[column].replace("", None)
        elif column.endswith("confidence"):
            shown[column] = pd.to_numeric(shown[column].replace("", None))
        elif column == NEEDS_REVIEW:
            shown[column] = shown[column] == "True"
    return shown
