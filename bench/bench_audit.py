"""Label audit: does it find wrong labels, and how long does it take?

Why: the Review page sends the analyst to the tickets the audit ranks most suspicious, so the
wrong labels must be near the top. Two noisy copies of the data, each with 5% of the labels
flipped (seeded):

  (a) random — to a random other label (typos, careless clicks);
  (b) confusion — to the label a clean out-of-fold model ranks second for that ticket (an
      annotator mixing up similar labels: the hard case, the flipped label looks plausible).

The audit (core.audit.audit_labels: the quick model's frozen embeddings, k-fold logistic
regression, blended with the keyword baseline, cleanlab's label-quality score over every
ticket) ranks all tickets; reported are recall and precision within the top 1.5 x (number
flipped), for the default configuration and, from the same out-of-fold fits, for the other
blends and cleanlab scoring methods (so the default's choice is visible). Wall time covers what
the audit itself does: embedding + out-of-fold fits + ranking.

It also measures the near-duplicate threshold (core.near_duplicates.DEFAULT_THRESHOLD): for
each ticket, its most similar other ticket and whether that one has the same label.

    python -m bench.bench_audit                          # CLINC150 intent, full data
    python -m bench.bench_audit --limit 3000             # smoke
    ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 ATEN_CPU_CAPABILITY=avx2 \\
        python -m bench.bench_audit --precision fp32     # an AVX2-only CPU
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from typing import Any

import numpy as np

from bench.common import (
    SEED,
    Target,
    add_data_arguments,
    common_parser,
    emit_json,
    load_table,
    prepared_tickets,
    print_table,
    print_targets,
    stopwatch,
    text_columns,
)
from bench.machine import print_header
from core.audit import SCORING_METHODS, AuditConfig, embed_texts, out_of_fold, rank_tickets
from core.near_duplicates import nearest_similarities

FLIP_RATE = 0.05
TOP_FACTOR = 1.5
TARGETS = {"random": 0.95, "confusion": 0.80}
KEYWORD_WEIGHTS = (0.0, 0.3, 0.5, 0.7)
THRESHOLDS = (0.85, 0.9, 0.95, 0.97, 0.99)
ISA_ENV = (
    "ONEDNN_MAX_CPU_ISA",
    "MKL_ENABLE_INSTRUCTIONS",
    "ATEN_CPU_CAPABILITY",
    "OPENBLAS_CORETYPE",
)


def flip_labels(
    labels: np.ndarray, classes: list[str], clean_probs: np.ndarray, kind: str, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """A copy of ``labels`` with FLIP_RATE of them changed; returns (noisy, flipped indices)."""
    rng = np.random.default_rng(seed)
    n_flip = round(FLIP_RATE * len(labels))
    flipped = np.sort(rng.choice(len(labels), n_flip, replace=False))
    noisy = labels.copy()
    index = {label: i for i, label in enumerate(classes)}
    for i in flipped:
        if kind == "random":
            others = [c for c in classes if c != labels[i]]
            noisy[i] = others[rng.integers(len(others))]
        else:
            probs = clean_probs[i].copy()
            probs[index[labels[i]]] = -1.0
            noisy[i] = classes[int(probs.argmax())]
    return noisy, flipped


def recall_precision(ranked_rows: np.ndarray, flipped: np.ndarray) -> tuple[float, float]:
    top = set(ranked_rows[: round(TOP_FACTOR * len(flipped))].tolist())
    hits = len(top & set(flipped.tolist()))
    return hits / len(flipped), hits / len(top)


def isa_check() -> dict[str, Any]:
    """What the ISA limits did: ATen's kernel level, and the instruction set MKL and oneDNN
    report for an fp32 linear layer (in a child: both read their settings once per process)."""
    import torch

    code = "import torch; a = torch.randn(256, 256); torch.nn.functional.linear(a, a)"
    env = {**os.environ, "ONEDNN_VERBOSE": "1", "MKL_VERBOSE": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    text = out.stdout + out.stderr
    mkl = re.search(r"(Intel\(R\) [^,]*?(?:AVX[^,]*?|Advanced Vector Extensions[^,]*))(?:,|$)",
                    text, re.MULTILINE)  # fmt: skip
    onednn = next((line.split("isa:")[1] for line in text.splitlines() if "isa:" in line), None)
    from threadpoolctl import threadpool_info

    openblas = sorted({d.get("architecture") or "?" for d in threadpool_info()
                       if d.get("internal_api") == "openblas"})  # fmt: skip
    return {
        "openblas_kernels": ", ".join(openblas) or "(no OpenBLAS loaded)",
        "aten_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "mkl_isa": mkl.group(1).strip() if mkl else "(MKL did not report)",
        "onednn_isa": onednn or "(oneDNN not used for an fp32 linear layer)",
        "env": {name: os.environ.get(name) for name in ISA_ENV},
    }


def main(argv: list[str] | None = None) -> int:
    parser = common_parser(__doc__.split("\n\n")[0])
    add_data_arguments(parser, test_data=False)
    parser.add_argument("--folds", type=int, default=AuditConfig.folds)
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"))
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    info = print_header("Label audit (suspicious labels)")
    isa = isa_check()
    print(f"ISA: ATen {isa['aten_cpu_capability']}; MKL {isa['mkl_isa']}; "
          f"OpenBLAS (scikit-learn) {isa['openblas_kernels']}", flush=True)  # fmt: skip

    columns = text_columns(args)
    frame = prepared_tickets(load_table(args.data, columns, args.label, args.limit), columns,
                             args.label)  # fmt: skip
    frame = frame.assign(row=np.arange(len(frame)))  # positions: what the flips index
    texts = frame["text"].tolist()
    labels = frame["label"].astype(str).to_numpy(dtype=object)
    config = AuditConfig(folds=args.folds, seed=args.seed)
    print(f"{len(frame)} tickets, {len(set(labels))} labels", file=sys.stderr, flush=True)

    with stopwatch() as embed_time:
        embeddings = embed_texts(texts, config.model, precision=args.precision)
    print(f"embedded in {embed_time['seconds']:.0f} s", file=sys.stderr, flush=True)
    clean = out_of_fold(embeddings, texts, labels, AuditConfig(keyword_weight=0.0, seed=SEED))

    rows, results = [], {}
    for k, kind in enumerate(("random", "confusion")):
        noisy, flipped = flip_labels(labels, clean.classes, clean.embedding, kind, args.seed + k)
        with stopwatch() as fit_time:
            parts = out_of_fold(embeddings, texts, noisy, config)
            default = rank_tickets(frame.assign(label=noisy), parts.blend(config.keyword_weight),
                                   parts.classes, method=config.method)  # fmt: skip
        recall, precision = recall_precision(default["row"].to_numpy(), flipped)
        seconds = embed_time["seconds"] + fit_time["seconds"]
        results[kind] = {"recall": recall, "precision": precision, "wall_seconds": seconds,
                         "n_flipped": len(flipped), "variants": {}}  # fmt: skip
        rows.append((kind, "default", config.keyword_weight, config.method, recall, precision,
                     round(seconds, 1)))  # fmt: skip
        for weight in KEYWORD_WEIGHTS:
            for method in SCORING_METHODS:
                ranked = rank_tickets(frame.assign(label=noisy), parts.blend(weight),
                                      parts.classes, method=method)  # fmt: skip
                r, p = recall_precision(ranked["row"].to_numpy(), flipped)
                results[kind]["variants"][f"kw{weight}-{method}"] = {"recall": r, "precision": p}
                rows.append((kind, "", weight, method, r, p, ""))
    print_table(
        f"flipped labels found within the top {TOP_FACTOR} x flipped ({args.folds} folds)",
        ["noise", "", "keyword weight", "cleanlab score", "recall", "precision", "wall s"],
        rows,
    )

    nearest = nearest_similarities(embeddings, labels)
    threshold_rows = []
    for t in THRESHOLDS:
        above = nearest[nearest["similarity"] >= t]
        same = float(above["same_label"].mean()) if len(above) else float("nan")
        threshold_rows.append((t, len(above), round(same, 3)))
    print_table(
        "nearest other ticket: tickets at or above a cosine, and how many share its label",
        ["cosine", "tickets", "same label"],
        threshold_rows,
    )

    targets = [
        Target(f"recall@1.5x, {kind}", results[kind]["recall"], TARGETS[kind], True)
        for kind in TARGETS
    ]
    print_targets(targets, limited=bool(args.limit))
    emit_json(
        {
            "bench": "audit",
            "n_tickets": len(frame),
            "embed_seconds": embed_time["seconds"],
            "precision": args.precision,
            "isa": isa,
            "results": results,
            "thresholds": threshold_rows,
            "machine": info,
        }
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
