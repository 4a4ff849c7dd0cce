"""TrainConfig: every knob of a training run, validated once, saved beside the model."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

from core.errors import ConfigError
from core.serialization import from_known_fields

Method = Literal["quick", "full", "lora", "bitfit", "head"]
METHODS: tuple[str, ...] = ("quick", "full", "lora", "bitfit", "head")

METHOD_DESCRIPTIONS: dict[str, str] = {
    "quick": "Reads each ticket once with the pretrained model and fits a simple classifier "
    "on top. "
    "A usable first model in about a minute.",
    "full": "Fine-tunes the whole model on your tickets, starting from the quick model. "
    "Most accurate; takes longest.",
    "lora": "Fine-tunes small add-on weights (LoRA) inside the model. "
    "Less memory, nearly as accurate.",
    "bitfit": "Fine-tunes only the model's bias terms. Light and fast, a little less accurate.",
    "head": "Keeps the pretrained model frozen and trains only the final classification layer.",
}

#: Learning rates that worked on ticket-like data without tuning (the head starts from the
#: quick model, so full fine-tuning needs only a gentle rate).
DEFAULT_LEARNING_RATES: dict[str, float] = {
    "quick": 0.0,
    "full": 5e-5,
    "lora": 5e-4,
    "bitfit": 1e-3,
    "head": 1e-3,
}

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda")
MAX_MODEL_LENGTH = 512


@dataclass(frozen=True)
class TrainConfig:
    """How to train. The defaults are what an analyst gets by pressing Train."""

    model: str = "default"
    method: Method = "full"
    epochs: float = 3.0
    learning_rate: float | None = None
    batch_size: int = 32
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    class_weighting: bool = False
    early_stopping_patience: int = 3
    evaluations_per_epoch: int = 2
    time_budget_minutes: float | None = None
    max_length: int | None = None
    seed: int = 42
    precision: str = "auto"
    device: str = "auto"
    lora_rank: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.1
    validation_fraction: float = 0.1
    test_fraction: float = 0.1

    def __post_init__(self) -> None:
        problems = list(self._problems())
        if problems:
            raise ConfigError("Training settings need fixing: " + "; ".join(problems) + ".")

    def _problems(self):
        if not str(self.model).strip():
            yield "model is empty (use 'default' for the built-in model)"
        if self.method not in METHODS:
            yield f"method '{self.method}' is unknown (choose one of {', '.join(METHODS)})"
        if not (0 < self.epochs <= 100) or math.isnan(self.epochs):
            yield f"epochs must be between 0 and 100 (got {self.epochs})"
        if self.learning_rate is not None and not (0 < self.learning_rate < 1):
            yield f"learning rate must be between 0 and 1 (got {self.learning_rate})"
        if not (1 <= self.batch_size <= 4096):
            yield f"batch size must be between 1 and 4096 (got {self.batch_size})"
        if not (0 <= self.weight_decay < 1):
            yield f"weight decay must be between 0 and 1 (got {self.weight_decay})"
        if not (0 <= self.warmup_ratio < 1):
            yield f"warm-up share must be between 0 and 1 (got {self.warmup_ratio})"
        if self.early_stopping_patience < 0:
            yield "early-stopping patience cannot be negative"
        if not (1 <= self.evaluations_per_epoch <= 20):
            yield "checks per epoch must be between 1 and 20"
        if self.time_budget_minutes is not None and self.time_budget_minutes <= 0:
            yield f"time budget must be positive (got {self.time_budget_minutes} minutes)"
        if self.max_length is not None and not (8 <= self.max_length <= MAX_MODEL_LENGTH):
            yield f"maximum length must be between 8 and {MAX_MODEL_LENGTH} tokens"
        if self.precision not in PRECISIONS:
            yield f"precision must be one of {', '.join(PRECISIONS)}"
        if self.device not in DEVICES:
            yield f"device must be one of {', '.join(DEVICES)}"
        if self.lora_rank < 1 or self.lora_alpha < 1 or not (0 <= self.lora_dropout < 1):
            yield "LoRA rank and alpha must be at least 1 and dropout between 0 and 1"
        for name in ("validation_fraction", "test_fraction"):
            if not (0 < getattr(self, name) < 0.5):
                yield f"{name.replace('_', ' ')} must be between 0 and 0.5"

    @property
    def effective_learning_rate(self) -> float:
        if self.learning_rate is not None:
            return self.learning_rate
        return DEFAULT_LEARNING_RATES[self.method]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """Unknown keys (a newer TicketTune) are ignored; every setting has a default."""
        return from_known_fields(cls, data, "the saved training settings")
