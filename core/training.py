"""Train a ticket classifier on a data split with the Hugging Face Trainer.

Every method starts the same way: read each ticket once with the frozen encoder and fit a
logistic regression on those embeddings (the ``quick`` model). The other methods then
initialise the classification head from it and fine-tune (LP-FT), which reaches a better model
in fewer epochs than a randomly initialised head.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import sklearn
import torch
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from core.baseline import fit_interruptibly
from core.config import MAX_MODEL_LENGTH, TrainConfig
from core.device import Placement, resolve_placement
from core.errors import JobCancelledError
from core.evaluation import compute_metrics
from core.modeling import (
    ModelMeta,
    TicketClassifier,
    classify,
    embed_tickets,
    for_reading,
    load_encoder,
)
from core.onnx_engine import encoder_engine, use_onnx
from core.progress import ProgressCallback, ProgressEvent, ignore_progress
from core.reuse import WorkCache, content_key, model_identity
from core.split import DataSplit
from core.threads import in_background

if TYPE_CHECKING:  # imported where fine-tuning starts: they cost a quick run ~5 s of imports
    from transformers import EvalPrediction, Trainer

    from core.callbacks import BestModelKeeper, NanGuard, StopControl

MIN_AUTO_LENGTH = 32
LINEAR_PROBE_C = 10.0
#: Bump when pooling or embedding code changes, so stored embeddings are not reused.
EMBEDDING_VERSION = 2  # 2: read with bf16 weights on CPUs with fast bf16
ONNX_CACHE = "onnx"  # the exported pretrained encoders, inside the reuse folder
TRAINER_DIR_PREFIX = "tickettune-trainer-"
UNCHECKPOINTED = ("prompt",)  # methods whose runs keep no resumable checkpoint (see build_trainer)


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
    #: Validation macro-F1 of the quick model fine-tuning started from (None: no validation).
    quick_validation_macro_f1: float | None = None
    #: True when fine-tuning never beat the quick model on validation and the run keeps it.
    kept_quick: bool = False
    #: Further results a method adds to metrics.json (continual: both test sets; distil:
    #: teacher against student).
    extra_metrics: dict[str, Any] = field(default_factory=dict)


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
    checkpoint_dir: str | os.PathLike | None = None,
    resume: bool = False,
    unlabelled_texts: Sequence[str] = (),
    reuse: WorkCache | None = None,
) -> TrainingOutcome:
    """Train on ``split`` as ``config`` says; the entry point for the pipeline and bench.

    ``unlabelled_texts`` are extra tickets without labels (used by distillation only);
    ``resume`` continues from the checkpoint saved in ``checkpoint_dir``; ``reuse`` is where
    embeddings and the quick head of earlier runs on the same tickets are kept.
    """
    trainer_class = trainer_class_for(config)
    kwargs = {"unlabelled_texts": list(unlabelled_texts)} if config.teacher_run else {}
    trainer = trainer_class(
        config, split, progress=progress, cancel=cancel, checkpoint_dir=checkpoint_dir, **kwargs
    )
    trainer.resume, trainer.reuse = resume, reuse
    return trainer.train()


def trainer_class_for(config: TrainConfig) -> type[TicketTrainer]:
    """The one place that says which TicketTrainer runs a config (methods are hooks inside it;
    continuing an earlier run and distilling one are subclasses)."""
    if config.parent_run:
        from core.continual_training import ContinualTrainer

        return ContinualTrainer
    if config.teacher_run:
        from core.distill import DistillTrainer

        return DistillTrainer
    return TicketTrainer


class CancelledWithBestModel(JobCancelledError):
    """Cancelled during fine-tuning after at least one validation check.

    ``trainer.model`` already holds the weights of the best check, so the run can keep them
    as a usable model instead of throwing away what was earned.
    """

    def __init__(self, trainer: TicketTrainer):
        super().__init__()
        self.trainer = trainer


class TicketTrainer:
    """One training run as small steps that share their state on the object.

    ``train`` runs: ``load`` → ``embed`` → ``fit_head`` → (for every method but ``quick``)
    ``prepare_method`` → ``build_trainer`` → ``fine_tune`` → ``finish_method`` →
    ``predict_test``. A new method (adapters, prompt tuning, distillation, ...) subclasses this
    and overrides the step it changes, reading what earlier steps left on ``self``, instead of
    growing the signature of a function that passes everything along.

    The Hugging Face Trainer gets a temporary output folder that is removed when fine-tuning
    ends, whether it succeeded, failed or was cancelled.
    """

    def __init__(
        self,
        config: TrainConfig,
        split: DataSplit,
        *,
        progress: ProgressCallback = ignore_progress,
        cancel: threading.Event | None = None,
        checkpoint_dir: str | os.PathLike | None = None,
    ):
        self.config = config.for_training_set(len(split.train))  # automatic batch size
        # Resume hook: with a checkpoint folder, every validation check also saves a
        # resumable Trainer checkpoint there; ``resume`` continues from the one saved.
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.resume = False
        # Where work done before for the same input is kept (core/reuse.py); None: recompute.
        self.reuse: WorkCache | None = None
        self.split = split
        self.progress = progress
        self.cancel = cancel or threading.Event()
        self.started = time.monotonic()
        self.deadline: float | None = None
        # Set by load():
        self.placement: Placement | None = None
        self.model: TicketClassifier | None = None
        self.tokenizer: Any = None
        self.model_source: str | None = None  # the pretrained weights' folder or hub id
        self.labels: list[str] = []
        self.max_length = 0
        # Set by embed() and fit_head():
        self.embeddings: dict[str, np.ndarray] = {}
        self.embedding_keys: dict[str, str | None] = {}
        self.engine_name = "torch"  # what read the tickets: "torch" or "onnx"
        self.quick_test_probabilities: np.ndarray | None = None
        self.quick_validation_macro_f1: float | None = None
        self.head_fit: Future | None = None  # the quick head's (weight, bias), see quick_head
        # Set by build_trainer():
        self.output_dir: str | None = None
        self.hf_trainer: Trainer | None = None
        self.keeper: BestModelKeeper | None = None
        self.stopper: StopControl | None = None
        self.nan_guard: NanGuard | None = None
        # Set by prepare_method() for adapter/prompt (see core/addons.py):
        self.addon: dict[str, Any] | None = None
        # Filled by subclasses, stored in metrics.json:
        self.extra_metrics: dict[str, Any] = {}

    @property
    def label_ids(self) -> dict[str, int]:
        return {label: i for i, label in enumerate(self.labels)}

    @property
    def meta(self) -> ModelMeta:
        return ModelMeta(
            self.labels, self.max_length, self.config.model, self.config.method, addon=self.addon
        )

    def train(self) -> TrainingOutcome:
        config = self.config
        self.started = time.monotonic()
        if config.time_budget_minutes:
            self.deadline = self.started + config.time_budget_minutes * 60
        self.load()
        self.embed()
        self.fit_head()
        if config.method == "quick":
            return self.outcome(self.quick_test_probabilities, "completed")
        self.prepare_method()
        scratch = self.checkpoint_dir.parent if self.checkpoint_dir else None  # same disk
        with tempfile.TemporaryDirectory(prefix=TRAINER_DIR_PREFIX, dir=scratch) as output_dir:
            self.build_trainer(output_dir)
            self.fine_tune()
        self.finish_method()
        test_probabilities = self.predict_test()
        reason = self.stopper.reason or (
            "early stopping" if self.keeper.stopped_early else "completed"
        )
        return self.outcome(test_probabilities, reason)

    def load(self) -> None:
        """Placement, seed, encoder and tokenizer, labels, max length, class weights."""
        config, split = self.config, self.split
        if self.cancel.is_set():  # pressed while the baseline was starting
            raise JobCancelledError()
        self.placement = resolve_placement(config.device, config.precision)
        seed_everything(config.seed)
        self.progress(
            ProgressEvent(
                "loading", message=f"Loading the model on the {self.placement.describe()}."
            )
        )
        encoder, self.tokenizer, self.model_source = load_encoder(config.model)
        self.labels = sorted(split.train["label"].unique().tolist())
        self.max_length = config.max_length or choose_max_length(
            self.tokenizer, split.train["text"].tolist()
        )
        self.model = TicketClassifier(encoder, len(self.labels)).to(self.placement.device)
        if config.method == "prompt":  # before the quick fit: the head fits prompted embeddings
            from core.addons import add_prompt

            self.addon = add_prompt(self.model, config.prompt_tokens)
        if config.class_weighting:
            weights = _class_weights(split.train["label"], self.labels)
            self.model.class_weights.copy_(torch.as_tensor(weights, dtype=torch.float32))

    def embed(self) -> None:
        """Read every ticket (train, validation, test) once with the frozen encoder.

        Embeddings an earlier run computed from the same weights, settings and texts are
        taken from ``self.reuse`` instead (see ``embedding_key``)."""
        frames = {
            "train": self.split.train,
            "validation": self.split.validation,
            "test": self.split.test,
        }
        total = sum(len(f) for f in frames.values())
        done = 0
        self.model.eval()
        self.embedding_keys = {}
        encode = self.embedding_engine()
        for name, frame in frames.items():

            def report(n: int, _of: int, offset: int = done) -> None:
                self.progress(ProgressEvent("embedding", step=offset + n, total_steps=total))

            texts = frame["text"].tolist()
            key = self.embedding_key(texts)
            stored = self.reuse.load(key) if key and self.reuse else None
            if stored is not None and len(stored.get("embeddings", ())) == len(texts):
                self.progress(
                    ProgressEvent(
                        "embedding",
                        message=f"Reusing what an earlier run read of these {len(frame)} "
                        f"{name} tickets.",
                    )
                )
                self.embeddings[name] = stored["embeddings"]
            else:
                self.progress(
                    ProgressEvent("embedding", message=f"Reading {len(frame)} {name} tickets.")
                )
                self.embeddings[name] = encode(texts, report)
                if key and self.reuse and len(texts):
                    self.reuse.save(key, embeddings=self.embeddings[name])
            self.embedding_keys[name] = key
            done += len(frame)
            if name == "train":  # the quick head fits while the other tickets are read
                self.head_fit = self.start_quick_head()

    def embedding_engine(self) -> Callable[[list[str], Callable[[int, int], None]], np.ndarray]:
        """How the frozen encoder reads tickets: ONNX Runtime where torch would run fp32 on
        the CPU (core.onnx_engine.use_onnx; about twice torch's speed there), exported once
        per model into the reuse folder; torch otherwise, or when the export fails."""
        self.engine_name = "torch"
        reusable = self.embedding_key([]) is not None and self.reuse is not None
        if reusable and self.model.normalize and use_onnx(self.placement):
            self.progress(ProgressEvent("embedding", message="Preparing the fast CPU engine."))
            engine = encoder_engine(
                self.model_source, self.reuse.folder / ONNX_CACHE, max_length=self.max_length
            )
            if engine is not None:
                self.engine_name = "onnx"
                return lambda texts, report: engine.embed(
                    texts, on_batch=report, cancel=self.cancel
                )

        readers: list[TicketClassifier] = []  # a bf16 copy on CPUs with fast bf16, made once

        def with_torch(texts: list[str], report: Callable[[int, int], None]) -> np.ndarray:
            if not readers:
                readers.append(for_reading(self.model, self.placement, copy=True))
            return embed_tickets(
                readers[0],
                self.tokenizer,
                texts,
                max_length=self.max_length,
                placement=self.placement,
                on_batch=report,
                cancel=self.cancel,
            )

        return with_torch

    def embedding_key(self, texts: list[str]) -> str | None:
        """The content key of these texts' embeddings, or None where they are not reusable:
        a subclass's own starting model (continual, distillation) or a prompt-tuned one."""
        if type(self).load is not TicketTrainer.load or self.model_source is None:
            return None
        if self.config.method == "prompt":
            return None
        return content_key(
            "embeddings",
            EMBEDDING_VERSION,
            model_identity(self.model_source),
            self.max_length,
            self.placement.precision,
            self.placement.reads_in_bf16,
            self.placement.device.type,
            bool(getattr(self.model, "normalize", False)),
            torch.__version__,
            self.engine_name,
            texts,
        )

    def fit_head(self) -> None:
        """Logistic regression on the embeddings (the quick model), copied into the head."""
        self.progress(
            ProgressEvent("fitting", message="Fitting the quick classifier on the embeddings.")
        )
        weight, bias = self.quick_head()
        self.model.set_head(torch.as_tensor(weight), torch.as_tensor(bias))
        if self.cancel.is_set():
            raise JobCancelledError()
        test = self.embeddings["test"]
        logits = test @ weight.T + bias if len(test) else np.zeros((0, len(self.labels)))
        self.quick_test_probabilities = _softmax(logits)
        self.quick_validation_macro_f1 = self.head_validation_macro_f1()

    def quick_head(self) -> tuple[np.ndarray, np.ndarray]:
        """The logistic regression's weights and biases in the head's label order: the fit
        ``embed`` started once the training tickets were read (waited for here), or one
        started now."""
        if self.head_fit is None:
            self.head_fit = self.start_quick_head()
        return self.head_fit.result()

    def start_quick_head(self) -> Future:
        """Start fitting the quick head on the training embeddings, in a thread of its own.

        The fit (one core) runs while the validation and test tickets are read, instead of
        after them: a quick run on CLINC150 finished ~2 s sooner (bench/RESULTS.md, session 7).
        A head stored for the same embeddings is taken instead (and said here, in the run's
        own thread: progress is never reported from the fitting thread)."""
        config = self.config
        train_labels = self.split.train["label"].to_numpy()
        key = None
        if self.reuse and self.embedding_keys.get("train"):
            key = content_key(
                "quick-head",
                self.embedding_keys["train"],
                LINEAR_PROBE_C,
                config.class_weighting,
                config.seed,
                sklearn.__version__,
                self.labels,
                train_labels.tolist(),
            )
            stored = self.reuse.load(key)
            if stored is not None:
                message = "Reusing the quick classifier of an earlier run."
                self.progress(ProgressEvent("fitting", message=message))
                head: Future = Future()
                head.set_result((stored["weight"], stored["bias"]))
                return head
        embeddings = self.embeddings["train"]

        def fit() -> tuple[np.ndarray, np.ndarray]:
            probe = LogisticRegression(
                C=LINEAR_PROBE_C,
                max_iter=2000,
                class_weight="balanced" if config.class_weighting else None,
                random_state=config.seed,
            )
            with threadpool_limits(1, user_api="openmp"):  # this thread only (OpenMP)
                fit_interruptibly(probe, embeddings, train_labels, self.cancel)
            weight, bias = _head_from_probe(probe, self.labels)
            if key and self.reuse and not self.cancel.is_set():
                self.reuse.save(key, weight=weight, bias=bias)
            return weight, bias

        return in_background(fit, name="tickettune-quick-head")  # raised by quick_head

    def head_validation_macro_f1(self) -> float | None:
        """Validation macro-F1 of the model as it stands before fine-tuning (the quick model):
        its head over the frozen embeddings. None without validation tickets."""
        validation = self.split.validation
        if not len(validation):
            return None
        weight = self.model.head.weight.detach().float().cpu().numpy()
        bias = self.model.head.bias.detach().float().cpu().numpy()
        predicted = (self.embeddings["validation"] @ weight.T + bias).argmax(axis=1)
        labels = self.labels
        scores = compute_metrics(
            validation["label"].tolist(), [labels[i] for i in predicted], labels
        )
        return scores["macro_f1"]

    def prepare_method(self) -> None:
        """Choose which weights train: all (full), LoRA adapters, biases (BitFit) or the head."""
        config, model = self.config, self.model
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
        elif config.method in ("bitfit", "head", "adapter"):
            for name, param in model.encoder.named_parameters():
                param.requires_grad = config.method == "bitfit" and name.endswith("bias")
            if config.method == "adapter":
                from core.addons import add_adapters

                self.addon = add_adapters(model, config.adapter_size)
        elif config.method == "prompt" and self.addon is None:
            from core.addons import add_prompt

            self.addon = add_prompt(model, config.prompt_tokens)

    def build_trainer(self, output_dir: str) -> Trainer:
        """The Hugging Face Trainer with progress, stop and best-model callbacks."""
        from transformers import DataCollatorWithPadding, PrinterCallback, TrainingArguments

        from core.callbacks import (
            BestModelKeeper,
            CheckpointMirror,
            NanGuard,
            ProgressReporter,
            StopControl,
        )

        config, split, placement = self.config, self.split, self.placement
        label_ids = self.label_ids
        train_set = self.train_dataset()
        eval_set = _encode(self.tokenizer, split.validation, label_ids, self.max_length) or None
        steps_per_epoch = max(1, -(-len(train_set) // config.batch_size))
        eval_steps = max(1, steps_per_epoch // config.evaluations_per_epoch)
        # Prompt tuning (peft) ties the virtual-token table to the word embeddings, which the
        # Trainer's safetensors checkpoint refuses to save; such runs are not resumable.
        checkpoints = self.checkpoint_dir is not None and config.method not in UNCHECKPOINTED
        labels = list(self.labels)
        args = TrainingArguments(
            output_dir=output_dir,
            num_train_epochs=config.epochs,
            learning_rate=config.effective_learning_rate,
            per_device_train_batch_size=config.batch_size,
            per_device_eval_batch_size=128,
            weight_decay=config.weight_decay,
            warmup_steps=config.warmup_ratio,
            eval_strategy="steps" if eval_set else "no",
            eval_steps=eval_steps,
            save_strategy=("steps" if eval_set else "epoch") if checkpoints else "no",
            save_steps=eval_steps,
            save_total_limit=1,
            logging_steps=max(1, steps_per_epoch // 20),
            logging_nan_inf_filter=False,
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
        self.keeper = BestModelKeeper(self.model, config.early_stopping_patience)
        self.stopper = StopControl(self.cancel, self.deadline)
        self.nan_guard = NanGuard()
        callbacks = [ProgressReporter(self.progress), self.stopper, self.keeper, self.nan_guard]
        if checkpoints:
            callbacks.append(CheckpointMirror(self.checkpoint_dir, self.keeper))

        def metrics(prediction: EvalPrediction) -> dict[str, float]:
            logits = prediction.predictions
            logits = logits[0] if isinstance(logits, tuple) else logits
            predicted = np.asarray(logits).argmax(axis=-1)
            truth = np.asarray(prediction.label_ids)
            return compute_metrics(
                [labels[i] for i in truth], [labels[i] for i in predicted], labels
            )

        trainer = self.trainer_class()(
            model=self.model,
            args=args,
            train_dataset=train_set,
            eval_dataset=eval_set,
            data_collator=DataCollatorWithPadding(self.tokenizer),
            processing_class=self.tokenizer,
            compute_metrics=metrics,
            callbacks=callbacks,
        )
        trainer.remove_callback(PrinterCallback)
        self.output_dir, self.hf_trainer = output_dir, trainer
        return trainer

    def train_dataset(self) -> list[dict[str, Any]]:
        """Tokenised training tickets with their label ids (distillation adds soft labels)."""
        return _encode(self.tokenizer, self.split.train, self.label_ids, self.max_length)

    def trainer_class(self) -> type[Trainer]:
        """The Hugging Face Trainer class; adversarial training swaps in its training step."""
        from transformers import Trainer

        if self.config.adversarial:
            from core.adversarial import adversarial_trainer

            return adversarial_trainer(Trainer, self.config.adversarial_epsilon)
        return Trainer

    def fine_tune(self) -> None:
        """Run the Trainer (from the saved checkpoint when resuming), then keep the best check.

        NaN loss fails with a plain reason; a cancel after a validation check keeps the best
        weights (CancelledWithBestModel) so the run does not lose what it earned.
        """
        checkpoint = None
        saves = self.hf_trainer.args.save_strategy != "no"
        if self.quick_validation_macro_f1 is not None:
            self.keeper.set_floor(self.quick_validation_macro_f1)
        if self.resume and self.checkpoint_dir is not None and saves:
            checkpoint = str(self.checkpoint_dir)
            self.keeper.load(self.checkpoint_dir)
        with contextlib.suppress(JobCancelledError):  # cancel during a check: handled below
            self.hf_trainer.train(resume_from_checkpoint=checkpoint)
        if self.nan_guard.diverged:
            from core.callbacks import TrainingDivergedError

            raise TrainingDivergedError()
        if self.cancel.is_set():
            if self.keeper.has_best and self.keeper.restore_best():
                raise CancelledWithBestModel(self)
            raise JobCancelledError()
        self.keeper.restore_best()

    def finish_method(self) -> None:
        """Merge LoRA weights into the encoder so the saved model is a plain transformers model."""
        if self.config.method == "lora":
            self.model.encoder = self.model.encoder.merge_and_unload()
        for param in self.model.parameters():
            param.requires_grad = True

    def predict_test(self) -> np.ndarray:
        self.progress(ProgressEvent("evaluating", message="Scoring the test tickets."))
        return classify(
            for_reading(self.model, self.placement, copy=True),  # as the saved model will score
            self.tokenizer,
            self.split.test["text"].tolist(),
            max_length=self.max_length,
            placement=self.placement,
            cancel=self.cancel,
        )

    def outcome(self, test_probabilities: np.ndarray, stop_reason: str) -> TrainingOutcome:
        trainer = self.hf_trainer
        return TrainingOutcome(
            model=self.model,
            tokenizer=self.tokenizer,
            meta=self.meta,
            placement=self.placement,
            test_probabilities=test_probabilities,
            quick_test_probabilities=self.quick_test_probabilities,
            stop_reason=stop_reason,
            train_seconds=time.monotonic() - self.started,
            steps=trainer.state.global_step if trainer is not None else 0,
            best_validation_macro_f1=self.keeper.best_metric if self.keeper else None,
            best_epoch=self.keeper.best_epoch if self.keeper else None,
            quick_validation_macro_f1=self.quick_validation_macro_f1,
            kept_quick=bool(self.keeper and self.keeper.kept_floor),
            extra_metrics=self.extra_metrics,
        )


def seed_everything(seed: int) -> None:
    """Python's, numpy's and torch's generators (every device): what transformers' set_seed
    does for a CPU or CUDA run, without importing its Trainer module."""
    import random

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _class_weights(train_labels: pd.Series, labels: list[str]) -> np.ndarray:
    counts = train_labels.value_counts().reindex(labels).fillna(0).to_numpy(dtype=float)
    weights = len(train_labels) / (len(labels) * np.maximum(counts, 1.0))
    return weights / weights.mean()


def _head_from_probe(probe: LogisticRegression, labels: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Logistic-regression coefficients as softmax-head weights in ``labels`` order.

    A label the probe never saw (distilling onto tickets that lack it) gets a zero row with a
    bias well below the others: the head can still learn it, but starts by not predicting it.
    """
    coef, intercept = probe.coef_.astype(np.float32), probe.intercept_.astype(np.float32)
    if coef.shape[0] == 1:  # binary: sklearn keeps one row; softmax over (-z/2, z/2) matches it
        coef = np.vstack([-coef / 2, coef / 2])
        intercept = np.array([-intercept[0] / 2, intercept[0] / 2], dtype=np.float32)
    classes = list(probe.classes_)
    weight = np.zeros((len(labels), coef.shape[1]), dtype=np.float32)
    bias = np.full(len(labels), intercept.min() - 10.0, dtype=np.float32)
    for row, label in enumerate(labels):
        if label in classes:
            weight[row], bias[row] = coef[classes.index(label)], intercept[classes.index(label)]
    return weight, bias


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)


def _encode(tokenizer: Any, frame: pd.DataFrame, label_ids: dict[str, int], max_length: int):
    encoded = tokenizer(frame["text"].tolist(), truncation=True, max_length=max_length)
    ids = [label_ids[label] for label in frame["label"]]
    keys = list(encoded.keys())
    return [{**{k: encoded[k][i] for k in keys}, "labels": ids[i]} for i in range(len(frame))]
