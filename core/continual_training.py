"""The trainer of a continual run (see core/continual.py for what continual learning does here).

Apart from ``core.continual`` so the pages that show lineage and forgetting do not load torch.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
from transformers import set_seed as hf_set_seed

from core.continual import parent_run, parent_split
from core.device import resolve_placement
from core.evaluation import compute_metrics
from core.modeling import classify, load_classifier
from core.progress import ProgressEvent
from core.runs import Run
from core.training import TicketTrainer, _class_weights


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
    def scores(frame: pd.DataFrame, probs: np.ndarray, earlier: bool) -> dict[str, float]:
        predicted = [labels[i] for i in probs.argmax(axis=1)] if len(frame) else []
        return compute_metrics(
            frame["label"].tolist(), predicted, labels, truth_labels_only=earlier
        )

    before = (parent.read_json("metrics.json", default={}) or {}).get("model", {})
    # Over the earlier test's own labels: a new label predicted there is a miss, but its F1
    # (no true tickets there) must not halve the average and read as forgetting.
    previous_scores = scores(previous, previous_probs, earlier=True)
    forgetting = None
    if before.get("macro_f1") is not None and len(previous):
        forgetting = round(float(before["macro_f1"]) - float(previous_scores["macro_f1"]), 4)
    return {
        "previous_test": previous_scores,
        "new_test": scores(new_test, new_probs, earlier=False),
        "parent_previous_test_macro_f1": before.get("macro_f1"),
        "forgetting": forgetting,
        "parent_run": str(parent.path),
    }


def _softmax(logits: np.ndarray, n_labels: int) -> np.ndarray:
    if not len(logits):
        return np.zeros((0, n_labels), dtype=np.float32)
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)
