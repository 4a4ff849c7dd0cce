"""Train a ticket classifier on a data split with the Hugging Face Trainer.

Every method starts the same way: read each ticket once with the frozen encoder and fit a
logistic regression on those embeddings (the ``quick`` model). The other methods then
initialise the classification head from it and fine-tune (LP-FT), which reaches a better model
in fewer epochs than a randomly initialised head.
"""

from __future__ import annotations

import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import LogisticRegression
from transformers import (
    DataCollatorWithPadding,
    EvalPrediction,
    PrinterCallback,
    Trainer,
    TrainingArguments,
)
from transformers import set_seed as hf_set_seed

from core.callbacks import BestModelKeeper, ProgressReporter, StopControl
from core.config import MAX_MODEL_LENGTH, TrainConfig
from core.device import Placement, resolve_placement
from core.errors import JobCancelledError
from core.evaluation import compute_metrics
from core.modeling import (
    ModelMeta,
    TicketClassifier,
    classify,
    load_encoder,
    run_in_batches,
)
from core.progress import ProgressCallback, ProgressEvent, ignore_progress
from core.split import DataSplit

MIN_AUTO_LENGTH = 32
LINEAR_PROBE_C = 10.0


@dataclass
class TrainingOutcome:
    """A trained model and what the run needs to evaluate and save it."""

    model: TicketClassifier
    tokenizer: Any
    meta: ModelMeta
    placement: Placement
    test_probabilities: np.ndarray
    quick_test_probabilities: np.ndarray
    stop_reason: str
    train_seconds: float
    steps: int = 0
    best_validation_macro_f1: float | None = None
    best_epoch: float | None = None
    details: dict[str, Any] = field(default_factory=dict)


def choose_max_length(tokenizer: Any, texts: list[str]) -> int:
    """99th percentile of token lengths: long enough for nearly every ticket, no longer."""
    sample = texts if len(texts) <= 5000 else list(pd.Series(texts).sample(5000, random_state=0))
    lengths = [len(ids) for ids in tokenizer(sample, truncation=False)["input_ids"]]
    return int(min(MAX_MODEL_LENGTH, max(MIN_AUTO_LENGTH, np.percentile(lengths, 99))))


def train(
    config: TrainConfig,
    split: DataSplit,
    *,
    progress: ProgressCallback = ignore_progress,
    cancel: threading.Event | None = None,
) -> TrainingOutcome:
    cancel = cancel or threading.Event()
    started = time.monotonic()
    deadline = started + config.time_budget_minutes * 60 if config.time_budget_minutes else None
    placement = resolve_placement(config.device, config.precision)
    hf_set_seed(config.seed)

    progress(ProgressEvent("loading", message=f"Loading the model on the {placement.describe()}."))
    encoder, tokenizer, _ = load_encoder(config.model)
    labels = sorted(split.train["label"].unique().tolist())
    label_ids = {label: i for i, label in enumerate(labels)}
    max_length = config.max_length or choose_max_length(tokenizer, split.train["text"].tolist())
    model = TicketClassifier(encoder, len(labels)).to(placement.device)
    weights = _class_weights(split.train["label"], labels) if config.class_weighting else None
    if weights is not None:
        model.class_weights.copy_(torch.as_tensor(weights, dtype=torch.float32))

    quick_probs = _fit_linear_head(
        model, tokenizer, split, labels, max_length, placement, config, progress, cancel
    )
    meta = ModelMeta(labels, max_length, config.model, config.method)
    if config.method == "quick":
        return TrainingOutcome(
            model, tokenizer, meta, placement, quick_probs, quick_probs,
            stop_reason="completed", train_seconds=time.monotonic() - started,
        )  # fmt: skip

    model = _prepare_method(model, config)
    trainer, keeper, stopper = _build_trainer(
        model,
        tokenizer,
        split,
        label_ids,
        max_length,
        placement,
        config,
        progress,
        cancel,
        deadline,
    )
    trainer.train()
    if cancel.is_set():
        raise JobCancelledError()
    keeper.restore_best()
    model = _finish_method(model, config)
    progress(ProgressEvent("evaluating", message="Scoring the test tickets."))
    test_probs = classify(
        model, tokenizer, split.test["text"].tolist(), max_length=max_length, placement=placement
    )
    reason = stopper.reason or ("early stopping" if keeper.stopped_early else "completed")
    return TrainingOutcome(
        model, tokenizer, meta, placement, test_probs, quick_probs,
        stop_reason=reason, train_seconds=time.monotonic() - started,
        steps=trainer.state.global_step, best_validation_macro_f1=keeper.best_metric,
        best_epoch=keeper.best_epoch,
    )  # fmt: skip


def _class_weights(train_labels: pd.Series, labels: list[str]) -> np.ndarray:
    counts = train_labels.value_counts().reindex(labels).fillna(0).to_numpy(dtype=float)
    weights = len(train_labels) / (len(labels) * np.maximum(counts, 1.0))
    return weights / weights.mean()


def _fit_linear_head(
    model: TicketClassifier,
    tokenizer: Any,
    split: DataSplit,
    labels: list[str],
    max_length: int,
    placement: Placement,
    config: TrainConfig,
    progress: ProgressCallback,
    cancel: threading.Event,
) -> np.ndarray:
    """Embed every ticket once, fit logistic regression, copy it into the head.

    Returns the quick model's test probabilities.
    """
    frames = {"train": split.train, "validation": split.validation, "test": split.test}
    total = sum(len(f) for f in frames.values())
    done = 0
    embeddings: dict[str, np.ndarray] = {}
    model.eval()
    for name, frame in frames.items():

        def report(n: int, _of: int, offset: int = done) -> None:
            progress(
                ProgressEvent(
                    "embedding",
                    step=offset + n,
                    total_steps=total,
                    message=None,
                )
            )

        progress(ProgressEvent("embedding", message=f"Reading {len(frame)} {name} tickets."))
        embeddings[name] = run_in_batches(
            lambda batch: model.embed(**batch),
            tokenizer,
            frame["text"].tolist(),
            max_length=max_length,
            placement=placement,
            on_batch=report,
            cancel=cancel,
        )
        done += len(frame)
    progress(ProgressEvent("fitting", message="Fitting the quick classifier on the embeddings."))
    probe = LogisticRegression(
        C=LINEAR_PROBE_C,
        max_iter=2000,
        class_weight="balanced" if config.class_weighting else None,
        random_state=config.seed,
    ).fit(embeddings["train"], split.train["label"].to_numpy())
    weight, bias = _head_from_probe(probe, labels)
    model.set_head(torch.as_tensor(weight), torch.as_tensor(bias))
    if cancel.is_set():
        raise JobCancelledError()
    logits = embeddings["test"] @ weight.T + bias if len(split.test) else np.zeros((0, len(labels)))
    return _softmax(logits)


def _head_from_probe(probe: LogisticRegression, labels: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Logistic-regression coefficients as softmax-head weights in ``labels`` order."""
    coef, intercept = probe.coef_.astype(np.float32), probe.intercept_.astype(np.float32)
    if coef.shape[0] == 1:  # binary: sklearn keeps one row; softmax over (-z/2, z/2) matches it
        coef = np.vstack([-coef / 2, coef / 2])
        intercept = np.array([-intercept[0] / 2, intercept[0] / 2], dtype=np.float32)
    order = [list(probe.classes_).index(label) for label in labels]
    return coef[order], intercept[order]


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)


def _prepare_method(model: TicketClassifier, config: TrainConfig) -> TicketClassifier:
    """Choose which weights train: all (full), LoRA adapters, biases (BitFit) or the head."""
    if config.method == "lora":
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(
            r=config.lora_rank, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout
        )
        try:
            model.encoder = get_peft_model(model.encoder, lora)
        except ValueError:  # an architecture peft has no default target modules for
            lora.target_modules = "all-linear"
            model.encoder = get_peft_model(model.encoder, lora)
    elif config.method in ("bitfit", "head"):
        for name, param in model.encoder.named_parameters():
            param.requires_grad = config.method == "bitfit" and name.endswith("bias")
    return model


def _finish_method(model: TicketClassifier, config: TrainConfig) -> TicketClassifier:
    """Merge LoRA weights into the encoder so the saved model is a plain transformers model."""
    if config.method == "lora":
        model.encoder = model.encoder.merge_and_unload()
    for param in model.parameters():
        param.requires_grad = True
    return model


def _encode(tokenizer: Any, frame: pd.DataFrame, label_ids: dict[str, int], max_length: int):
    encoded = tokenizer(frame["text"].tolist(), truncation=True, max_length=max_length)
    ids = [label_ids[label] for label in frame["label"]]
    keys = list(encoded.keys())
    return [{**{k: encoded[k][i] for k in keys}, "labels": ids[i]} for i in range(len(frame))]


def _build_trainer(
    model: TicketClassifier,
    tokenizer: Any,
    split: DataSplit,
    label_ids: dict[str, int],
    max_length: int,
    placement: Placement,
    config: TrainConfig,
    progress: ProgressCallback,
    cancel: threading.Event,
    deadline: float | None,
) -> tuple[Trainer, BestModelKeeper, StopControl]:
    train_set = _encode(tokenizer, split.train, label_ids, max_length)
    eval_set = _encode(tokenizer, split.validation, label_ids, max_length) or None
    steps_per_epoch = max(1, -(-len(train_set) // config.batch_size))
    eval_steps = max(1, steps_per_epoch // config.evaluations_per_epoch)
    labels = list(label_ids)
    args = TrainingArguments(
        output_dir=tempfile.mkdtemp(prefix="tickettune-trainer-"),
        num_train_epochs=config.epochs,
        learning_rate=config.effective_learning_rate,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=128,
        weight_decay=config.weight_decay,
        warmup_steps=config.warmup_ratio,
        eval_strategy="steps" if eval_set else "no",
        eval_steps=eval_steps,
        save_strategy="no",
        logging_steps=max(1, steps_per_epoch // 20),
        train_sampling_strategy="group_by_length",
        bf16=placement.precision == "bf16",
        fp16=placement.precision == "fp16",
        use_cpu=placement.device.type == "cpu",
        dataloader_pin_memory=placement.device.type == "cuda",
        remove_unused_columns=False,
        label_names=["labels"],
        report_to="none",
        disable_tqdm=True,
        seed=config.seed,
    )
    keeper = BestModelKeeper(model, config.early_stopping_patience)
    stopper = StopControl(cancel, deadline)

    def metrics(prediction: EvalPrediction) -> dict[str, float]:
        logits = prediction.predictions
        logits = logits[0] if isinstance(logits, tuple) else logits
        predicted = np.asarray(logits).argmax(axis=-1)
        truth = np.asarray(prediction.label_ids)
        return compute_metrics([labels[i] for i in truth], [labels[i] for i in predicted], labels)

    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=train_set,
        eval_dataset=eval_set,
        data_collator=DataCollatorWithPadding(tokenizer),
        processing_class=tokenizer,
        compute_metrics=metrics,
        callbacks=[ProgressReporter(progress), stopper, keeper],
    )
    trainer.remove_callback(PrinterCallback)
    return trainer, keeper, stopper
