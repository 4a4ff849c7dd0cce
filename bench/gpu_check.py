"""GPU check: the default training with mixed precision on a CUDA GPU — speed, memory, quality.

Why: the app picks the GPU and bf16/fp16 by itself (core.device) when there is one; this
check shows that path works end to end and what it gives, in a few minutes: training
throughput of the default recipe (as bench_training measures it), peak GPU memory
(torch.cuda.max_memory_allocated) and the test macro-F1 of a complete default run through
core.pipeline.execute. A safety time budget (--time-budget, minutes) keeps the run short even
on a slow GPU; the Trainer then stops at the best checkpoint, and the stop reason says so.

Data: CLINC150 intent from ../shared/data by default; when those files are not there (the
shared folder may not travel to a GPU machine) it falls back to assets/sample_tickets.csv
(subject + body, label category). Use bench/gpu_check.sh, which also bounds the wall time.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from typing import Any

import torch

from bench.bench_training import measure_default
from bench.common import (
    OUT_DIR,
    REPO_ROOT,
    add_data_arguments,
    common_parser,
    emit_json,
    load_table,
    prepared_tickets,
    print_table,
    text_columns,
)
from bench.machine import print_header
from core.config import TrainConfig
from core.pipeline import TrainingRequest, execute
from core.progress import ProgressEvent
from core.runs import RunStore
from core.schema import LabelScheme

SAMPLE_DATA = REPO_ROOT / "assets" / "sample_tickets.csv"
SAMPLE_TEXT_COLUMNS = ["subject", "body"]
SAMPLE_LABEL = "category"
NO_GPU_EXIT = 2


def choose_data(args: argparse.Namespace) -> None:
    """Fall back to the bundled sample tickets when the CLINC files did not travel."""
    if args.data.is_file():
        if args.test_data is not None and not args.test_data.is_file():
            print(f"note: no {args.test_data}; the pipeline holds back a test set", file=sys.stderr)
            args.test_data = None
        return
    print(
        f"note: no {args.data}; using {SAMPLE_DATA.relative_to(REPO_ROOT)} "
        f"(text {' + '.join(SAMPLE_TEXT_COLUMNS)}, label {SAMPLE_LABEL})",
        file=sys.stderr,
    )
    args.data, args.test_data = SAMPLE_DATA, None
    args.text_columns, args.label = SAMPLE_TEXT_COLUMNS, SAMPLE_LABEL


def print_progress(event: ProgressEvent) -> None:
    if event.message:
        print(f"  {event.message}", file=sys.stderr, flush=True)


def gpu_memory_gb() -> float | None:
    return round(torch.cuda.max_memory_allocated() / 1e9, 2) if torch.cuda.is_available() else None


def reset_gpu_peak() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def full_run(args: argparse.Namespace) -> dict[str, Any]:
    """A complete default run (baseline, quick model, fine-tuning, test scoring, saving)."""
    columns = text_columns(args)
    table = load_table(args.data, columns, args.label, args.limit)
    test_table = (
        load_table(args.test_data, columns, args.label, args.limit) if args.test_data else None
    )
    request = TrainingRequest(
        table=table,
        scheme=LabelScheme(text_columns=columns, label_column=args.label),
        config=TrainConfig(time_budget_minutes=args.time_budget),
        test_table=test_table,
        source_name=args.data.name,
        test_source_name=args.test_data.name if args.test_data else "",
    )
    store = RunStore(OUT_DIR / "gpu-runs")
    run = store.create(f"gpu-check-{time.strftime('%Y%m%d-%H%M%S')}")
    result = execute(run, request, print_progress, threading.Event())
    training = run.read_json("metrics.json")["training"]
    return {**result, "steps": training["steps"], "device": training["device"]}


def main(argv: list[str] | None = None) -> int:
    parser = common_parser(__doc__.split("\n\n")[0])
    add_data_arguments(parser)
    parser.add_argument("--steps", type=int, default=150, help="timed steps (throughput)")
    parser.add_argument("--warmup-steps", type=int, default=10, help="untimed steps first")
    parser.add_argument(
        "--time-budget", type=float, default=4.0, help="minutes of fine-tuning at most"
    )
    parser.add_argument("--allow-cpu", action="store_true", help=argparse.SUPPRESS)  # dev only
    args = parser.parse_args(argv)
    if not torch.cuda.is_available() and not args.allow_cpu:
        print(
            "gpu_check: no CUDA GPU here (torch.cuda.is_available() is False; torch "
            f"{torch.__version__}, built for CUDA {torch.version.cuda}). Nothing to check: run "
            "it on a machine with an NVIDIA GPU and a CUDA build of torch.",
            file=sys.stderr,
        )
        return NO_GPU_EXIT
    device = "cuda" if torch.cuda.is_available() else "cpu"
    choose_data(args)
    machine = print_header("GPU check: default training with mixed precision")

    tickets = prepared_tickets(
        load_table(args.data, text_columns(args), args.label, args.limit),
        text_columns(args),
        args.label,
    )
    reset_gpu_peak()
    speed = measure_default(
        tickets, precision="auto", device=device, steps=args.steps, warmup=args.warmup_steps
    )
    speed["peak_gpu_memory_gb"] = gpu_memory_gb()

    reset_gpu_peak()
    started = time.perf_counter()
    run = full_run(args)
    run["wall_seconds"] = round(time.perf_counter() - started, 1)
    run["peak_gpu_memory_gb"] = gpu_memory_gb()

    print_table(
        f"default training on {speed['device']} ({speed['precision']}), label {args.label}",
        ["measure", "value"],
        [
            ("training throughput (tickets/s)", speed["tickets_per_s"]),
            ("peak GPU memory, throughput phase (GB)", speed["peak_gpu_memory_gb"]),
            ("peak GPU memory, full run (GB)", run["peak_gpu_memory_gb"]),
            ("test macro-F1 (default)", run["macro_f1"]),
            ("test accuracy (default)", run["accuracy"]),
            ("test macro-F1 (quick)", run["quick_macro_f1"]),
            ("test macro-F1 (TF-IDF baseline)", run["baseline_macro_f1"]),
            ("full run: pipeline seconds", run["total_seconds"]),
            ("full run: optimizer steps", run["steps"]),
            ("full run: stop reason", run["stop_reason"]),
        ],
    )
    emit_json(
        {
            "bench": "gpu_check",
            "machine": machine,
            "data": str(args.data),
            "label": args.label,
            "throughput": speed,
            "full_run": run,
        }
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
