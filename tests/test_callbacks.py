"""Trainer callbacks set control flags only: cancel, time budget, best checkpoint, progress."""

import threading
import time

import torch
from transformers import TrainerControl, TrainerState, TrainingArguments

from core.callbacks import BestModelKeeper, ProgressReporter, StopControl

ARGS = TrainingArguments(output_dir="unused", report_to="none")


def state(step: int = 5, max_steps: int = 10, epoch: float = 0.5) -> TrainerState:
    return TrainerState(global_step=step, max_steps=max_steps, epoch=epoch)


def test_cancel_stops_training_without_extra_evaluation():
    cancel = threading.Event()
    stopper, control = StopControl(cancel, deadline=None), TrainerControl()
    stopper.on_step_end(ARGS, state(), control)
    assert not control.should_training_stop
    cancel.set()
    stopper.on_step_end(ARGS, state(), control)
    assert control.should_training_stop and not control.should_evaluate
    assert stopper.reason == "cancelled"


def test_time_budget_stops_and_asks_for_a_last_evaluation():
    stopper, control = (
        StopControl(threading.Event(), deadline=time.monotonic() - 1),
        TrainerControl(),
    )
    stopper.on_step_end(ARGS, state(), control)
    assert control.should_training_stop and control.should_evaluate
    assert stopper.reason == "time budget"


def test_best_weights_are_restored_and_patience_stops():
    model = torch.nn.Linear(2, 2)
    keeper, control = BestModelKeeper(model, patience=2), TrainerControl()
    keeper.on_evaluate(ARGS, state(1), control, metrics={"eval_macro_f1": 0.8})
    best = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    keeper.on_evaluate(ARGS, state(2), control, metrics={"eval_macro_f1": 0.7})
    assert not control.should_training_stop
    keeper.on_evaluate(ARGS, state(3), control, metrics={"eval_macro_f1": 0.8})
    assert control.should_training_stop and keeper.stopped_early, "a tie is no improvement"
    assert keeper.restore_best()
    assert torch.equal(model.weight, best)
    assert (keeper.best_metric, keeper.best_step) == (0.8, 1)


def test_progress_reports_loss_eval_and_eta():
    events = []
    reporter = ProgressReporter(events.append, min_interval_s=0.0)
    control = TrainerControl()
    reporter.on_train_begin(ARGS, state(0), control)
    reporter.on_log(ARGS, state(4), control, logs={"loss": 0.5})
    reporter.on_evaluate(
        ARGS, state(5), control, metrics={"eval_macro_f1": 0.9, "eval_runtime": 1.0}
    )
    reporter.on_step_end(ARGS, state(5), control)
    assert events[0].message.startswith("Training started: 10 steps")
    assert events[1].loss == 0.5
    assert events[2].eval_metrics == {"macro_f1": 0.9}
    assert "macro-F1 0.900" in events[2].message
    assert events[-1].eta_seconds is not None and events[-1].fraction == 0.5


# ------------------------------------------------ issue 12: NaN, cancel in checks, checkpoints


def test_nan_guard_stops_on_a_non_finite_loss_only():
    from core.callbacks import NanGuard

    guard, control = NanGuard(), TrainerControl()
    guard.on_log(ARGS, state(), control, logs={"loss": 0.7})
    assert not guard.diverged and not control.should_training_stop
    for bad in (float("nan"), float("inf")):
        guard, control = NanGuard(), TrainerControl()
        control.should_evaluate = control.should_save = True
        guard.on_log(ARGS, state(), control, logs={"loss": bad})
        assert guard.diverged and control.should_training_stop
        assert not control.should_evaluate and not control.should_save


def test_cancel_aborts_a_validation_check_at_the_next_batch():
    import pytest

    from core.errors import JobCancelledError

    cancel = threading.Event()
    stopper = StopControl(cancel, deadline=None)
    stopper.on_prediction_step(ARGS, state(), TrainerControl())
    cancel.set()
    with pytest.raises(JobCancelledError):
        stopper.on_prediction_step(ARGS, state(), TrainerControl())


def _fake_trainer_checkpoint(output_dir, step: int, marker: str):
    folder = output_dir / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    (folder / "trainer_state.json").write_text(f'{{"global_step": {step}}}')
    (folder / "optimizer.pt").write_text(marker)


def test_checkpoint_mirror_swaps_whole_checkpoints_and_survives_a_full_disk(tmp_path):
    import errno

    import pytest

    from core.callbacks import BEST_STATE_FILE, CheckpointMirror

    model = torch.nn.Linear(2, 2)
    keeper = BestModelKeeper(model, patience=0)
    keeper.on_evaluate(ARGS, state(step=3), TrainerControl(), metrics={"eval_macro_f1": 0.5})
    target, output = tmp_path / "run" / "checkpoint", tmp_path / "trainer"
    target.parent.mkdir()
    args = TrainingArguments(output_dir=str(output), report_to="none")
    mirror = CheckpointMirror(target, keeper)
    _fake_trainer_checkpoint(output, 3, "first")
    mirror.on_save(args, state(step=3), TrainerControl())
    assert (target / "optimizer.pt").read_text() == "first"
    assert (target / BEST_STATE_FILE).is_file()

    def disk_full(folder):
        (folder / BEST_STATE_FILE).write_text("{half")
        raise OSError(errno.ENOSPC, "No space left on device")

    keeper.save = disk_full
    _fake_trainer_checkpoint(output, 6, "second")
    with pytest.raises(OSError):
        mirror.on_save(args, state(step=6), TrainerControl())
    assert (target / "optimizer.pt").read_text() == "first"  # the old one, whole
    assert '"global_step": 3' in (target / "trainer_state.json").read_text()
    assert sorted(p.name for p in target.parent.iterdir()) == ["checkpoint"]

    restored = BestModelKeeper(torch.nn.Linear(2, 2), patience=0)
    restored.load(target)
    assert restored.best_metric == 0.5 and restored.best_step == 3
    assert restored.restore_best()
    assert torch.equal(restored.model.weight, model.weight)


def test_the_starting_weights_are_kept_when_no_check_beats_them():
    """The floor (the quick model fine-tuning started from) wins over worse checks only."""
    model = torch.nn.Linear(2, 2)
    start = model.weight.detach().clone()
    keeper, control = BestModelKeeper(model, patience=0), TrainerControl()
    keeper.set_floor(0.9)
    with torch.no_grad():
        model.weight.add_(1.0)
    keeper.on_evaluate(ARGS, state(1), control, metrics={"eval_macro_f1": 0.7})
    assert keeper.restore_best() and keeper.kept_floor
    assert torch.equal(model.weight, start)

    with torch.no_grad():
        model.weight.add_(2.0)
    better = model.weight.detach().clone()
    keeper.on_evaluate(ARGS, state(2), control, metrics={"eval_macro_f1": 0.95})
    assert keeper.restore_best() and not keeper.kept_floor
    assert torch.equal(model.weight, better)
