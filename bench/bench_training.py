"""Training throughput: the project's default recipe against the textbook fine-tuning recipe.

Why: TicketTune promises a usable fine-tuned model on 2 CPU cores in minutes. That rests on
its training recipe (mean pooling, dynamic padding, length-grouped batches of 32, bf16 autocast
where the CPU has AMX/AVX-512-bf16). This script measures how many tickets per second that
recipe trains, next to the recipe most tutorials use (every ticket padded to 128 tokens,
batch 16, CLS-pooler head from AutoModelForSequenceClassification, lr 2e-5, fp32), on the same
tickets, machine and number of optimizer steps, both through the Hugging Face Trainer. It also
runs the default recipe at fp32 and at bf16, so the automatic bf16 choice is backed by a number.

Each recipe runs in a fresh process; after ``--warmup-steps`` steps (first-call costs: oneDNN
kernel selection, allocator growth) the next ``--steps`` steps are timed from the end of one
optimizer step to the end of another, so data collation counts and model loading does not.
Only optimizer steps are timed: validation is switched off for the measurement.

    python -m bench.bench_training                      # full: 150 steps per recipe
    python -m bench.bench_training --limit 600 --steps 10 --warmup-steps 2   # smoke
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from typing import Any

import numpy as np
import pandas as pd
import torch
from transformers import (
    AutoModelForSequenceClassification,
    DataCollatorWithPadding,
    IntervalStrategy,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)
from transformers import set_seed as hf_set_seed

from bench.common import (
    SEED,
    Target,
    add_data_arguments,
    common_parser,
    data_arguments,
    emit_json,
    latency_stats,
    load_table,
    peak_rss_mb,
    prepared_tickets,
    print_table,
    print_targets,
    run_child,
    text_columns,
)
from bench.machine import print_header
from core.config import TrainConfig
from core.device import resolve_placement
from core.modeling import load_tokenizer, resolve_model_source
from core.split import DataSplit

# The benchmark trains with exactly the Trainer set-up core uses (its steps, not a copy), so a
# change to core.training shows up here (and a rename breaks the benchmark loudly).
from core.training import TicketTrainer

TEXTBOOK_MAX_LENGTH = 128
TEXTBOOK_BATCH_SIZE = 16
TEXTBOOK_LEARNING_RATE = 2e-5
PHASES = ("default-bf16", "default-fp32", "textbook")
SPEEDUP_TARGET = 8.0


class CountingCollator:
    """Wraps a data collator to record each batch's tickets, padded tokens and real tokens.

    Batches are collated in the order the optimizer consumes them (one batch per step, even
    when accelerate prefetches one ahead), so entry k belongs to step k + 1.
    """

    def __init__(self, collate: Any) -> None:
        self.collate = collate
        self.batches: list[tuple[int, int, int]] = []

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch = self.collate(features)
        ids, mask = batch["input_ids"], batch["attention_mask"]
        self.batches.append((int(ids.shape[0]), int(ids.numel()), int(mask.sum())))
        return batch


class StepClock(TrainerCallback):
    """Time stamp at the end of every optimizer step; stops training after ``total`` steps."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.ends: list[float] = []

    def on_step_end(self, args, state, control, **kwargs):
        self.ends.append(time.perf_counter())
        if state.global_step >= self.total:
            control.should_training_stop = True


def timed_training(trainer: Trainer, *, steps: int, warmup: int) -> dict[str, Any]:
    """Train ``warmup + steps`` steps; tickets/s over the last ``steps`` of them."""
    collator = CountingCollator(trainer.data_collator)
    trainer.data_collator = collator
    clock = StepClock(warmup + steps)
    trainer.add_callback(clock)
    trainer.args.max_steps = warmup + steps  # overrides epochs: cycles the data if it is short
    trainer.args.eval_strategy = IntervalStrategy.NO
    trainer.train()
    if len(clock.ends) < warmup + steps:
        raise RuntimeError(f"training stopped after {len(clock.ends)} of {warmup + steps} steps")
    window = np.asarray(clock.ends[warmup - 1 : warmup + steps])
    seconds = float(window[-1] - window[0])
    measured = np.asarray(collator.batches[warmup : warmup + steps])
    tickets, padded, real = (int(v) for v in measured.sum(axis=0))
    return {
        "steps": steps,
        "warmup_steps": warmup,
        "tickets": tickets,
        "seconds": round(seconds, 2),
        "tickets_per_s": round(tickets / seconds, 1),
        "steps_per_s": round(steps / seconds, 3),
        "padded_tokens_per_ticket": round(padded / tickets, 1),
        "padding_share": round(1 - real / padded, 3),
        "step_ms": latency_stats(np.diff(window)),
    }


def measure_default(
    tickets: pd.DataFrame, *, precision: str, device: str, steps: int, warmup: int
) -> dict[str, Any]:
    """core.training's Trainer with TrainConfig() defaults, except the precision under test."""
    config = TrainConfig(precision=precision, device=device)
    # One validation row only because core's trainer builder needs a non-empty set; timed_training
    # switches evaluation off, so it is never scored.
    split = DataSplit(tickets, tickets.iloc[:1], tickets.iloc[:0], strategy="bench")
    core_trainer = TicketTrainer(config, split)
    core_trainer.load()
    core_trainer.prepare_method()
    placement, max_length = core_trainer.placement, core_trainer.max_length
    with tempfile.TemporaryDirectory(prefix="bench-default-") as output_dir:
        trainer = core_trainer.build_trainer(output_dir)
        result = timed_training(trainer, steps=steps, warmup=warmup)
    return {
        **result,
        "recipe": "default (mean pooling, dynamic padding, length-grouped)",
        "precision": placement.precision,
        "device": placement.device.type,
        "batch_size": core_trainer.config.batch_size,  # automatic: as filled in for this set
        "max_length": max_length,
        "learning_rate": core_trainer.config.effective_learning_rate,
    }


def measure_textbook(
    tickets: pd.DataFrame, *, device: str, steps: int, warmup: int
) -> dict[str, Any]:
    """The tutorial recipe: pad to 128, batch 16, CLS pooler head, lr 2e-5, fp32, random order."""
    hf_set_seed(SEED)
    placement = resolve_placement(device, "fp32")
    source = resolve_model_source("default")
    tokenizer = load_tokenizer(source)
    labels = sorted(tickets["label"].unique().tolist())
    label_ids = {label: i for i, label in enumerate(labels)}
    model = AutoModelForSequenceClassification.from_pretrained(
        source, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=label_ids
    )
    encoded = tokenizer(
        tickets["text"].tolist(),
        padding="max_length",
        truncation=True,
        max_length=TEXTBOOK_MAX_LENGTH,
    )
    targets = [label_ids[label] for label in tickets["label"]]
    dataset = [
        {**{key: encoded[key][i] for key in encoded}, "labels": targets[i]}
        for i in range(len(tickets))
    ]
    on_cpu = placement.device.type == "cpu"
    with tempfile.TemporaryDirectory(prefix="bench-textbook-") as output_dir:
        args = TrainingArguments(
            output_dir=output_dir,
            per_device_train_batch_size=TEXTBOOK_BATCH_SIZE,
            learning_rate=TEXTBOOK_LEARNING_RATE,
            max_steps=warmup + steps,
            train_sampling_strategy="random",
            eval_strategy="no",
            save_strategy="no",
            report_to="none",
            disable_tqdm=True,
            use_cpu=on_cpu,
            dataloader_pin_memory=not on_cpu,
            remove_unused_columns=False,
            seed=SEED,
        )
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=dataset,
            data_collator=DataCollatorWithPadding(tokenizer),
            processing_class=tokenizer,
        )
        result = timed_training(trainer, steps=steps, warmup=warmup)
    return {
        **result,
        "recipe": "textbook (pad to 128, CLS pooler head)",
        "precision": "fp32",
        "device": placement.device.type,
        "batch_size": TEXTBOOK_BATCH_SIZE,
        "max_length": TEXTBOOK_MAX_LENGTH,
        "learning_rate": TEXTBOOK_LEARNING_RATE,
    }


def run_phase(args: argparse.Namespace) -> int:
    """Child process: one recipe, one JSON line."""
    table = load_table(args.data, text_columns(args), args.label, args.limit)
    tickets = prepared_tickets(table, text_columns(args), args.label)
    common = {"steps": args.steps, "warmup": args.warmup_steps, "device": args.device}
    if args.phase == "textbook":
        result = measure_textbook(tickets, **common)
    else:
        precision = args.phase.removeprefix("default-")
        result = measure_default(tickets, precision=precision, **common)
    emit_json({"phase": args.phase, **result, "peak_rss_mb": peak_rss_mb()})
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = common_parser(__doc__.split("\n\n")[0])
    add_data_arguments(parser, test_data=False)
    parser.add_argument("--steps", type=int, default=150, help="timed optimizer steps per recipe")
    parser.add_argument("--warmup-steps", type=int, default=5, help="untimed steps first (>= 1)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument(
        "--phases",
        help="which recipes to run, comma-separated, from: " + ", ".join(PHASES) + " (default: "
        "all, except default-bf16 on a CPU where core trains in fp32)",
    )
    parser.add_argument("--phase", choices=PHASES, help=argparse.SUPPRESS)  # child process
    args = parser.parse_args(argv)
    if args.steps < 1 or args.warmup_steps < 1:
        parser.error("--steps and --warmup-steps must be at least 1")
    if args.phase:
        return run_phase(args)

    machine = print_header("Training throughput: default recipe vs textbook recipe")
    auto = resolve_placement(args.device, "auto")  # what TrainConfig's precision="auto" picks
    default_phase = f"default-{auto.precision}"
    if args.phases is None:
        phases = list(PHASES)
        if auto.precision == "fp32" and auto.device.type == "cpu":
            # Without AMX / AVX-512-bf16 (or limited to AVX2) bf16 runs torch's reference
            # kernels: one 150-step phase took over 7 minutes on AVX2, against ~1 in fp32.
            phases.remove("default-bf16")
            print(
                "note: default-bf16 skipped: core trains in fp32 on this CPU (no fast bf16); "
                "--phases default-bf16,default-fp32,textbook times it anyway",
                file=sys.stderr,
            )
    else:
        phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    unknown = sorted(set(phases) - set(PHASES))
    if unknown:
        parser.error(f"unknown phases {unknown}; choose from {', '.join(PHASES)}")
    child_args = [*data_arguments(args, test_data=False), "--device", args.device]
    child_args += ["--steps", str(args.steps), "--warmup-steps", str(args.warmup_steps)]
    results: dict[str, dict[str, Any]] = {}
    for phase in phases:
        child = run_child(
            ["-m", "bench.bench_training", "--phase", phase, *child_args], what=f"phase {phase}"
        )
        results[phase] = {**child.payload, "peak_rss_mb": child.peak_rss_mb}

    rows = []
    for phase, r in results.items():
        name = phase + (" (auto pick)" if phase == default_phase else "")
        rows.append(
            (
                name,
                r["precision"],
                r["batch_size"],
                r["padded_tokens_per_ticket"],
                f"{r['padding_share']:.0%}",
                r["steps"],
                r["seconds"],
                r["tickets_per_s"],
                r["step_ms"]["p50_ms"],
                r["peak_rss_mb"],
            )
        )
    headers = ["recipe", "precision", "batch", "tokens/ticket", "padding", "steps", "seconds"]
    headers += ["tickets/s", "step p50 ms", "peak RSS MB"]
    print_table(f"training throughput ({args.steps} timed steps each)", headers, rows)

    def rate(phase: str) -> float | None:
        return results[phase]["tickets_per_s"] if phase in results else None

    def ratio(a: str, b: str) -> float | None:
        ra, rb = rate(a), rate(b)
        return round(ra / rb, 2) if ra and rb else None

    ratios = {
        "default_vs_textbook": ratio(default_phase, "textbook"),
        "bf16_vs_fp32": ratio("default-bf16", "default-fp32"),
    }
    print_table(
        "ratios (tickets/s)",
        ["comparison", "speed-up"],
        [
            (f"{default_phase} (project default) / textbook", ratios["default_vs_textbook"]),
            ("default bf16 / default fp32", ratios["bf16_vs_fp32"]),
        ],
    )
    targets = [
        Target(
            "default training throughput vs textbook",
            ratios["default_vs_textbook"],
            SPEEDUP_TARGET,
            True,
            "x",
        )
    ]
    print_targets(targets, limited=bool(args.limit))
    emit_json(
        {
            "bench": "training",
            "machine": machine,
            "data": str(args.data),
            "label": args.label,
            "limit": args.limit,
            "auto_precision": default_phase.removeprefix("default-"),
            "phases": results,
            "ratios": ratios,
            "targets": [t.as_dict() for t in targets],
        }
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
