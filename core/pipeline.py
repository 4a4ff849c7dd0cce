"""One training run end to end: prepare → split → train, the baseline alongside → evaluate → save.

``execute`` is the function the job manager runs in its worker thread, and the CLI through it.
"""

from __future__ import annotations

import os
import platform
import shutil
import threading
import time
from collections.abc import Iterable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import transformers

from core import atomic
from core.baseline import run_baseline
from core.config import TrainConfig
from core.distributed import main_process_only, participants
from core.errors import JobCancelledError, RunNotFoundError
from core.estimate import record_finished_run
from core.evaluation import Evaluation, compute_metrics, evaluate
from core.modeling import load_tokenizer, resolve_model_source, save_classifier
from core.onnx_engine import export_onnx, use_onnx
from core.preparation import prepare_split
from core.progress import ProgressCallback, ProgressEvent
from core.report import DataReport, build_report
from core.requests import ResumeRequest, TrainingRequest
from core.reuse import WorkCache
from core.runs import CHECKPOINT_DIR, USABLE_MODEL_FIELD, Run
from core.split import DataSplit
from core.threads import in_background
from core.training import CancelledWithBestModel, TrainingOutcome, train

SPLIT_FILE = "split.csv"
FITTED_PARTS = ("train", "validation")


def execute(
    run: Run,
    request: TrainingRequest | ResumeRequest,
    progress: ProgressCallback,
    cancel: threading.Event,
) -> dict[str, Any]:
    started = time.monotonic()
    resume = isinstance(request, ResumeRequest)
    run.set_status("running", **{USABLE_MODEL_FIELD: False, "best_model": None})
    if resume:
        config, split = _saved_inputs(run)
        progress(ProgressEvent("preparing", message="Resuming from the last saved checkpoint."))
    else:
        config = request.config
        _save_inputs(run, request)
        split = _prepare_split(run, request, progress)

    config = config.for_training_set(len(split.train))  # the automatic batch size, filled in
    reuse = WorkCache.beside(run.path.parent)
    message = "Training the quick word-count baseline in the background."
    progress(ProgressEvent("baseline", message=message))
    baseline_job = BaselineAlongside(split, seed=config.seed, cancel=cancel, reuse=reuse)

    checkpoint = run.path / CHECKPOINT_DIR
    try:
        outcome = train(
            config,
            split,
            progress=baseline_job.relay(progress),
            cancel=cancel,
            checkpoint_dir=checkpoint,
            resume=resume,
            unlabelled_texts=getattr(request, "unlabelled_texts", ()),
            reuse=reuse,
        )
    except CancelledWithBestModel as stopped:
        _keep_best_model(run, stopped, progress)
        raise
    baseline = baseline_job.result(progress)
    processes = participants()  # [distributed] every rank checks in; 1 without torchrun
    progress(ProgressEvent("saving", message="Saving the model and the test results."))
    evaluation = evaluate(split.test, outcome.test_probabilities, outcome.meta.labels)
    evaluation.save(run)
    main_process_only(_save_model, run, outcome)  # [distributed] only rank 0 saves the model
    if use_onnx(outcome.placement):  # ONNX Runtime will score here: export once, now
        main_process_only(export_onnx, run.model_dir)  # on failure a note, and torch scores
    metrics = _metrics(split, outcome, evaluation.metrics, baseline.metrics)
    metrics.update(outcome.extra_metrics)  # continual: both test sets; distillation
    metrics["training"]["processes"] = processes  # [distributed]
    if config.method != "quick":
        metrics["training"]["batch_size"] = config.batch_size
        metrics["training"]["epochs"] = config.epochs
        metrics["training"]["learning_rate"] = config.effective_learning_rate
    run.write_json("metrics.json", metrics)
    shutil.rmtree(checkpoint, ignore_errors=True)  # finished: nothing left to resume
    total = time.monotonic() - started
    main_process_only(record_finished_run, run, config, metrics, total)  # next estimates
    progress(
        ProgressEvent(
            "done",
            message=f"Finished in {total / 60:.1f} min: test macro-F1 "
            f"{evaluation.metrics['macro_f1']:.3f} (baseline {baseline.metrics['macro_f1']:.3f}).",
        )
    )
    return _result(run, metrics, total)


class BaselineAlongside:
    """The keyword baseline, fitted in its own thread while the model loads and reads tickets.

    The fit (TF-IDF, then a SAGA solver that releases the GIL) runs on one core. Before, a run
    waited 5-7 s for it (CLINC150, 15,100 tickets) before loading the model; alongside, the
    model's loading and reading take the time (bench/RESULTS.md, session 7). The baseline's
    result and any failure of it reach the analyst through ``relay``, the run's own progress
    callback: announced at the next progress event after it is known, under that event's stage
    so the progress bar does not jump back; an error (no words in the tickets) stops the run
    there, instead of after the fine-tuning.
    """

    def __init__(
        self,
        split: DataSplit,
        *,
        seed: int,
        cancel: threading.Event,
        reuse: WorkCache | None,
    ):
        self._announced = False
        self._result: Future = in_background(
            lambda: run_baseline(split.train, split.test, seed=seed, cancel=cancel, reuse=reuse),
            name="tickettune-baseline",
        )

    def relay(self, progress: ProgressCallback) -> ProgressCallback:
        """``progress``, first announcing the baseline (or raising its error) once it is done."""

        def forward(event: ProgressEvent) -> None:
            if self._result.done():
                self._announce(progress, event.stage)
            progress(event)

        return forward

    def result(self, progress: ProgressCallback) -> Evaluation:
        """The baseline's test evaluation; waits for the fit if it is still running."""
        evaluation = self._result.result()
        self._announce(progress, "baseline")
        return evaluation

    def _announce(self, progress: ProgressCallback, stage: str) -> None:
        if self._announced:
            return
        error = self._result.exception()
        if error is not None and not isinstance(error, JobCancelledError):
            raise error  # the run's own thread notices a cancel by itself
        if error is None:
            self._announced = True
            macro_f1 = self._result.result().metrics["macro_f1"]
            progress(
                ProgressEvent(stage, message=f"Baseline (TF-IDF) test macro-F1: {macro_f1:.3f}.")
            )


def _saved_inputs(run: Run) -> tuple[TrainConfig, DataSplit]:
    """The settings and the exact split a run was started with (for resuming it)."""
    settings = run.train_settings()
    frame = run.read_frame(SPLIT_FILE, dtype={"text": str, "label": str})
    if not settings or frame is None or not run.has_checkpoint():
        raise RunNotFoundError(
            f"Run {run.id} cannot be resumed: its settings, split or checkpoint are missing."
        )
    parts = {
        name: frame[frame["split"] == name].drop(columns="split").reset_index(drop=True)
        for name in ("train", "validation", "test")
    }
    split = DataSplit(strategy="resumed", **parts)
    return TrainConfig.from_dict(settings), split


def _keep_best_model(run: Run, stopped: CancelledWithBestModel, progress) -> None:
    """Save the best validation check of a cancelled run as a usable, clearly marked model."""
    trainer = stopped.trainer
    progress(ProgressEvent("saving", message="Cancelled: saving the best model so far."))
    trainer.finish_method()

    def fill(folder):
        save_classifier(trainer.model, trainer.tokenizer, trainer.meta, folder)

    atomic.replace_folder(run.model_dir, fill)
    keeper = trainer.keeper
    best = {"validation_macro_f1": keeper.best_metric, "epoch": round(keeper.best_epoch, 2)}
    run.set_status("running", **{USABLE_MODEL_FIELD: True, "best_model": best})


def _save_inputs(run: Run, request: TrainingRequest) -> None:
    run.write_json("config.json", request.config.to_dict())
    run.write_json("scheme.json", request.scheme.to_dict())
    run.write_json(
        "source.json",
        {
            "data": request.source_name,
            "test_data": request.test_source_name,
            "split_column": request.split_column,
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
        },
    )


def _prepare_split(run: Run, request: TrainingRequest, progress: ProgressCallback) -> DataSplit:
    progress(ProgressEvent("preparing", message="Checking the tickets and splitting them."))
    config = request.config
    prepared, split = prepare_split(
        request.table,
        request.scheme,
        config=config,
        split_column=request.split_column,
        test_table=request.test_table,
    )
    tokenizer = load_tokenizer(resolve_model_source(config.model))
    report = build_report(prepared, split=split, tokenizer=tokenizer)
    run.write_json("report.json", report.to_dict())
    _announce_report(report, progress)
    if config.parent_run:  # continual learning: replay earlier tickets with the new ones
        from core.continual import with_replay

        split = with_replay(split, config)
    parts = [frame.assign(split=name) for name, frame in _split_frames(split)]
    run.write_frame(SPLIT_FILE, pd.concat(parts, ignore_index=True))
    sizes = split.sizes()
    progress(
        ProgressEvent(
            "preparing",
            message=f"{sizes['train']} tickets to learn from, {sizes['validation']} to check "
            f"progress, {sizes['test']} held back for the final test.",
        )
    )
    return split


def _announce_report(report: DataReport, progress: ProgressCallback) -> None:
    """The data report's summary in the run's log, so the CLI shows what the app shows."""
    for line in report.summary_lines():
        progress(ProgressEvent("preparing", message=line))


def seen_in_training(run_dir: str | os.PathLike, texts: Iterable[str]) -> int | None:
    """How many of ``texts`` the run learned from or checked progress on (train/validation).

    Scores on those tickets look better than on new ones. ``run_dir`` is a run folder or its
    model folder; None when the run has no saved split.
    """
    folder = Path(run_dir)
    for candidate in (folder, folder.parent) if folder.name == "model" else (folder,):
        split = Run(candidate).read_frame(SPLIT_FILE)
        if split is not None:
            fitted = set(split.loc[split["split"].isin(FITTED_PARTS), "text"])
            return sum(text in fitted for text in texts)
    return None


def _split_frames(split: DataSplit):
    return (("train", split.train), ("validation", split.validation), ("test", split.test))


def _save_model(run: Run, outcome: TrainingOutcome) -> None:
    """Save into a staging folder and swap it in, so a crash never leaves half a model."""

    def fill(folder):
        save_classifier(outcome.model, outcome.tokenizer, outcome.meta, folder)

    atomic.replace_folder(run.model_dir, fill)


def _metrics(
    split: DataSplit,
    outcome: TrainingOutcome,
    model_metrics: dict[str, float],
    baseline_metrics: dict[str, float],
) -> dict[str, Any]:
    labels = outcome.meta.labels
    quick_pred = [labels[i] for i in outcome.quick_test_probabilities.argmax(axis=1)]
    quick = compute_metrics(split.test["label"].tolist(), quick_pred, labels)
    return {
        "model": model_metrics,
        "baseline": baseline_metrics,
        "quick": quick,
        "training": {
            "train_seconds": round(outcome.train_seconds, 1),
            "stop_reason": outcome.stop_reason,
            "steps": outcome.steps,
            "best_validation_macro_f1": outcome.best_validation_macro_f1,
            "best_epoch": outcome.best_epoch,
            "quick_validation_macro_f1": outcome.quick_validation_macro_f1,
            "kept_quick": outcome.kept_quick,
            "max_length": outcome.meta.max_length,
            "device": outcome.placement.describe(),
            "labels": len(labels),
            "split_sizes": split.sizes(),
        },
    }


def _result(run: Run, metrics: dict[str, Any], total_seconds: float) -> dict[str, Any]:
    model, baseline, quick = metrics["model"], metrics["baseline"], metrics["quick"]
    return {
        "run_id": run.id,
        "run_dir": str(run.path),
        "accuracy": model["accuracy"],
        "macro_f1": model["macro_f1"],
        "weighted_f1": model["weighted_f1"],
        "n_test": model["n"],
        "baseline_accuracy": baseline["accuracy"],
        "baseline_macro_f1": baseline["macro_f1"],
        "quick_accuracy": quick["accuracy"],
        "quick_macro_f1": quick["macro_f1"],
        "train_seconds": metrics["training"]["train_seconds"],
        "total_seconds": round(total_seconds, 1),
        "stop_reason": metrics["training"]["stop_reason"],
        "kept_quick": bool(metrics["training"].get("kept_quick")),
        "best_validation_macro_f1": metrics["training"].get("best_validation_macro_f1"),
        "quick_validation_macro_f1": metrics["training"].get("quick_validation_macro_f1"),
    }
