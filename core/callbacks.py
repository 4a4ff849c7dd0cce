"""Trainer callbacks: the seam between the Hugging Face Trainer and the outside world.

They only observe and set ``control`` flags; they never stop a thread or touch the UI.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from pathlib import Path

import torch
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from core import atomic
from core.distributed import agree_max
from core.errors import JobCancelledError, TicketTuneError
from core.progress import ProgressCallback, ProgressEvent

METRIC = "eval_macro_f1"
BEST_WEIGHTS_FILE = "best_weights.pt"
BEST_STATE_FILE = "best_state.json"
DIVERGED_REASON = (
    "Training diverged (the loss became NaN) — try a lower learning rate. "
    "The tickets and settings are kept in the run folder."
)


class TrainingDivergedError(TicketTuneError):
    """The training loss became NaN or infinite; the weights are no longer usable."""

    def __init__(self, message: str = DIVERGED_REASON):
        super().__init__(message)


class ProgressReporter(TrainerCallback):
    """Turns Trainer steps, logs and evaluations into ``ProgressEvent``s with an ETA."""

    def __init__(self, progress: ProgressCallback, min_interval_s: float = 0.5):
        self.progress = progress
        self.min_interval_s = min_interval_s
        self._started = 0.0
        self._first_step = 0
        self._last_sent = 0.0

    def on_train_begin(self, args, state, control, **kwargs):
        self._started = time.monotonic()
        self._first_step = state.global_step
        if state.global_step:
            message = f"Training resumed at step {state.global_step} of {state.max_steps}."
        else:
            message = f"Training started: {state.max_steps} steps."
        self._emit(state, message=message)

    def on_train_end(self, args, state, control, **kwargs):
        self._emit(state, message=f"Training finished after {state.global_step} steps.")

    def on_step_end(self, args, state, control, **kwargs):
        if time.monotonic() - self._last_sent >= self.min_interval_s:
            self._emit(state)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self._emit(state, loss=float(logs["loss"]))

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if not metrics:
            return
        clean = {k.removeprefix("eval_"): float(v) for k, v in metrics.items() if _is_metric(k)}
        f1 = clean.get("macro_f1", float("nan"))
        self._emit(
            state,
            eval_metrics=clean,
            message=f"Checked on validation tickets at epoch {state.epoch:.1f}: macro-F1 {f1:.3f}",
        )

    def _eta(self, state: TrainerState) -> float | None:
        done = state.global_step - self._first_step
        if done <= 0 or not self._started:
            return None
        per_step = (time.monotonic() - self._started) / done
        return per_step * max(0, state.max_steps - state.global_step)

    def _emit(self, state: TrainerState, **fields) -> None:
        self._last_sent = time.monotonic()
        self.progress(
            ProgressEvent(
                stage="training",
                step=state.global_step,
                total_steps=state.max_steps,
                epoch=float(state.epoch or 0.0),
                eta_seconds=self._eta(state),
                **fields,
            )
        )


def _is_metric(key: str) -> bool:
    return key.startswith("eval_") and not key.endswith(("_runtime", "_per_second"))


class StopControl(TrainerCallback):
    """Cooperative cancel and time budget, checked between steps.

    On the time budget the Trainer also evaluates once more, so the last stretch of training
    can still become the best checkpoint. A cancel during a validation check aborts it at the
    next batch (raising JobCancelledError out of the Trainer): a check over many tickets on a
    busy machine took tens of seconds, during which Cancel seemed to do nothing.

    Under torchrun every rank must stop at the same step (a rank that trains on waits forever
    for the others in the next gradient exchange), so each check is agreed: the strongest wish
    of any rank (cancel over time budget over go on) is everyone's decision.
    """

    GO_ON, TIME_BUDGET, CANCEL = 0, 1, 2

    def __init__(self, cancel: threading.Event, deadline: float | None):
        self.cancel = cancel
        self.deadline = deadline
        self.reason: str | None = None

    def _agreed(self, *, budget: bool) -> int:
        if self.cancel.is_set():
            wish = self.CANCEL
        elif budget and self.deadline is not None and time.monotonic() >= self.deadline:
            wish = self.TIME_BUDGET
        else:
            wish = self.GO_ON
        return agree_max(wish)

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs
    ):
        decision = self._agreed(budget=True)
        if decision == self.CANCEL:
            self.reason = "cancelled"
            control.should_training_stop = True
        elif decision == self.TIME_BUDGET:
            self.reason = "time budget"
            control.should_training_stop = True
            control.should_evaluate = True

    def on_prediction_step(self, args, state, control, **kwargs):
        if self._agreed(budget=False) == self.CANCEL:
            self.reason = "cancelled"
            raise JobCancelledError()


class NanGuard(TrainerCallback):
    """Stops training when the logged loss is NaN or infinite (``diverged`` becomes True).

    Needs ``logging_nan_inf_filter=False``: the Trainer otherwise hides non-finite losses
    behind the running average, and training would go on with broken weights.
    """

    def __init__(self) -> None:
        self.diverged = False

    def on_log(self, args, state, control, logs=None, **kwargs):
        loss = (logs or {}).get("loss")
        if isinstance(loss, (int, float)) and not math.isfinite(loss):
            self.diverged = True
            control.should_training_stop = True
            control.should_evaluate = False
            control.should_save = False


class CheckpointMirror(TrainerCallback):
    """After each Trainer checkpoint, swap it into ``target`` (the run's checkpoint folder).

    The Trainer writes ``checkpoint-<step>`` (weights, optimizer, scheduler, RNG, trainer
    state) in its own output folder; this moves it, with the best weights the keeper holds,
    into the run folder in one atomic step, so a killed process leaves the previous complete
    checkpoint or the new one, never half of one. Only the latest is kept.
    """

    def __init__(self, target: str | os.PathLike, keeper: BestModelKeeper):
        self.target = Path(target)
        self.keeper = keeper

    def on_save(self, args, state, control, **kwargs):
        source = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
        if not state.is_world_process_zero or not source.is_dir():  # one writer per run
            return

        def fill(staging: Path) -> None:
            for item in source.iterdir():
                os.replace(item, staging / item.name)
            self.keeper.save(staging)

        atomic.replace_folder(self.target, fill)


class BestModelKeeper(TrainerCallback):
    """Keeps the trainable weights of the best validation macro-F1 in memory; early stopping.

    In memory rather than as Trainer checkpoints: a checkpoint of the full model per
    evaluation would write hundreds of MB to disk for nothing.
    """

    def __init__(self, model: torch.nn.Module, patience: int):
        self.model = model
        self.patience = patience
        self.best_metric: float | None = None
        self.best_step = 0
        self.best_epoch = 0.0
        self._best_state: dict[str, torch.Tensor] | None = None
        self._bad_evals = 0
        self.stopped_early = False
        # The floor: the weights training started from (the quick model) and their validation
        # score. restore_best() goes back to them when fine-tuning never beat them.
        self.floor_metric: float | None = None
        self._floor_state: dict[str, torch.Tensor] | None = None
        self.kept_floor = False

    def set_floor(self, metric: float) -> None:
        """Remember the current trainable weights as the model to keep unless beaten.

        Why: with few tickets per label, fine-tuning can end below the quick model it started
        from; the run then keeps the quick model instead of shipping the worse one. Patience
        still counts fine-tuning's own evaluations only, so early checks during warm-up do not
        stop a run that will overtake the quick model later.
        """
        self.floor_metric = metric
        self._floor_state = self._trainable_state()

    def _trainable_state(self) -> dict[str, torch.Tensor]:
        return {n: p.detach().clone() for n, p in self.model.named_parameters() if p.requires_grad}

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        value = (metrics or {}).get(METRIC)
        if value is None:
            return
        if self.best_metric is None or value > self.best_metric:
            self.best_metric, self.best_step, self.best_epoch = (
                value,
                state.global_step,
                state.epoch,
            )
            self._best_state = self._trainable_state()
            self._bad_evals = 0
            return
        self._bad_evals += 1
        if self.patience and self._bad_evals >= self.patience:
            self.stopped_early = True
            control.should_training_stop = True

    def save(self, folder: str | os.PathLike) -> None:
        """Write the best weights and scores so a resumed run keeps the same best model."""
        folder = Path(folder)
        if self._best_state is not None:
            torch.save(self._best_state, folder / BEST_WEIGHTS_FILE)
        info = {
            "best_metric": self.best_metric,
            "best_step": self.best_step,
            "best_epoch": self.best_epoch,
            "bad_evals": self._bad_evals,
        }
        (folder / BEST_STATE_FILE).write_text(json.dumps(info), encoding="utf-8")

    def load(self, folder: str | os.PathLike) -> None:
        """Take back what ``save`` wrote (missing files: start from scratch)."""
        folder = Path(folder)
        try:
            info = json.loads((folder / BEST_STATE_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        self.best_metric = info.get("best_metric")
        self.best_step = int(info.get("best_step") or 0)
        self.best_epoch = float(info.get("best_epoch") or 0.0)
        self._bad_evals = int(info.get("bad_evals") or 0)
        weights = folder / BEST_WEIGHTS_FILE
        if weights.is_file():
            self._best_state = torch.load(weights, map_location="cpu", weights_only=True)

    @property
    def has_best(self) -> bool:
        return self._best_state is not None

    def restore_best(self) -> bool:
        """Put the best weights back: the best check, or the floor when nothing beat it."""
        floor_wins = self._floor_state is not None and (
            self.best_metric is None or self.floor_metric > self.best_metric
        )
        self.kept_floor = floor_wins
        state = self._floor_state if floor_wins else self._best_state
        if state is None:
            return False
        params = dict(self.model.named_parameters())
        with torch.no_grad():
            for name, value in state.items():
                params[name].copy_(value.to(params[name].device))
        return True
