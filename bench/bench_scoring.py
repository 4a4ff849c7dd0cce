"""Scoring: try-it latency, batch throughput, and whether the fast path agrees with fp32.

Why: the Try-it box must answer while the analyst types (one text at a time, through
``Predictor.predict([text])``), and batch scoring of a spreadsheet must not make them wait
(``Predictor.predict_proba`` on the whole test file: length-sorted batches of 128). On CPUs
with AMX / AVX-512-bf16 core scores batches with bf16 weights by default; that is only acceptable if
its predictions match fp32's, so agreement (share of identical argmax) is measured too.

Variants, each in a fresh process (clean memory peak, no shared caches):
  fast      — Predictor.load(run) + prepare_single_tickets(): what the app does (engine and
              precision chosen by core: ONNX Runtime fp32 on CPUs without fast bf16, torch
              with bf16 weights on AMX ones for batches and ONNX Runtime for one ticket)
  fp32      — Predictor.load(run, precision="fp32", engine="torch"): the reference
  torch     — torch at the default precision (bf16 autocast where the CPU is fast at it)
  onnx      — the run's ONNX export on ONNX Runtime's CPU provider, fp32
  onnx-int8 — that export after ORT dynamic int8 quantisation (QInt8 weights); adopted only
              if it keeps >= 99.5% of fp32's labels

Run with TICKETTUNE_CPU_ISA=avx2 (or bench/run_all.sh --isa avx2) to see an ordinary CPU;
ONNX Runtime cannot be limited that way, so its figures in that mode stay optimistic.

    python -m bench.bench_scoring --run bench/out/runs/<run>     # a trained run
    python -m bench.bench_scoring --limit 600                    # trains a quick run first
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.common import (
    Target,
    add_data_arguments,
    common_parser,
    emit_json,
    latency_stats,
    peak_rss_mb,
    print_table,
    print_targets,
    run_child,
    sample_texts,
    stopwatch,
    test_texts,
    text_columns,
    train_quick_run,
)
from bench.machine import print_header, target_column
from core.inference import Predictor
from core.modeling import META_FILE
from core.onnx_engine import OnnxEngine

VARIANTS = ("fast", "fp32", "torch", "onnx", "onnx-int8")
# Issue #10's targets by column (bench.machine.target_column): native (AVX-512) and AVX2.
P50_TARGET_MS = {"native": 5.0, "avx2": 15.0}
P95_TARGET_MS = {"native": 10.0, "avx2": 30.0}
THROUGHPUT_TARGET = {"native": 3000.0, "avx2": 1000.0}
AGREEMENT_TARGET = 0.995
LATENCY_WARMUP_CALLS = 20


def load_predictor(run: Path, variant: str) -> Predictor:
    """The Predictor as the app loads it, or one fixed engine / precision of it."""
    if variant == "fast":  # as ui/state.py: the predictor exports for single tickets if need be
        predictor = Predictor.load(run)
        export = predictor.prepare_single_tickets()
        if export is not None:
            export.join()
        return predictor
    if variant == "fp32":
        return Predictor.load(run, precision="fp32", engine="torch")
    if variant == "torch":
        return Predictor.load(run, engine="torch")
    predictor = Predictor.load(run, precision="fp32", engine="onnx")
    if predictor.onnx is None:
        raise SystemExit(f"error: the run {run} has no usable ONNX export (see model/onnx.json)")
    if variant == "onnx-int8":
        predictor.onnx = OnnxEngine(
            quantized_copy(predictor.onnx.path),
            predictor.tokenizer,
            max_length=predictor.meta.max_length,
            for_batches=True,  # as the app's engine for batches
        )
    return predictor


def quantized_copy(path: Path) -> Path:
    """ORT dynamic int8 quantisation of an export, written to a temporary folder."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    target = Path(tempfile.mkdtemp(prefix="bench-int8-")) / "model.int8.onnx"
    quantize_dynamic(str(path), str(target), weight_type=QuantType.QInt8)
    return target


def measure_variant(
    run: Path, variant: str, texts: list[str], calls: int, repeats: int
) -> tuple[dict[str, Any], np.ndarray]:
    """Load time, single-text latency (warm), batch throughput (best of ``repeats``)."""
    with stopwatch() as load:
        predictor = load_predictor(run, variant)
    singles = sample_texts(texts, LATENCY_WARMUP_CALLS + calls)
    seconds = []
    for i, text in enumerate(singles):
        started = time.perf_counter()
        predictor.predict([text])
        if i >= LATENCY_WARMUP_CALLS:
            seconds.append(time.perf_counter() - started)
    predictor.predict_proba(texts[:256])  # warm the batch shapes
    batch_seconds = []
    probabilities = np.zeros((0, 0))
    for _ in range(repeats):
        with stopwatch() as timing:
            probabilities = predictor.predict_proba(texts)
        batch_seconds.append(timing["seconds"])
    best = min(batch_seconds)
    result = {
        "variant": variant,
        "precision": "int8" if variant == "onnx-int8" else predictor.placement.precision,
        "engine": predictor.backend,
        "single_engine": predictor.single_backend,
        "load_seconds": round(load["seconds"], 2),
        "latency": latency_stats(seconds),
        "batch_tickets": len(texts),
        "batch_seconds": [round(s, 2) for s in batch_seconds],
        "tickets_per_s": round(len(texts) / best, 1),
        "torch_threads": torch.get_num_threads(),
    }
    return result, probabilities


def run_variant(args: argparse.Namespace) -> int:
    """Child process: one variant; probabilities go to --probs-out for the agreement check."""
    texts = test_texts(args)[0]
    result, probabilities = measure_variant(args.run, args.variant, texts, args.calls, args.repeats)
    np.save(args.probs_out, probabilities.astype(np.float32))
    emit_json({**result, "peak_rss_mb": peak_rss_mb()})
    return 0


def model_labels(run: Path) -> list[str]:
    """The model's label order, from its metadata (no need to load the weights here)."""
    folder = run / "model" if (run / "model" / META_FILE).exists() else run
    return list(json.loads((folder / META_FILE).read_text(encoding="utf-8"))["labels"])


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    return round(float((a.argmax(axis=1) == b.argmax(axis=1)).mean()), 4)


def accuracy(probabilities: np.ndarray, labels: list[str] | None, names: list[str]) -> float | None:
    if labels is None:
        return None
    predicted = np.asarray(names, dtype=object)[probabilities.argmax(axis=1)]
    return round(float((predicted == np.asarray(labels, dtype=object)).mean()), 4)


def main(argv: list[str] | None = None) -> int:
    parser = common_parser(__doc__.split("\n\n")[0])
    add_data_arguments(parser)
    parser.add_argument("--run", type=Path, help="run folder (default: train a quick run first)")
    parser.add_argument("--calls", type=int, default=200, help="timed single-text calls")
    parser.add_argument("--repeats", type=int, default=2, help="batch passes; the best counts")
    parser.add_argument(
        "--variants", default=",".join(VARIANTS), help=f"comma-separated, from: {VARIANTS}"
    )
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)  # child process
    parser.add_argument("--probs-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.variant:
        return run_variant(args)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if "fp32" not in variants:
        variants.append("fp32")  # the reference every agreement is measured against

    machine = print_header("Scoring: latency, batch throughput, agreement with fp32")
    run = args.run or train_quick_run(args)
    texts, labels = test_texts(args)
    names = model_labels(run)
    child_args = ["--run", str(run), "--test-data", str(args.test_data), "--label", args.label]
    for column in text_columns(args):
        child_args += ["--text", column]
    if args.limit:
        child_args += ["--limit", str(args.limit)]
    child_args += ["--calls", str(args.calls), "--repeats", str(args.repeats)]
    results: dict[str, dict[str, Any]] = {}
    probabilities: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory(prefix="bench-scoring-") as tmp:
        for variant in variants:
            out = Path(tmp) / f"{variant}.npy"
            argv = ["-m", "bench.bench_scoring", "--variant", variant, "--probs-out", str(out)]
            child = run_child(
                [*argv, *child_args],
                what=f"scoring variant {variant}",
            )
            results[variant] = {**child.payload, "peak_rss_mb": child.peak_rss_mb}
            probabilities[variant] = np.load(out)
    reference = probabilities["fp32"]
    for variant, probs in probabilities.items():
        results[variant]["agreement_with_fp32"] = agreement(probs, reference)
        results[variant]["max_abs_prob_diff"] = round(float(np.abs(probs - reference).max()), 4)
        results[variant]["accuracy"] = accuracy(probs, labels, names)

    rows = [
        (
            f"{v} ({r.get('engine', 'torch')} {r['precision']}"
            + (
                f"; one ticket: {r['single_engine']})" if r["single_engine"] != r["engine"] else ")"
            ),
            r["load_seconds"],
            r["latency"]["p50_ms"],
            r["latency"]["p95_ms"],
            r["latency"]["max_ms"],
            r["tickets_per_s"],
            f"{r['agreement_with_fp32']:.2%}",
            r["accuracy"],
            r["peak_rss_mb"],
        )
        for v, r in results.items()
    ]
    headers = ["variant", "load s", "p50 ms", "p95 ms", "max ms", "tickets/s", "same as fp32"]
    headers += ["accuracy", "peak RSS MB"]
    print_table(
        f"scoring ({args.calls} single calls; batch of {len(texts)} tickets)", headers, rows
    )

    fast = results.get("fast") or results["fp32"]
    int8 = results.get("onnx-int8")
    recommendation = None
    if int8 is not None:
        better = (
            int8["tickets_per_s"] > fast["tickets_per_s"]
            and int8["agreement_with_fp32"] >= AGREEMENT_TARGET
        )
        recommendation = (
            "ORT dynamic int8 is faster than the default path and agrees with fp32: worth offering"
            if better
            else f"ORT dynamic int8 keeps {int8['agreement_with_fp32']:.2%} of fp32's labels at "
            f"{int8['tickets_per_s']} tickets/s: not better than the default path, left off"
        )
        print(f"int8 verdict: {recommendation}\n")

    mode = target_column(machine)
    targets = [
        Target(
            "try-it latency p50 (fast path)",
            fast["latency"]["p50_ms"],
            P50_TARGET_MS[mode],
            False,
            " ms",
        ),
        Target(
            "try-it latency p95 (fast path)",
            fast["latency"]["p95_ms"],
            P95_TARGET_MS[mode],
            False,
            " ms",
        ),
        Target(
            "batch scoring throughput (fast path)",
            fast["tickets_per_s"],
            THROUGHPUT_TARGET[mode],
            True,
            " tickets/s",
        ),
        Target(
            "fast path agreement with fp32",
            fast["agreement_with_fp32"] * 100,
            AGREEMENT_TARGET * 100,
            True,
            " %",
        ),
    ]
    print_targets(targets, limited=bool(args.limit))
    emit_json(
        {
            "bench": "scoring",
            "machine": machine,
            "run": str(run),
            "test_data": str(args.test_data),
            "limit": args.limit,
            "variants": results,
            "int8_verdict": recommendation,
            "targets": [t.as_dict() for t in targets],
        }
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
