"""Trainer callbacks: the seam between the Hugging Face Trainer and the outside world.

They only observe and set ``control`` flags; they never stop a thread or touch the UI.
"""

from __future__ import annotations

import threading
import time

import torch
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from core.progress import ProgressCallback, ProgressEvent

METRIC = "eval_macro_f1"


class ProgressReporter(TrainerCallback):
    """Turns Trainer steps, logs and evaluations into ``ProgressEvent``s with an ETA."""

    def __init__(self, progress: ProgressCallback, min_interval_s: float = 0.5):
        self.progress = progress
        self.min_interval_s = min_interval_s
        self._started = 0.0
        self._last_sent = 0.0

    def on_train_begin(self, args, state, control, **kwargs):
        self._started = time.monotonic()
        self._emit(state, message=f"Training started: {state.max_steps} steps.")

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
        if state.global_step <= 0 or not self._started:
            return None
        per_step = (time.monotonic() - self._started) / state.global_step
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
    can still become the best checkpoint.
    """

    def __init__(self, cancel: threading.Event, deadline: float | None):
        self.cancel = cancel
        self.deadline = deadline
        self.reason: str | None = None

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs
    ):
        if self.cancel.is_set():
            self.reason = "cancelled"
            control.should_training_stop = True
        elif self.deadline is not None and time.monotonic() >= self.deadline:
            self.reason = "time budget"
            control.should_training_stop = True
            control.should_evaluate = True


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
            self._best_state = {
                n: p.detach().clone() for n, p in self.model.named_parameters() if p.requires_grad
            }
            self._bad_evals = 0
            return
        self._bad_evals += 1
        if self.patience and self._bad_evals >= self.patience:
            self.stopped_early = True
            control.should_training_stop = True

    def restore_best(self) -> bool:
        if self._best_state is None:
            return False
        params = dict(self.model.named_parameters())
        with torch.no_grad():
            for name, value in self._best_state.items():
                params[name].copy_(value)
        return True
