"""The training-time estimate shown before the analyst presses Train, from this machine's speed.

The shape of the estimate is a rate table (tickets per second at about 16 tokens, measured by
``bench/bench_training.py`` on 2 AMX CPU cores): embed every ticket once, then train
``epochs`` passes over the training tickets, plus a fixed cost. That table is only right on the
machine it came from (an AVX2-only CPU is several times slower), so it is scaled by a factor
measured here, in order of preference:

1. the last finished run of the same method and model on this machine: its real total time
   over what the table predicted for it (``record_run_speed``, called by the pipeline);
2. a short calibration: a few batches of the real tickets through the encoder
   (``calibrate``), once per model per machine;
3. nothing measured yet: the table as it is.

Factors live in ``<runs dir>/machine_speed.json``, keyed by machine (CPU, usable cores,
instruction-set mode, GPU) and model, so runs folders moved between computers stay honest.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core.config import TrainConfig
from core.report import TOKENS_PER_WORD

CPU_TICKETS_PER_SECOND = {"full": 180.0, "lora": 230.0, "bitfit": 260.0, "head": 420.0}
# Not yet measured (bench/bench_methods.py will): adapters back-propagate through every layer
# like LoRA; prompt tuning also reads 20 more tokens per ticket.
CPU_TICKETS_PER_SECOND |= {"adapter": 230.0, "prompt": 120.0}
CPU_EMBED_PER_SECOND = 1700.0
GPU_SPEEDUP = 15.0
REFERENCE_TOKENS = 16.0
# Seconds a run takes besides the rate table's work. Fine-tuning: building the Trainer, the
# validation checks, scoring the test tickets and saving. Quick: checking and splitting
# (~0.5 s), loading the model (0.8-3.8 s) and saving (~0.5 s), since the word-count baseline
# and the head fit alongside the reading (session 7). With 20 s for both, a 3,100-ticket quick
# run in the app said "about 22 s" and took 5 s; a full one said 63 s and took 67 s.
FIXED_SECONDS = 20.0
QUICK_FIXED_SECONDS = 5.0
SPEED_FILE = "machine_speed.json"
CALIBRATION_TICKETS = 256
CALIBRATION_KEY = "calibration"


def mean_tokens_from_report(report: Any) -> float:
    """The ticket length the estimate uses, from a DataReport or its ``to_dict()``."""
    percentiles = getattr(report, "length_percentiles", None)
    if percentiles is None and isinstance(report, dict):
        percentiles = report.get("length_percentiles")
    unit = getattr(report, "length_unit", None) or (
        report.get("length_unit") if isinstance(report, dict) else None
    )
    p50 = float((percentiles or {}).get("p50", REFERENCE_TOKENS))
    return p50 if unit == "tokens" else p50 * TOKENS_PER_WORD


def estimate_training_seconds(
    n_tickets: int,
    config: TrainConfig,
    *,
    mean_tokens: float = REFERENCE_TOKENS,
    runs_dir: str | os.PathLike | None = None,
) -> float:
    """Seconds for a whole run on ``n_tickets`` tickets (all splits together), on this machine."""
    work = table_seconds(n_tickets, config, mean_tokens=mean_tokens)
    fixed = fixed_seconds(config)
    seconds = work * speed_factor(config, runs_dir) + fixed
    if config.time_budget_minutes:
        seconds = min(seconds, config.time_budget_minutes * 60 + fixed)
    return seconds


def fixed_seconds(config: TrainConfig) -> float:
    """The part of a run's time that does not grow with the tickets (see FIXED_SECONDS)."""
    return QUICK_FIXED_SECONDS if config.method == "quick" else FIXED_SECONDS


def table_seconds(
    n_tickets: int,
    config: TrainConfig,
    *,
    mean_tokens: float = REFERENCE_TOKENS,
    epochs: float | None = None,
) -> float:
    """The rate table's variable part (no fixed cost), before any machine factor."""
    scale = max(1.0, mean_tokens / REFERENCE_TOKENS)
    seconds = n_tickets * scale / CPU_EMBED_PER_SECOND
    if config.method != "quick":
        n_train = n_tickets * (1 - config.validation_fraction - config.test_fraction)
        passes = config.for_training_set(int(n_train)).epochs if epochs is None else epochs
        seconds += n_train * passes * scale / CPU_TICKETS_PER_SECOND[config.method]
    if _on_gpu(config):
        seconds /= GPU_SPEEDUP
    return seconds


def speed_factor(config: TrainConfig, runs_dir: str | os.PathLike | None = None) -> float:
    """Measured time / table time on this machine for this method and model (1.0: unknown)."""
    entry = _load(runs_dir).get(machine_key(config), {}).get(config.model, {})
    for key in (config.method, CALIBRATION_KEY):
        factor = entry.get(key, {}).get("factor")
        if isinstance(factor, int | float) and factor > 0:
            return float(factor)
    return 1.0


def record_run_speed(
    runs_dir: str | os.PathLike,
    config: TrainConfig,
    *,
    n_tickets: int,
    mean_tokens: float,
    total_seconds: float,
    epochs_done: float | None = None,
    run_id: str = "",
) -> float:
    """Remember how fast a finished run really was; the next estimate uses it. Returns it."""
    work = table_seconds(n_tickets, config, mean_tokens=mean_tokens, epochs=epochs_done)
    factor = max(total_seconds - fixed_seconds(config), 1.0) / max(work, 1e-6)
    tickets_per_s = n_tickets / max(total_seconds, 1e-6)
    _store(
        runs_dir,
        config,
        config.method,
        {"factor": round(factor, 4), "tickets_per_s": round(tickets_per_s, 1), "run_id": run_id},
    )
    return factor


def record_finished_run(run: Any, config: TrainConfig, metrics: dict, total_seconds: float) -> None:
    """The pipeline's one call after a run: its sizes and time from what the run stored.

    Never fails the run: a speed file that cannot be written only loses the measurement.
    """
    training = metrics.get("training", {})
    sizes = training.get("split_sizes", {})
    n_tickets = int(sum(sizes.values()))
    n_train = sizes.get("train", 0)
    epochs_done = None
    if config.method != "quick" and training.get("steps") and n_train:
        resolved = config.for_training_set(n_train)  # automatic batch size and epochs
        epochs_done = min(resolved.epochs, training["steps"] * resolved.batch_size / n_train)
    with contextlib.suppress(OSError):
        record_run_speed(
            Path(run.path).parent,
            config,
            n_tickets=n_tickets,
            mean_tokens=mean_tokens_from_report(run.read_json("report.json", default={})),
            total_seconds=total_seconds,
            epochs_done=epochs_done,
            run_id=run.id,
        )


def calibrate(
    texts: Sequence[str],
    config: TrainConfig,
    runs_dir: str | os.PathLike | None = None,
    *,
    force: bool = False,
) -> float:
    """Embed a few batches of ``texts`` with the model, once per model per machine; the factor.

    Takes a few seconds (loading the model is most of it). The result is cached in the speed
    file; later calls return it without measuring unless ``force``.
    """
    entry = _load(runs_dir).get(machine_key(config), {}).get(config.model, {})
    cached = entry.get(CALIBRATION_KEY, {}).get("factor")
    if cached and not force:
        return float(cached)
    import numpy as np

    from core.device import resolve_placement
    from core.modeling import TicketClassifier, embed_tickets, for_reading, load_encoder

    sample = [str(t) for t in texts[:CALIBRATION_TICKETS]] or ["hello"]
    encoder, tokenizer, _ = load_encoder(config.model)
    placement = resolve_placement(config.device, config.precision)
    reader = TicketClassifier(encoder, 2).to(placement.device).eval()
    reader = for_reading(reader, placement, copy=False)  # as training reads the tickets
    kwargs = {"max_length": 128, "placement": placement, "batch_size": 64}
    embed_tickets(reader, tokenizer, sample[:64], **kwargs)  # warm-up
    started = time.perf_counter()
    embed_tickets(reader, tokenizer, sample, **kwargs)
    seconds = time.perf_counter() - started
    tokens = float(np.mean([len(ids) for ids in tokenizer(sample)["input_ids"]]))
    quick = TrainConfig(**{**config.to_dict(), "method": "quick"})
    factor = seconds / max(table_seconds(len(sample), quick, mean_tokens=tokens), 1e-6)
    _store(runs_dir, config, CALIBRATION_KEY, {"factor": round(factor, 4)})
    return factor


def machine_key(config: TrainConfig | None = None) -> str:
    """CPU model, usable cores, instruction-set mode and the GPU a run would use."""
    from core.threads import cpu_isa_limit

    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.lower().startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    gpu = "gpu" if config is not None and _on_gpu(config) else "cpu"
    return f"{cpu} | {cores} cores | {cpu_isa_limit() or 'native'} | {gpu}"


def _on_gpu(config: TrainConfig) -> bool:
    if config.device == "cpu":
        return False
    import torch

    return torch.cuda.is_available()


def _speed_path(runs_dir: str | os.PathLike | None) -> Path:
    from core.runs import default_runs_dir

    return Path(runs_dir) if runs_dir is not None else default_runs_dir()


def _load(runs_dir: str | os.PathLike | None) -> dict[str, Any]:
    try:
        data = json.loads((_speed_path(runs_dir) / SPEED_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _store(
    runs_dir: str | os.PathLike | None, config: TrainConfig, key: str, value: dict[str, Any]
) -> None:
    from core import atomic
    from core.runs import utc_now_iso

    folder = _speed_path(runs_dir)
    folder.mkdir(parents=True, exist_ok=True)
    data = _load(folder)
    models = data.setdefault(machine_key(config), {})
    models.setdefault(config.model, {})[key] = {**value, "measured_at": utc_now_iso()}
    atomic.write_json(folder / SPEED_FILE, data)
