"""A rough training-time estimate shown before the analyst presses Train.

Rates are tickets per second for short tickets (about 16 tokens), measured by
``bench/bench_training.py`` on 2 CPU cores with the embedded model; longer tickets cost
proportionally more. On a GPU everything is assumed about 15x faster.
"""

from __future__ import annotations

import torch

from core.config import TrainConfig

CPU_TICKETS_PER_SECOND = {"full": 180.0, "lora": 230.0, "bitfit": 260.0, "head": 420.0}
# Not yet measured (bench/bench_methods.py will): adapters back-propagate through every layer
# like LoRA; prompt tuning also reads 20 more tokens per ticket.
CPU_TICKETS_PER_SECOND |= {"adapter": 230.0, "prompt": 120.0}
CPU_EMBED_PER_SECOND = 1700.0
GPU_SPEEDUP = 15.0
REFERENCE_TOKENS = 16.0
FIXED_SECONDS = 20.0  # loading the model, baseline, saving


def estimate_training_seconds(
    n_tickets: int, config: TrainConfig, *, mean_tokens: float = REFERENCE_TOKENS
) -> float:
    """Seconds for a whole run on ``n_tickets`` tickets (all splits together)."""
    scale = max(1.0, mean_tokens / REFERENCE_TOKENS)
    seconds = n_tickets * scale / CPU_EMBED_PER_SECOND
    if config.method != "quick":
        n_train = n_tickets * (1 - config.validation_fraction - config.test_fraction)
        rate = CPU_TICKETS_PER_SECOND[config.method]
        seconds += n_train * config.epochs * scale / rate
    if config.device != "cpu" and torch.cuda.is_available():
        seconds /= GPU_SPEEDUP
    seconds += FIXED_SECONDS
    if config.time_budget_minutes:
        seconds = min(seconds, config.time_budget_minutes * 60 + FIXED_SECONDS)
    return seconds
