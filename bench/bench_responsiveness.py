"""Responsiveness: try-it latency while a training job runs in the same process.

Why: in the app, an analyst keeps using the Try-it box (``Predictor.predict([text])`` on the
page's thread) while a model trains in the background (``core.jobs.JobManager`` running
``core.pipeline.execute`` on its worker thread). Both share the process, the GIL and the CPU
cores; if training starves the Try-it box, the app feels frozen.

Per remedy, in a fresh process: load the predictor, measure idle latency, submit the default
training (TrainConfig(), method full) on a stratified subset of ``--tickets`` tickets, wait
until the Trainer is stepping, let it train alone for ``--quiet-seconds`` (training speed with
nobody waiting), then call ``predict`` on one text every ``--interval`` seconds for
``--seconds`` seconds (latency p50/p95/max, and training speed meanwhile), then cancel the job.

Remedies (what each would change in core; results in bench/RESULTS.md):
  as-is                  — what core does today: both threads use torch's default thread count
  try-it-1-thread        — the try-it thread scores with torch.set_num_threads(1)
  split-cores            — training thread uses cores-1 threads, try-it thread 1
  try-it-1-thread+switch — try-it-1-thread plus sys.setswitchinterval(1 ms) (GIL hand-over)

    python -m bench.bench_responsiveness --run bench/out/runs/<run>
    python -m bench.bench_responsiveness --label domain --limit 600 --tickets 1000 \\
        --seconds 10 --quiet-seconds 3 --remedies as-is          # smoke
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from bench.common import (
    Target,
    add_data_arguments,
    common_parser,
    data_arguments,
    emit_json,
    latency_stats,
    load_table,
    peak_rss_mb,
    print_table,
    print_targets,
    run_child,
    sample_texts,
    test_texts,
    text_columns,
    train_quick_run,
)
from bench.machine import print_header, usable_cores
from core.config import TrainConfig
from core.inference import Predictor
from core.jobs import JobManager, JobSnapshot
from core.pipeline import TrainingRequest, execute
from core.progress import ProgressCallback
from core.runs import Run, RunStore
from core.schema import LabelScheme

BUSY_P95_TARGET_MS = 150.0
IDLE_CALLS = 100
WARMUP_CALLS = 20
START_TIMEOUT_S = 900.0


@dataclass(frozen=True)
class Remedy:
    """Thread settings for the try-it thread and the training thread (None: torch default)."""

    description: str
    try_it_threads: int | None = None
    train_threads: int | None = None
    switch_interval_s: float | None = None


def remedies() -> dict[str, Remedy]:
    cores = usable_cores()
    return {
        "as-is": Remedy("core today: both threads use torch's default thread count"),
        "try-it-1-thread": Remedy("try-it thread: torch.set_num_threads(1)", try_it_threads=1),
        "split-cores": Remedy(
            f"training thread {max(1, cores - 1)} torch thread(s), try-it thread 1",
            try_it_threads=1,
            train_threads=max(1, cores - 1),
        ),
        "try-it-1-thread+switch": Remedy(
            "try-it 1 thread + sys.setswitchinterval(0.001)",
            try_it_threads=1,
            switch_interval_s=0.001,
        ),
    }


def wait_for_training(manager: JobManager, run_id: str) -> JobSnapshot:
    """Block until the Trainer has taken its first step (after baseline and quick model)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        snapshot = manager.snapshot(run_id)
        if snapshot.finished:
            raise RuntimeError(f"the job ended before training started: {snapshot.reason}")
        if snapshot.stage == "training" and snapshot.step > 0:
            return snapshot
        time.sleep(0.05)
    raise RuntimeError(f"training did not start within {START_TIMEOUT_S:.0f} s")


def training_rate(manager: JobManager, run_id: str, seconds: float, batch: int) -> dict:
    """Training speed with no try-it calls: steps (x batch) per second over ``seconds``."""
    first, started = manager.snapshot(run_id), time.monotonic()
    time.sleep(seconds)
    last, elapsed = manager.snapshot(run_id), time.monotonic() - started
    steps = last.step - first.step
    return {"seconds": round(elapsed, 1), "steps": steps, "tickets_per_s": steps * batch / elapsed}


def try_it_under_load(
    predictor: Predictor,
    texts: list[str],
    manager: JobManager,
    run_id: str,
    *,
    seconds: float,
    interval: float,
    batch: int,
) -> tuple[list[float], dict[str, Any]]:
    """Score one text every ``interval`` s while the job trains; stops early if training ends."""
    latencies: list[float] = []
    first, started = manager.snapshot(run_id), time.monotonic()
    last = first
    i = 0
    while time.monotonic() - started < seconds:
        last = manager.snapshot(run_id)
        if last.finished or last.stage != "training":
            print("warning: training ended before the window did", file=sys.stderr)
            break
        t0 = time.perf_counter()
        predictor.predict([texts[i % len(texts)]])
        latencies.append(time.perf_counter() - t0)
        i += 1
        time.sleep(interval)
    elapsed = time.monotonic() - started
    steps = last.step - first.step
    speed = {"seconds": round(elapsed, 1), "steps": steps, "tickets_per_s": steps * batch / elapsed}
    return latencies, speed


def run_remedy(args: argparse.Namespace) -> int:
    """Child process: one remedy, one JSON line."""
    remedy = remedies()[args.remedy]
    default_threads = torch.get_num_threads()
    if remedy.switch_interval_s is not None:
        sys.setswitchinterval(remedy.switch_interval_s)
    if remedy.try_it_threads is not None:
        torch.set_num_threads(remedy.try_it_threads)  # this (main) thread is the try-it thread
    train_threads = remedy.train_threads or default_threads

    predictor = Predictor.load(args.run)
    texts = sample_texts(test_texts(args)[0], WARMUP_CALLS + IDLE_CALLS + 2000)
    for text in texts[:WARMUP_CALLS]:
        predictor.predict([text])
    idle = []
    for text in texts[WARMUP_CALLS : WARMUP_CALLS + IDLE_CALLS]:
        t0 = time.perf_counter()
        predictor.predict([text])
        idle.append(time.perf_counter() - t0)

    columns = text_columns(args)
    tickets = min(args.tickets, args.limit) if args.limit else args.tickets
    table = load_table(args.data, columns, args.label, tickets)
    config = TrainConfig()
    # The automatic batch size the job will use (the pipeline holds back validation and test).
    share = 1 - config.validation_fraction - config.test_fraction
    batch = config.for_training_set(int(len(table) * share)).batch_size
    request = TrainingRequest(
        table=table,
        scheme=LabelScheme(text_columns=columns, label_column=args.label),
        config=config,
        source_name=Path(args.data).name,
    )

    def train_fn(
        run: Run, request: TrainingRequest, progress: ProgressCallback, cancel: threading.Event
    ) -> dict[str, Any]:
        torch.set_num_threads(train_threads)  # the job's worker thread: its own thread budget
        return execute(run, request, progress, cancel)

    with tempfile.TemporaryDirectory(prefix="bench-responsiveness-") as runs_root:
        manager = JobManager(RunStore(runs_root), train_fn)
        run_id = manager.submit(request, name="bench-responsiveness")
        try:
            wait_for_training(manager, run_id)
            alone = training_rate(manager, run_id, args.quiet_seconds, batch)
            busy, during = try_it_under_load(
                predictor,
                texts[WARMUP_CALLS + IDLE_CALLS :],
                manager,
                run_id,
                seconds=args.seconds,
                interval=args.interval,
                batch=batch,
            )
        finally:
            manager.cancel(run_id)
            manager.wait(run_id, timeout=300)
            manager.shutdown(wait=True)
    emit_json(
        {
            "remedy": args.remedy,
            **asdict(remedy),
            "train_threads": train_threads,
            "try_it_threads": remedy.try_it_threads or default_threads,
            "idle": latency_stats(idle),
            "busy": latency_stats(busy),
            "training_alone": alone,
            "training_during_calls": during,
            "peak_rss_mb": peak_rss_mb(),
        }
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = common_parser(__doc__.split("\n\n")[0])
    add_data_arguments(parser)
    parser.add_argument("--run", type=Path, help="run folder (default: train a quick run first)")
    parser.add_argument(
        "--tickets", type=int, default=5000, help="tickets the background job trains on"
    )
    parser.add_argument("--seconds", type=float, default=60.0, help="try-it window length")
    parser.add_argument(
        "--quiet-seconds", type=float, default=15.0, help="training alone, before the window"
    )
    parser.add_argument("--interval", type=float, default=0.1, help="pause between calls (s)")
    parser.add_argument(
        "--remedies", default=",".join(remedies()), help="comma-separated, from the list above"
    )
    parser.add_argument("--remedy", choices=tuple(remedies()), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.remedy:
        return run_remedy(args)
    chosen = [r.strip() for r in args.remedies.split(",") if r.strip()]
    unknown = sorted(set(chosen) - set(remedies()))
    if unknown:
        parser.error(f"unknown remedies {unknown}; choose from {', '.join(remedies())}")

    machine = print_header("Responsiveness: try-it latency while training in the background")
    run = args.run or train_quick_run(args)
    child_args = [*data_arguments(args), "--run", str(run), "--tickets", str(args.tickets)]
    child_args += ["--seconds", str(args.seconds), "--quiet-seconds", str(args.quiet_seconds)]
    child_args += ["--interval", str(args.interval)]
    results: dict[str, dict[str, Any]] = {}
    for name in chosen:
        child = run_child(
            ["-m", "bench.bench_responsiveness", "--remedy", name, *child_args],
            what=f"remedy {name}",
        )
        results[name] = {**child.payload, "peak_rss_mb": child.peak_rss_mb}

    rows = [
        (
            name,
            f"{r['try_it_threads']}/{r['train_threads']}",
            r["idle"]["p50_ms"],
            r["idle"]["p95_ms"],
            r["busy"]["p50_ms"],
            r["busy"]["p95_ms"],
            r["busy"]["max_ms"],
            r["busy"]["n"],
            round(r["training_alone"]["tickets_per_s"], 1),
            round(r["training_during_calls"]["tickets_per_s"], 1),
        )
        for name, r in results.items()
    ]
    headers = ["remedy", "threads try/train", "idle p50", "idle p95", "busy p50", "busy p95"]
    headers += ["busy max", "calls", "train t/s alone", "train t/s w/ calls"]
    print_table(
        f"try-it latency in ms (one call every {args.interval} s for {args.seconds:.0f} s)",
        headers,
        rows,
    )
    targets = [
        Target(
            f"try-it p95 while training ({name})",
            r["busy"]["p95_ms"],
            BUSY_P95_TARGET_MS,
            False,
            " ms",
        )
        for name, r in results.items()
    ]
    print_targets(targets, limited=bool(args.limit))
    emit_json(
        {
            "bench": "responsiveness",
            "machine": machine,
            "run": str(run),
            "tickets": args.tickets,
            "seconds": args.seconds,
            "interval": args.interval,
            "remedies": results,
            "targets": [t.as_dict() for t in targets],
        }
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
