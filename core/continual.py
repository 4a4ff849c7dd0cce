"""Retrain with new tickets: start from an earlier run's model, replay some of its tickets.

- Weights: the encoder (and any add-on) and the head of the parent run's saved model.
- Labels: the parent's labels keep their ids and head rows; labels only the new tickets have
  are appended after them, their head rows taken from the quick fit on the new training
  tickets (the parent's encoder reading them).
- Replay: ``replay_fraction`` × (new training tickets) tickets drawn, seeded, from the parent's
  training split (its ``split.csv``) and mixed into the new training set, so the model keeps
  seeing the earlier labels and does not forget them.
- Metrics: the new test tickets as usual, plus ``metrics["previous_test"]`` (the parent's test
  tickets: has the model forgotten?), ``metrics["new_test"]`` and ``metrics["forgetting"]``
  (the parent's macro-F1 on its own test minus the new model's on the same tickets).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from core.config import TrainConfig
from core.errors import ConfigError, DataError
from core.modeling import META_FILE
from core.runs import Run
from core.schema import LabelScheme
from core.split import DataSplit

SPLIT_FILE = "split.csv"
#: Macro-F1 on the earlier test tickets may drop this many points and the retrained model still
#: counts as having kept what it knew (the target the replay default is measured against).
FORGETTING_TOLERANCE_POINTS = 2.0


def parent_run(path: str | Path) -> Run:
    """The run folder to continue from, or a clear error if it has no trained model."""
    run = Run(Path(path).parent if Path(path).name == "model" else path)
    if not (run.model_dir / "tickettune.json").is_file():
        raise ConfigError(
            f"The run '{run.path}' has no trained model to continue from (did it finish?)."
        )
    return run


def parent_split(run: Run, part: str) -> pd.DataFrame:
    """The parent's tickets of one part of its split ("train", "validation", "test")."""
    split = run.read_frame(SPLIT_FILE, keep_default_na=False)
    if split is None or "split" not in split:
        raise ConfigError(f"The run '{run.path}' has no saved split ({SPLIT_FILE}).")
    rows = split.loc[split["split"] == part, ["text", "label"]]
    return rows.astype(str).reset_index(drop=True)


def replay_sample(run: Run, n_new: int, fraction: float, seed: int) -> pd.DataFrame:
    """``fraction`` × ``n_new`` of the parent's training tickets (all of them if fewer)."""
    earlier = parent_split(run, "train")
    n = min(len(earlier), round(fraction * n_new))
    return earlier.sample(n=n, random_state=seed).reset_index(drop=True) if n else earlier[:0]


def with_replay(split: DataSplit, config: TrainConfig) -> DataSplit:
    """``split`` with the replay sample added to its training tickets (marked ``replay``)."""
    sample = replay_sample(
        parent_run(config.parent_run), len(split.train), config.replay_fraction, config.seed
    )
    new = split.train.assign(replay=False)
    replayed = sample.assign(replay=True, row=-1)
    train = pd.concat([new, replayed[[c for c in new.columns if c in replayed]]], ignore_index=True)
    return replace(split, train=train)


def request_from_run(
    run: Run | str | Path,
    new_table: pd.DataFrame,
    *,
    source_name: str = "",
    replay_fraction: float | None = None,
    **config_changes: Any,
):
    """A TrainingRequest that retrains ``run`` on ``new_table`` (same columns as the earlier
    data): the earlier run's label scheme and settings, ``parent_run`` set. For the app's
    "Retrain with new tickets"."""
    from core.pipeline import TrainingRequest

    parent = parent_run(run.path if isinstance(run, Run) else run)
    config = TrainConfig.from_dict(parent.read_json("config.json", default={}) or {})
    changes = {"parent_run": str(parent.path), "teacher_run": None, **config_changes}
    if replay_fraction is not None:
        changes["replay_fraction"] = replay_fraction
    scheme = LabelScheme.from_dict(parent.read_json("scheme.json"))
    check_new_tickets(scheme, new_table)
    return TrainingRequest(
        table=new_table,
        scheme=scheme,
        config=replace(config, **changes),
        source_name=source_name,
    )


def check_new_tickets(scheme: LabelScheme, table: pd.DataFrame) -> None:
    """DataError unless ``table`` has the columns the earlier run was trained on (the label
    scheme's own check, worded for a file of new tickets)."""
    try:
        scheme.check_columns(table)
    except DataError as exc:
        wanted = [*scheme.text_columns, scheme.label_column]
        present = [str(c) for c in table.columns]
        if all(column in present for column in wanted):
            raise  # the columns are there (e.g. twice): the scheme's message says what to do
        texts = ", ".join(f"'{c}'" for c in scheme.text_columns)
        missing = ", ".join(f"'{c}'" for c in wanted if c not in present)
        raise DataError(
            "The new tickets need the same columns as the tickets this model learned from: "
            f"text in {texts} and labels in '{scheme.label_column}'. Your file has no "
            f"{missing} (its columns: {', '.join(present)}). Rename the "
            "columns in your file to match and upload it again."
        ) from exc


@dataclass(frozen=True)
class NewTickets:
    """What a file of new tickets brings, before retraining on it."""

    tickets: int
    known_labels: tuple[str, ...]
    new_labels: tuple[str, ...]


def preview_new_tickets(run: Run | str | Path, table: pd.DataFrame) -> NewTickets:
    """How many usable tickets ``table`` has and which of its labels the model does not know
    yet (read with the earlier run's label setup). DataError for a file that does not fit."""
    parent = parent_run(run.path if isinstance(run, Run) else run)
    scheme = LabelScheme.from_dict(parent.read_json("scheme.json"))
    check_new_tickets(scheme, table)
    prepared = scheme.apply(table)
    known = set(model_labels(parent))
    labels = prepared.labels
    return NewTickets(
        tickets=len(prepared.frame),
        known_labels=tuple(label for label in labels if label in known),
        new_labels=tuple(label for label in labels if label not in known),
    )


def model_labels(run: Run) -> list[str]:
    """The labels the run's saved model predicts, in head order."""
    meta = run.read_json(f"model/{META_FILE}", default={}) or {}
    return [str(label) for label in meta.get("labels", [])]


@dataclass(frozen=True)
class Forgetting:
    """The Review page's figures for a retrained run (macro-F1 as 0–1 shares)."""

    parent_run: str
    earlier_before: float | None
    earlier_after: float
    earlier_tickets: int
    new_after: float
    new_tickets: int
    new_labels: tuple[str, ...]

    @property
    def change_points(self) -> float | None:
        """After minus before on the earlier test tickets, in points (negative: forgotten)."""
        if self.earlier_before is None:
            return None
        return (self.earlier_after - self.earlier_before) * 100

    @property
    def kept_what_it_knew(self) -> bool | None:
        """Macro-F1 on the earlier test tickets fell by at most the tolerance (None: unknown)."""
        change = self.change_points
        return None if change is None else change >= -FORGETTING_TOLERANCE_POINTS


def forgetting(metrics: dict[str, Any]) -> Forgetting | None:
    """The forgetting figures a retrained run's metrics hold, or None for any other run."""
    previous, new = metrics.get("previous_test"), metrics.get("new_test")
    if not isinstance(previous, dict) or not isinstance(new, dict):
        return None
    before = metrics.get("parent_previous_test_macro_f1")
    return Forgetting(
        parent_run=Path(str(metrics.get("parent_run") or "")).name,
        earlier_before=float(before) if isinstance(before, (int, float)) else None,
        earlier_after=float(previous.get("macro_f1", 0.0)),
        earlier_tickets=int(previous.get("n", 0)),
        new_after=float(new.get("macro_f1", 0.0)),
        new_tickets=int(new.get("n", 0)),
        new_labels=tuple(str(label) for label in metrics.get("new_labels", ())),
    )
