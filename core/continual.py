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

import numpy as np
import pandas as pd
import torch
from transformers import set_seed as hf_set_seed

from core.config import TrainConfig
from core.device import resolve_placement
from core.errors import ConfigError, DataError
from core.evaluation import compute_metrics
from core.modeling import META_FILE, classify, load_classifier
from core.progress import ProgressEvent
from core.runs import Run
from core.schema import LabelScheme
from core.split import DataSplit
from core.training import TicketTrainer, _class_weights

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


class ContinualTrainer(TicketTrainer):
    """A TicketTrainer that starts from the parent run's model instead of the pretrained one."""

    def load(self) -> None:
        config = self.config
        parent = parent_run(config.parent_run)
        self.placement = resolve_placement(config.device, config.precision)
        hf_set_seed(config.seed)
        self.progress(ProgressEvent("loading", message=f"Loading the model of {parent.id}."))
        model, tokenizer, meta = load_classifier(parent.model_dir, self.placement.device)
        new_labels = sorted(set(self.split.train["label"]) - set(meta.labels))
        self.labels = list(meta.labels) + new_labels
        self.parent_labels = list(meta.labels)
        self.parent_head = (model.head.weight.detach().clone(), model.head.bias.detach().clone())
        self.tokenizer, self.addon = tokenizer, meta.addon
        self.max_length = self.config.max_length or meta.max_length
        grown = type(model)(model.encoder, len(self.labels), normalize=model.normalize)
        if hasattr(model, "addon_modules"):
            grown.addon_modules = model.addon_modules
        self.model = grown.to(self.placement.device)
        self.parent = parent
        if config.class_weighting:
            weights = _class_weights(self.split.train["label"], self.labels)
            self.model.class_weights.copy_(torch.as_tensor(weights, dtype=torch.float32))

    def fit_head(self) -> None:
        """Old rows: the parent's head as it was. New rows: the quick fit on the new tickets."""
        super().fit_head()
        n_old = len(self.parent_labels)
        weight, bias = self.model.head.weight.detach().clone(), self.model.head.bias.detach()
        weight[:n_old], bias = self.parent_head[0], bias.clone()
        bias[:n_old] = self.parent_head[1]
        self.model.set_head(weight, bias)
        test = self.embeddings["test"]
        logits = test @ weight.cpu().numpy().T + bias.cpu().numpy()
        self.quick_test_probabilities = _softmax(logits, len(self.labels))

    def prepare_method(self) -> None:
        if self.addon is None:
            super().prepare_method()
        else:  # the parent's adapters/prompt keep training; nothing is added twice
            for name, param in self.model.encoder.named_parameters():
                param.requires_grad = "prompt_encoder" in name
            for param in getattr(self.model, "addon_modules", torch.nn.Module()).parameters():
                param.requires_grad = True

    def outcome(self, test_probabilities: np.ndarray, stop_reason: str):
        """Every outcome (the quick method's too) carries both test sets and the new labels."""
        self.progress(
            ProgressEvent("evaluating", message="Scoring the earlier run's test tickets.")
        )
        previous = parent_split(self.parent, "test")
        previous_probs = classify(
            self.model,
            self.tokenizer,
            previous["text"].tolist(),
            max_length=self.max_length,
            placement=self.placement,
        )
        self.extra_metrics = continual_metrics(
            self.parent, previous, previous_probs, self.split.test, test_probabilities, self.labels
        )
        self.extra_metrics["new_labels"] = self.labels[len(self.parent_labels) :]
        return super().outcome(test_probabilities, stop_reason)


def continual_metrics(
    parent: Run,
    previous: pd.DataFrame,
    previous_probs: np.ndarray,
    new_test: pd.DataFrame,
    new_probs: np.ndarray,
    labels: list[str],
) -> dict[str, Any]:
    def scores(frame: pd.DataFrame, probs: np.ndarray) -> dict[str, float]:
        predicted = [labels[i] for i in probs.argmax(axis=1)] if len(frame) else []
        return compute_metrics(frame["label"].tolist(), predicted, labels)

    before = (parent.read_json("metrics.json", default={}) or {}).get("model", {})
    previous_scores = scores(previous, previous_probs)
    forgetting = None
    if before.get("macro_f1") is not None and len(previous):
        forgetting = round(float(before["macro_f1"]) - float(previous_scores["macro_f1"]), 4)
    return {
        "previous_test": previous_scores,
        "new_test": scores(new_test, new_probs),
        "parent_previous_test_macro_f1": before.get("macro_f1"),
        "forgetting": forgetting,
        "parent_run": str(parent.path),
    }


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


def _softmax(logits: np.ndarray, n_labels: int) -> np.ndarray:
    if not len(logits):
        return np.zeros((0, n_labels), dtype=np.float32)
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)
