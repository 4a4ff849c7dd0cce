"""The review → decide → retrain loop: which upload a run came from, the decisions kept beside
that upload, and the training request that applies them.

A run started from the app records the upload it was trained on (``upload_id`` in its status);
a run started by applying decisions also records the run it came from (``parent_run``) and the
decisions version it applied. Decisions always refer to the upload's own rows, so they stay
valid across retrained runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import pandas as pd

from core.config import TrainConfig
from core.decisions import (
    CorrectedData,
    Decision,
    DecisionStore,
    LabelDecisions,
    NewTicket,
    apply_decisions,
)
from core.errors import ConfigError
from core.lineage import origin_of
from core.runs import Run
from core.schema import LabelScheme
from core.split import DataSplit

UPLOAD_FIELD = "upload_id"
PARENT_FIELD = "parent_run"
DECISIONS_FIELD = "decisions_version"
_SPLIT_FILE = "split.csv"  # written by core.pipeline (SPLIT_FILE); read here, not in the UI


def run_upload(run: Run) -> str | None:
    """The upload this run was trained on, when it says."""
    value = run.status().get(UPLOAD_FIELD)
    return str(value) if value else None


def run_parent(run: Run) -> str | None:
    """The id of the run this one came from (decisions applied, retrained or distilled)."""
    origin = origin_of(run.status())
    return origin.parent_id if origin is not None else None


def run_scheme(run: Run) -> LabelScheme:
    data = run.read_json("scheme.json", default=None)
    if not isinstance(data, Mapping):
        raise ConfigError("This run does not say how its labels were set up (no scheme.json).")
    return LabelScheme.from_dict(data)


def run_config(run: Run) -> TrainConfig:
    return TrainConfig.from_dict(run.train_settings())


def run_split(run: Run) -> DataSplit | None:
    """The run's train / validation / test tickets as saved, or None."""
    frame = run.read_frame(_SPLIT_FILE, dtype=str, keep_default_na=False)
    if frame is None or "split" not in frame:
        return None
    if "row" in frame:
        frame["row"] = pd.to_numeric(frame["row"], errors="coerce").fillna(-1).astype(int)
    parts = {
        name: frame[frame["split"] == name].drop(columns="split").reset_index(drop=True)
        for name in ("train", "validation", "test")
    }
    return DataSplit(parts["train"], parts["validation"], parts["test"], strategy="saved")


def current_decisions(folder: str | Path, base_scheme: LabelScheme, upload: str) -> LabelDecisions:
    """The latest saved decisions for an upload, or an empty set on ``base_scheme``."""
    saved = DecisionStore(folder).load()
    return saved if saved is not None else LabelDecisions(base_scheme, upload=upload)


def record(folder: str | Path, current: LabelDecisions, *decisions: Decision, by: str = ""):
    """Save ``current`` plus ``decisions`` as the next version; returns it."""
    return DecisionStore(folder).save(current.add(*decisions, by=by))


def undo(folder: str | Path, current: LabelDecisions, index: int) -> LabelDecisions:
    """Save a new version without the decision at ``index`` (earlier versions stay on disk)."""
    if not 0 <= index < len(current.decisions):
        raise ConfigError("That change is no longer in the list; it may have been undone already.")
    kept = current.decisions[:index] + current.decisions[index + 1 :]
    return DecisionStore(folder).save(replace(current, decisions=kept, version=current.version + 1))


def new_tickets(
    scored: pd.DataFrame,
    rows: Mapping[int, str],
    *,
    read_columns: list[str],
    text_columns: list[str],
    upload: str,
) -> list[NewTicket]:
    """NewTicket decisions for rows of a scored file the analyst labelled.

    ``read_columns`` are the file's columns the model read, in the order of the scheme's
    ``text_columns`` (the same names unless the analyst chose other columns).
    """
    if len(read_columns) != len(text_columns):
        raise ConfigError(
            f"The model reads {len(text_columns)} text column(s) but {len(read_columns)} were "
            "chosen; pick as many columns as the model was trained on to add these tickets."
        )
    tickets = []
    for row, label in rows.items():
        texts = {
            target: "" if pd.isna(scored.at[row, source]) else str(scored.at[row, source])
            for target, source in zip(text_columns, read_columns, strict=True)
        }
        tickets.append(NewTicket(texts=texts, label=label, upload=upload, row=int(row)))
    return tickets


def retrain_request(
    table: pd.DataFrame,
    decisions: LabelDecisions,
    config: TrainConfig,
    *,
    source_name: str,
):
    """The training request for the corrected table, and the corrected data itself.

    Raises ConfigError when a decision no longer fits (a label merged away, a correction to a
    label not in the scheme); nothing is changed then.
    """
    from core.pipeline import TrainingRequest

    corrected = apply_decisions(table, decisions, upload_name=source_name)
    request = TrainingRequest(
        table=corrected.table,
        scheme=corrected.scheme,
        config=config,
        source_name=f"{source_name} + label decisions v{decisions.version}",
    )
    return request, corrected


def retrain_fields(request, upload_id: str, parent: Run, version: int) -> dict:
    """What the new run's status says about where it came from."""
    return {
        **request.describe(),
        UPLOAD_FIELD: upload_id,
        PARENT_FIELD: parent.id,
        DECISIONS_FIELD: version,
    }


def corrected_download(corrected: CorrectedData) -> pd.DataFrame:
    """The corrected table, safe to open in a spreadsheet."""
    from core.decisions import downloadable
    from core.scoring import spreadsheet_safe

    return spreadsheet_safe(downloadable(corrected))
