"""Make a faster copy of a model: distil a trained run (the teacher) into a shallower student.

The student is the teacher's own fine-tuned encoder cut to its first ``student_layers``
transformer layers (``encoder.layer`` truncated, ``config.num_hidden_layers`` updated, so it
saves and loads as a plain, smaller transformers model). Its head starts from the quick fit on
its own embeddings; it then trains on

    loss = alpha · T² · KL(softmax(teacher / T) ‖ softmax(student / T)) + (1 − alpha) · CE(labels)

(Hinton et al. 2015), with the teacher's guesses on optional unlabelled tickets (KL only).
``metrics["distillation"]`` compares teacher and student on the same test tickets: macro-F1
kept and scoring speed-up.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from transformers import Trainer
from transformers import set_seed as hf_set_seed

from core.addons import plain_encoder
from core.config import TrainConfig
from core.continual import parent_run
from core.device import resolve_placement
from core.errors import ConfigError
from core.evaluation import compute_metrics
from core.modeling import TicketClassifier, classify, load_classifier, run_in_batches
from core.progress import ProgressEvent
from core.runs import Run
from core.training import TicketTrainer, _class_weights

IGNORE = -100
#: How many tickets teacher and student each score to measure their speed, and how many times.
SPEED_TICKETS = 256
SPEED_ROUNDS = 3
#: The column of the teacher's saved split in the table a faster copy trains on.
SPLIT_COLUMN = "tickettune_split"


def truncate_layers(encoder: nn.Module, keep: int) -> nn.Module:
    """A copy of ``encoder`` with only its first ``keep`` transformer layers."""
    layers = getattr(getattr(encoder, "encoder", None), "layer", None)
    if layers is None:
        raise ConfigError("Distillation needs a BERT-family model (encoder.layer).")
    if keep >= len(layers):
        raise ConfigError(
            f"The student must have fewer layers than the teacher ({len(layers)}); "
            f"asked for {keep}."
        )
    student = copy.deepcopy(encoder)
    for module in student.modules():  # a copied adapter hook would still call the teacher's
        module._forward_hooks.clear()
    student.encoder.layer = nn.ModuleList(list(student.encoder.layer)[:keep])
    student.config.num_hidden_layers = keep
    return student


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    temperature: float,
    alpha: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(total loss, KL part). Labels equal to -100 (unlabelled tickets) count in KL only."""
    t = temperature
    kl = nn.functional.kl_div(
        nn.functional.log_softmax(student_logits.float() / t, dim=-1),
        nn.functional.log_softmax(teacher_logits.float() / t, dim=-1),
        reduction="batchmean",
        log_target=True,
    ) * (t * t)
    labelled = labels != IGNORE
    ce = (
        nn.functional.cross_entropy(student_logits[labelled].float(), labels[labelled])
        if labelled.any()
        else student_logits.sum() * 0.0
    )
    return alpha * kl + (1 - alpha) * ce, kl.detach()


class DistillTrainer(TicketTrainer):
    """A TicketTrainer whose model is the cut-down teacher and whose loss follows the teacher."""

    def __init__(self, *args: Any, unlabelled_texts: Sequence[str] = (), **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.unlabelled_texts = [t for t in unlabelled_texts if str(t).strip()]
        self.kl_history: list[float] = []

    def load(self) -> None:
        config = self.config
        teacher_run = parent_run(config.teacher_run)
        self.placement = resolve_placement(config.device, config.precision)
        hf_set_seed(config.seed)
        self.progress(
            ProgressEvent("loading", message=f"Loading the teacher model of {teacher_run.id}.")
        )
        teacher, self.tokenizer, meta = load_classifier(teacher_run.model_dir, "cpu")
        unknown = sorted(set(self.split.train["label"]) - set(meta.labels))
        if unknown:
            raise ConfigError(
                "The teacher model does not know these labels: " + ", ".join(unknown[:10])
            )
        self.teacher, self.teacher_run = teacher.to(self.placement.device), teacher_run
        self.labels, self.max_length = list(meta.labels), config.max_length or meta.max_length
        student = truncate_layers(plain_encoder(teacher.encoder), config.student_layers)
        self.model = TicketClassifier(student, len(self.labels), normalize=meta.normalize)
        self.model.to(self.placement.device)
        if config.class_weighting:
            weights = _class_weights(self.split.train["label"], self.labels)
            self.model.class_weights.copy_(torch.as_tensor(weights, dtype=torch.float32))

    def teacher_logits(self, texts: list[str]) -> np.ndarray:
        self.teacher.eval()
        return run_in_batches(
            lambda batch: self.teacher(**batch)["logits"],
            self.tokenizer,
            texts,
            max_length=self.max_length,
            placement=self.placement,
            cancel=self.cancel,
        )

    def prepare_method(self) -> None:
        super().prepare_method()
        self.progress(ProgressEvent("preparing", message="Reading the tickets with the teacher."))
        texts = self.split.train["text"].tolist() + self.unlabelled_texts
        self.soft_targets = self.teacher_logits(texts)

    def train_dataset(self) -> list[dict[str, Any]]:
        frame = pd.concat(
            [
                self.split.train[["text", "label"]],
                pd.DataFrame({"text": self.unlabelled_texts, "label": None}),
            ],
            ignore_index=True,
        )
        encoded = self.tokenizer(
            frame["text"].tolist(), truncation=True, max_length=self.max_length
        )
        ids = self.label_ids
        return [
            {
                **{k: encoded[k][i] for k in encoded},
                "labels": ids[label] if isinstance(label, str) else IGNORE,
                "teacher_logits": self.soft_targets[i].tolist(),
            }
            for i, label in enumerate(frame["label"])
        ]

    def trainer_class(self) -> type[Trainer]:
        owner, config = self, self.config

        class DistillingTrainer(super().trainer_class()):
            def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
                inputs = dict(inputs)
                labels = inputs.pop("labels")
                teacher = inputs.pop("teacher_logits", None)
                outputs = model(**inputs)
                if teacher is None:  # validation batches: plain cross-entropy
                    loss = nn.functional.cross_entropy(outputs["logits"].float(), labels)
                else:
                    loss, kl = distillation_loss(
                        outputs["logits"],
                        teacher,
                        labels,
                        config.distill_temperature,
                        config.distill_alpha,
                    )
                    if model.training:
                        owner.kl_history.append(float(kl))
                return (loss, outputs) if return_outputs else loss

        return DistillingTrainer

    def predict_test(self) -> np.ndarray:
        student = super().predict_test()
        self.progress(
            ProgressEvent("evaluating", message="Scoring the test tickets with the teacher.")
        )
        teacher = self.classify_with(self.teacher, self.split.test["text"].tolist())
        self.progress(
            ProgressEvent("evaluating", message="Timing how fast teacher and copy score.")
        )
        texts = timing_texts(self.split.test["text"].tolist() or self.split.train["text"].tolist())
        speeds = self.scoring_speeds(texts)
        self.extra_metrics = {"distillation": self.compare(teacher, student, *speeds)}
        self.extra_metrics["distillation"]["speed_tickets"] = len(texts)
        self.teacher = None  # free the memory before saving
        return student

    def classify_with(self, model: TicketClassifier, texts: list[str]) -> np.ndarray:
        return classify(
            model,
            self.tokenizer,
            texts,
            max_length=self.max_length,
            placement=self.placement,
            cancel=self.cancel,
        )

    def scoring_speeds(self, texts: list[str]) -> tuple[float | None, float | None]:
        """Tickets per second of the teacher and the student on the same ``texts``.

        One warm-up pass each; then teacher and student take turns ``SPEED_ROUNDS`` times and
        each keeps its best round, so another program busy on the same cores for a moment does
        not decide the result.
        """
        if not texts:
            return None, None
        models = (self.teacher, self.model)
        for model in models:  # warm-up: first-call allocations are not scoring speed
            self.classify_with(model, texts[:8])
        best = [float("inf"), float("inf")]
        for _ in range(SPEED_ROUNDS):
            for i, model in enumerate(models):
                started = time.perf_counter()
                self.classify_with(model, texts)
                best[i] = min(best[i], time.perf_counter() - started)
        return tuple(len(texts) / seconds if seconds > 0 else None for seconds in best)

    def compare(
        self,
        teacher: np.ndarray,
        student: np.ndarray,
        teacher_speed: float | None,
        student_speed: float | None,
    ) -> dict[str, Any]:
        truth, labels, n = self.split.test["label"].tolist(), self.labels, len(self.split.test)

        def macro_f1(probs: np.ndarray) -> float:
            return compute_metrics(truth, [labels[i] for i in probs.argmax(axis=1)], labels)[
                "macro_f1"
            ]

        teacher_f1, student_f1 = (macro_f1(teacher), macro_f1(student)) if n else (None, None)
        teacher_layers = self.teacher.encoder.config.num_hidden_layers if self.teacher else None
        return {
            "teacher_run": str(self.teacher_run.path),
            "teacher_layers": teacher_layers,
            "student_layers": self.config.student_layers,
            "teacher_macro_f1": teacher_f1,
            "student_macro_f1": student_f1,
            "macro_f1_kept": student_f1 / teacher_f1 if teacher_f1 else None,
            "teacher_tickets_per_second": teacher_speed,
            "student_tickets_per_second": student_speed,
            "speedup": student_speed / teacher_speed if teacher_speed and student_speed else None,
            "unlabelled_tickets": len(self.unlabelled_texts),
            "soft_label_temperature": self.config.distill_temperature,
            "first_kl": self.kl_history[0] if self.kl_history else None,
            "last_kl": self.kl_history[-1] if self.kl_history else None,
        }


def timing_texts(texts: Sequence[str]) -> list[str]:
    """``SPEED_TICKETS`` tickets to time scoring on: ``texts`` cut or repeated to that many
    (so a small test set still times real work)."""
    if not texts:
        return []
    repeats = -(-SPEED_TICKETS // len(texts))
    return (list(texts) * repeats)[:SPEED_TICKETS]


def request_distillation(
    run: Run | str | Path,
    *,
    student_layers: int | None = None,
    unlabelled_texts: Sequence[str] = (),
    **config_changes: Any,
):
    """A TrainingRequest that distils ``run`` on its own tickets and its own split (so teacher
    and student are compared on the same test tickets). For "Make a faster copy of this model".
    The copy records the teacher's columns, so it reads a file exactly as the teacher does.
    """
    from core.pipeline import SPLIT_FILE, TrainingRequest

    teacher = parent_run(run.path if isinstance(run, Run) else run)
    split = teacher.read_frame(SPLIT_FILE, keep_default_na=False)
    if split is None:
        raise ConfigError(f"The run '{teacher.path}' has no saved split ({SPLIT_FILE}).")
    config = TrainConfig.from_dict(teacher.read_json("config.json", default={}) or {})
    changes: dict[str, Any] = {"teacher_run": str(teacher.path), "parent_run": None}
    if student_layers is not None:
        changes["student_layers"] = student_layers
    if config.method in ("quick", "prompt", "adapter", "head"):
        changes["method"] = "full"  # the student is a new, smaller model: all of it trains
    changes.update(config_changes)
    scheme = _teacher_scheme(teacher)
    return TrainingRequest(
        table=_in_teacher_columns(split, scheme),
        scheme=scheme,
        config=replace(config, **changes),
        split_column=SPLIT_COLUMN,
        source_name=f"{teacher.id} (its own tickets)",
        unlabelled_texts=tuple(unlabelled_texts),
    )


def _teacher_scheme(teacher: Run):
    """The teacher's columns; its label changes are already in its tickets, so none here."""
    from core.schema import LabelScheme

    saved = teacher.read_json("scheme.json", default=None)
    if not isinstance(saved, dict):
        return LabelScheme(text_columns=("text",), label_column="label", min_count=1)
    return replace(LabelScheme.from_dict(saved), rename={}, drop=(), min_count=1)


def _in_teacher_columns(split: pd.DataFrame, scheme) -> pd.DataFrame:
    """The teacher's saved tickets laid out in its own columns: the joined ticket text in the
    first text column and the others empty (joining skips empty cells: the text is unchanged)."""
    first, *rest = scheme.text_columns
    table = pd.DataFrame({first: split["text"].astype(str)})
    for column in rest:
        table[column] = ""
    table[scheme.label_column] = split["label"].astype(str)
    table[SPLIT_COLUMN] = split["split"].astype(str)
    return table
