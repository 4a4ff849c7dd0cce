"""TrainConfig: every knob of a training run, validated once, saved beside the model."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

from core.errors import ConfigError
from core.methods import METHOD_FACTS, METHODS
from core.serialization import from_known_fields

Method = Literal["quick", "full", "lora", "bitfit", "head", "adapter", "prompt"]

#: Method descriptions and default learning rates live with the other method facts.
METHOD_DESCRIPTIONS: dict[str, str] = {k: f.description for k, f in METHOD_FACTS.items()}
DEFAULT_LEARNING_RATES: dict[str, float] = {k: f.learning_rate for k, f in METHOD_FACTS.items()}

#: Batch size on automatic (``batch_size=None``). The default method on a large training set
#: takes LARGE_BATCH tickets a step at LARGE_BATCH_LEARNING_RATE: a step's fixed costs (the
#: optimizer update over every weight, the bf16 copies of the weights) are then shared by twice
#: the tickets, about 1.35x the tickets per second on 2 CPU cores at the same quality
#: (bench/RESULTS.md, session 6). Smaller sets and the other methods keep SMALL_BATCH, so a
#: few hundred tickets still get enough updates and each method keeps its measured rate.
SMALL_BATCH = 32
LARGE_BATCH = 64
LARGE_BATCH_FROM_TICKETS = 4000
LARGE_BATCH_LEARNING_RATE = 8e-5
AUTO_BATCH_NOTE = (
    f"automatic ({SMALL_BATCH}; {LARGE_BATCH} for the default method from "
    f"{LARGE_BATCH_FROM_TICKETS:,} training tickets)"
)

#: Passes over the training tickets on automatic (``epochs=None``). On the large sets that take
#: LARGE_BATCH, the default method makes LARGE_SET_EPOCHS passes: over 3 seeds on both CLINC150
#: label schemes, a third pass moved the best validation macro-F1 by +0.02 (intent) and +0.33
#: (domain) points, within the seeds' spread, for 40-60% more time (205 s against 145 s on a
#: 2-core AVX-512 CPU; 626 s against 396 s on an AVX2 one; bench/RESULTS.md, session 10).
#: Smaller sets, where a pass takes seconds, and the other methods keep DEFAULT_EPOCHS, which
#: at 10 tickets per label tested 0.3 points higher.
DEFAULT_EPOCHS = 3.0
LARGE_SET_EPOCHS = 2.0
AUTO_EPOCHS_NOTE = (
    f"automatic ({DEFAULT_EPOCHS:g}; {LARGE_SET_EPOCHS:g} for the default method from "
    f"{LARGE_BATCH_FROM_TICKETS:,} training tickets)"
)


def learning_rate_note(method: str) -> str:
    """What an empty learning-rate box means for ``method``."""
    note = f"automatic ({DEFAULT_LEARNING_RATES[method]:.0e}"
    if method == "full":
        note += f"; {LARGE_BATCH_LEARNING_RATE:.0e} at {LARGE_BATCH} tickets a step"
    return note + ")"


PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda")
MAX_MODEL_LENGTH = 512


@dataclass(frozen=True)
class TrainConfig:
    """How to train. The defaults are what an analyst gets by pressing Train."""

    model: str = "default"
    method: Method = "full"
    #: Passes over the training tickets; None = automatic (see ``for_training_set``).
    epochs: float | None = None
    learning_rate: float | None = None
    #: Tickets per training step; None = automatic (see ``for_training_set``).
    batch_size: int | None = None
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
    #: adapter: width of each bottleneck layer (hidden → adapter_size → hidden).
    adapter_size: int = 64
    #: prompt: how many learned virtual tokens go in front of every ticket.
    prompt_tokens: int = 20
    #: Adversarial training (FGM): each step also learns from the batch with its word
    #: embeddings pushed ``adversarial_epsilon`` along the normalised gradient, which makes the
    #: model steadier against typos and odd spelling (see core/adversarial.py).
    adversarial: bool = False
    adversarial_epsilon: float = 1.0
    #: Continual learning: the run folder whose model this run starts from (None: pretrained).
    parent_run: str | None = None
    #: Replay: earlier training tickets mixed in, as a share of the new training tickets. 0.5
    #: keeps the new tickets the majority (they are what the analyst wants learned) while
    #: each earlier label is still seen often enough not to be forgotten; 0 = no replay.
    replay_fraction: float = 0.5
    #: Distillation: the run folder of the teacher model (None: no distillation).
    teacher_run: str | None = None
    #: Distillation: how many of the teacher's first transformer layers the student keeps.
    student_layers: int = 3
    #: Distillation: softmax temperature of the teacher's soft labels (higher = softer).
    distill_temperature: float = 3.0
    #: Distillation: weight of the soft-label (KL) loss; the rest goes to the true labels (CE).
    distill_alpha: float = 0.5

    def __post_init__(self) -> None:
        problems = list(self._problems())
        if problems:
            raise ConfigError("Training settings need fixing: " + "; ".join(problems) + ".")

    def _problems(self):
        if not str(self.model).strip():
            yield "model is empty (use 'default' for the built-in model)"
        if self.method not in METHODS:
            yield f"method '{self.method}' is unknown (choose one of {', '.join(METHODS)})"
        if self.epochs is not None and (not (0 < self.epochs <= 100) or math.isnan(self.epochs)):
            yield f"epochs must be between 0 and 100 (got {self.epochs})"
        if self.learning_rate is not None and not (0 < self.learning_rate < 1):
            yield f"learning rate must be between 0 and 1 (got {self.learning_rate})"
        if self.batch_size is not None and not (1 <= self.batch_size <= 4096):
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
        if not (1 <= self.adapter_size <= 4096) or not (1 <= self.prompt_tokens <= 256):
            yield "adapter size must be 1-4096 and prompt tokens 1-256"
        if not (0 < self.adversarial_epsilon <= 100) or math.isnan(self.adversarial_epsilon):
            yield f"adversarial epsilon must be between 0 and 100 (got {self.adversarial_epsilon})"
        if not (0 <= self.replay_fraction <= 10) or math.isnan(self.replay_fraction):
            yield f"replay share must be between 0 and 10 (got {self.replay_fraction})"
        if self.parent_run and self.teacher_run:
            yield "a run either continues an earlier run or distils one, not both"
        if not (1 <= self.student_layers <= 48):
            yield f"student layers must be between 1 and 48 (got {self.student_layers})"
        if not (0.5 <= self.distill_temperature <= 20) or not (0 <= self.distill_alpha <= 1):
            yield "distillation temperature must be 0.5-20 and its weight between 0 and 1"
        for name in ("validation_fraction", "test_fraction"):
            if not (0 < getattr(self, name) < 0.5):
                yield f"{name.replace('_', ' ')} must be between 0 and 0.5"

    def for_training_set(self, n_train: int) -> TrainConfig:
        """These settings with the automatic batch size (and, where it changes, the learning
        rate) and epoch count filled in for ``n_train`` training tickets; settings chosen by
        hand stay."""
        large = self.method == "full" and n_train >= LARGE_BATCH_FROM_TICKETS
        config = self
        if config.epochs is None:
            config = replace(config, epochs=LARGE_SET_EPOCHS if large else DEFAULT_EPOCHS)
        if config.batch_size is None and large:
            rate = config.learning_rate or LARGE_BATCH_LEARNING_RATE
            config = replace(config, batch_size=LARGE_BATCH, learning_rate=rate)
        elif config.batch_size is None:
            config = replace(config, batch_size=SMALL_BATCH)
        return config

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
