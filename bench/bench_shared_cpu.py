"""Shared CPU: training and scoring throughput next to one other CPU-bound process vs quiet.

Why: fine-tuning in the app slowed ~20x when one other busy process shared the 2 cores, where
fair sharing explains about 1.5-2x. The cause was OpenMP threads spinning while they wait for
a preempted sibling; core/threads.py makes them wait passively (and ONNX Runtime's threads do
not spin either). Target: >= 55% of the quiet throughput with one competitor (a fair share of
2 cores among 3 busy threads is ~67%).

Each measurement runs in a fresh process. Policies:
  passive — what core sets (OMP_WAIT_POLICY=PASSIVE)
  spin-N  — no wait policy, GNU OpenMP's spin count set to N (GOMP_SPINCOUNT): threads spin
            briefly, then sleep (a middle ground, measured against the two)
  default — the libraries' default spin-then-sleep waiting: the behaviour before the fix

    python -m bench.bench_shared_cpu                        # embedded model, CLINC150 tickets
    python -m bench.bench_shared_cpu --policies passive     # only what the app does
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import (
    Target,
    add_data_arguments,
    common_parser,
    emit_json,
    load_table,
    print_table,
    print_targets,
    run_child,
    text_columns,
)
from bench.machine import print_header

PHASES = ("train", "score")
POLICIES = ("passive", "default")
SHARE_TARGET = 0.55
COMPETITOR = "while True:\n    pass\n"
SCORING_PASSES = 3


# ------------------------------------------------------------------------ child: one phase


def _texts(args: argparse.Namespace, n: int) -> list[str]:
    table = load_table(args.data, text_columns(args), args.label, args.limit)
    texts = table[list(text_columns(args))].astype(str).agg("\n".join, axis=1).tolist()
    return (texts * (n // max(1, len(texts)) + 1))[:n]


def measure_training(args: argparse.Namespace) -> float:
    """Tickets/s of optimizer steps on the embedded model, batch 32, as the default recipe."""
    import torch
    from transformers import AutoModel

    from core.device import resolve_placement
    from core.modeling import TicketClassifier, load_tokenizer, resolve_model_source

    source = resolve_model_source("default")
    tokenizer = load_tokenizer(source)
    model = TicketClassifier(AutoModel.from_pretrained(source), 20).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5)
    placement = resolve_placement()
    texts = _texts(args, 32 * (args.steps + 2))

    def step(i: int) -> None:
        batch = tokenizer(texts[32 * i : 32 * (i + 1)], padding=True, return_tensors="pt")
        labels = torch.arange(32) % 20
        with placement.autocast():
            loss = model(batch["input_ids"], batch["attention_mask"], labels=labels)["loss"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    for i in range(2):
        step(i)
    started = time.perf_counter()
    for i in range(args.steps):
        step(i + 2)
    return 32 * args.steps / (time.perf_counter() - started)


def measure_scoring(args: argparse.Namespace) -> float:
    """Tickets/s of Predictor.predict_proba (the app's engine choice) on real tickets: the
    median of ``SCORING_PASSES`` passes (one pass of 2,000 tickets swung by ±10 points of the
    share between two runs of this script)."""
    from core.inference import Predictor

    predictor = Predictor.load(args.model_dir)
    texts = _texts(args, args.score_tickets)
    predictor.predict_proba(texts[:128])
    rates = []
    for _ in range(SCORING_PASSES):
        started = time.perf_counter()
        predictor.predict_proba(texts)
        rates.append(len(texts) / (time.perf_counter() - started))
    return float(np.median(rates))


def run_phase(args: argparse.Namespace) -> int:
    measure = measure_training if args.phase == "train" else measure_scoring
    emit_json({"phase": args.phase, "tickets_per_s": round(measure(args), 1)})
    return 0


# ------------------------------------------------------------------------ parent


def scoring_model(folder: Path) -> Path:
    """A model folder for the scoring phase: the embedded encoder and a seeded head.

    Speed does not depend on how well the head was trained.
    """
    import torch
    from transformers import AutoModel

    from core.modeling import (
        META_FILE,
        ModelMeta,
        TicketClassifier,
        load_tokenizer,
        resolve_model_source,
        save_classifier,
    )
    from core.onnx_engine import export_onnx

    if (folder / META_FILE).exists():
        return folder
    source = resolve_model_source("default")
    torch.manual_seed(0)
    model = TicketClassifier(AutoModel.from_pretrained(source), 20)
    meta = ModelMeta([f"label {i}" for i in range(20)], 128, "default", "full")
    save_classifier(model, load_tokenizer(source), meta, folder)
    export_onnx(folder)
    return folder


def measure(
    args: argparse.Namespace, phase: str, policy: str, competing: bool, model_dir: Path
) -> float:
    env_policy = "PASSIVE" if policy == "passive" else ""  # "" = library default (not set)
    spin = policy.removeprefix("spin-") if policy.startswith("spin-") else None
    argv = ["-m", "bench.bench_shared_cpu", "--phase", phase, "--model-dir", str(model_dir)]
    argv += ["--data", str(args.data), "--label", args.label, "--steps", str(args.steps)]
    argv += ["--score-tickets", str(args.score_tickets)]
    for column in text_columns(args):
        argv += ["--text", column]
    if args.limit:
        argv += ["--limit", str(args.limit)]
    previous = os.environ.get("OMP_WAIT_POLICY")
    os.environ["OMP_WAIT_POLICY"] = env_policy
    previous_spin = os.environ.pop("GOMP_SPINCOUNT", None)
    if spin is not None:
        os.environ["GOMP_SPINCOUNT"] = spin
    competitor = None
    try:
        if competing:
            competitor = subprocess.Popen([sys.executable, "-c", COMPETITOR])
        what = f"{phase}, {policy}, {'one competing process' if competing else 'quiet'}"
        return float(run_child(argv, what=what).payload["tickets_per_s"])
    finally:
        if competitor is not None:
            competitor.kill()
            competitor.wait()
        if previous is None:
            os.environ.pop("OMP_WAIT_POLICY", None)
        else:
            os.environ["OMP_WAIT_POLICY"] = previous
        os.environ.pop("GOMP_SPINCOUNT", None)
        if previous_spin is not None:
            os.environ["GOMP_SPINCOUNT"] = previous_spin


def main(argv: list[str] | None = None) -> int:
    parser = common_parser(__doc__.split("\n\n")[0])
    add_data_arguments(parser, test_data=False)
    parser.add_argument("--steps", type=int, default=20, help="timed training steps (batch 32)")
    parser.add_argument("--score-tickets", type=int, default=2000, help="tickets to score")
    parser.add_argument("--policies", default=",".join(POLICIES), help=f"from {POLICIES} or spin-N")
    parser.add_argument("--phases", default=",".join(PHASES), help=f"from {PHASES}")
    parser.add_argument("--phase", choices=PHASES, help=argparse.SUPPRESS)  # child process
    parser.add_argument("--model-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.phase:
        return run_phase(args)

    machine = print_header("Shared CPU: throughput next to one competing CPU-bound process")
    policies = [p for p in args.policies.split(",") if p in POLICIES or p.startswith("spin-")]
    phases = [p for p in args.phases.split(",") if p in PHASES]
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-shared-") as tmp:
        model_dir = scoring_model(Path(tmp) / "model") if "score" in phases else Path(tmp)
        for phase in phases:
            for policy in policies:
                quiet = measure(args, phase, policy, False, model_dir)
                shared = measure(args, phase, policy, True, model_dir)
                results[f"{phase}/{policy}"] = {
                    "quiet_tickets_per_s": quiet,
                    "shared_tickets_per_s": shared,
                    "share_of_quiet": round(shared / quiet, 3),
                }
    rows = [
        (key, r["quiet_tickets_per_s"], r["shared_tickets_per_s"], f"{r['share_of_quiet']:.0%}")
        for key, r in results.items()
    ]
    print_table(
        "throughput (tickets/s)", ["phase/policy", "quiet", "one competitor", "share"], rows
    )
    targets = [
        Target(
            f"{phase} throughput with one competitor, share of quiet",
            results[f"{phase}/passive"]["share_of_quiet"] * 100,
            SHARE_TARGET * 100,
            True,
            " %",
        )
        for phase in phases
        if f"{phase}/passive" in results
    ]
    print_targets(targets, limited=bool(args.limit))
    emit_json(
        {
            "bench": "shared_cpu",
            "machine": machine,
            "limit": args.limit,
            "results": results,
            "targets": [t.as_dict() for t in targets],
        }
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
