"""Every training method on the same split: quality, time, trainable weights, storage, speed.

Why: the Train page offers quick, head, bitfit, lora, adapter, prompt and full; core/methods.py
states the gist of each ("LoRA: 0.3% of the weights train, within x points of full"). This
script measures those figures. Each method is trained with the command line in a fresh
process (``python -m core train … --method M``) on the same --data / --test-data with the same
seed, so every method sees the same train / validation / test tickets.

Reported per method: test macro-F1 and its distance to full (points), pipeline seconds,
trainable weights (count and share of all weights, as TicketTrainer.prepare_method leaves
them), what the method must store (its trained weights in fp32, MB: everything for full; the
LoRA/adapter/prompt/bias weights plus the head for the others; the head for quick), the saved
model folder (MB) and scoring speed (tickets/s, Predictor.predict_proba on the test tickets,
after one warm-up batch).

    python -m bench.bench_methods --label domain --limit 1500        # smoke (minutes)
    python -m bench.bench_methods --label intent                     # the real figures
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench.common import (
    OUT_DIR,
    add_data_arguments,
    common_parser,
    emit_json,
    load_table,
    print_table,
    text_columns,
    train_with_cli,
    write_csv,
)
from bench.machine import print_header

ALL_METHODS = "quick,head,bitfit,lora,adapter,prompt,full"
BYTES_PER_WEIGHT = 4  # fp32, as saved


def trainable_weights(method: str, labels: list[str], model: str = "default") -> dict[str, int]:
    """Weights that train under ``method`` (head over ``labels`` included) and all weights, as
    training sets them up (TicketTrainer.load + prepare_method on one ticket per label)."""
    import pandas as pd

    from core.config import TrainConfig
    from core.split import DataSplit
    from core.training import TicketTrainer

    frame = pd.DataFrame({"row": range(len(labels)), "text": "a ticket", "label": labels})
    steps = TicketTrainer(
        TrainConfig(model=model, method=method), DataSplit(frame, frame, frame, "x")
    )
    steps.load()
    if method != "quick":
        steps.prepare_method()
    params = list(steps.model.named_parameters())
    total = sum(p.numel() for _, p in params)
    if method == "quick":  # nothing is fine-tuned: only the fitted head is learned
        trained = sum(p.numel() for n, p in params if n.startswith("head."))
    else:
        trained = sum(p.numel() for _, p in params if p.requires_grad)
    if method == "lora":  # merged away before saving, but what LoRA itself must keep
        trained = sum(p.numel() for n, p in params if "lora_" in n or n.startswith("head."))
    return {"trainable": trained, "total": total}


def folder_mb(path: Path) -> float:
    return round(sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6, 2)


def scoring_speed(run_dir: Path, texts: list[str]) -> float:
    from core.inference import Predictor

    predictor = Predictor.load(run_dir)
    predictor.predict_proba(texts[:32])  # warm-up
    started = time.perf_counter()
    predictor.predict_proba(texts)
    return round(len(texts) / (time.perf_counter() - started), 1)


def main(argv: list[str] | None = None) -> int:
    parser = common_parser(__doc__.split("\n\n")[0])
    add_data_arguments(parser)
    parser.add_argument("--methods", default=ALL_METHODS, help="comma-separated")
    parser.add_argument("--epochs", type=float, default=3.0)
    parser.add_argument("--runs-dir", type=Path, default=OUT_DIR / "runs")
    args = parser.parse_args(argv)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    machine = print_header(f"Training methods compared ({args.label})")
    columns = text_columns(args)
    train_table = load_table(args.data, columns, args.label, args.limit)
    test_table = load_table(args.test_data, columns, args.label, args.limit)
    data = write_csv(train_table, OUT_DIR / "data" / f"methods-train-{args.label}.csv")
    test = write_csv(test_table, OUT_DIR / "data" / f"methods-test-{args.label}.csv")
    texts = [" ".join(map(str, row)) for row in test_table[list(columns)].to_numpy()]
    stamp = time.strftime("%Y%m%d-%H%M%S")
    results: dict[str, dict[str, Any]] = {}
    for method in methods:
        child = train_with_cli(
            data,
            test,
            columns,
            args.label,
            method=method,
            runs_dir=args.runs_dir,
            name=f"bench-methods-{method}-{stamp}",
            extra=["--epochs", str(args.epochs), "--min-count", "1"],
        )
        run_dir = Path(child.payload["run_dir"])
        weights = trainable_weights(method, sorted(train_table[args.label].astype(str).unique()))
        results[method] = {
            "macro_f1": child.payload["macro_f1"],
            "pipeline_seconds": child.payload["total_seconds"],
            "train_seconds": child.payload["train_seconds"],
            "trainable": weights["trainable"],
            "trainable_share": weights["trainable"] / weights["total"],
            "store_mb": round(weights["trainable"] * BYTES_PER_WEIGHT / 1e6, 2),
            "model_folder_mb": folder_mb(run_dir / "model"),
            "tickets_per_second": scoring_speed(run_dir, texts),
            "run_dir": str(run_dir),
        }
    full = results.get("full", {}).get("macro_f1")
    for r in results.values():
        r["points_vs_full"] = round((r["macro_f1"] - full) * 100, 2) if full else None
    print_table(
        f"methods on {args.label} ({len(test_table)} test tickets, {args.epochs:g} epochs)",
        [
            "method",
            "macro-F1",
            "vs full (pts)",
            "train s",
            "trainable",
            "share",
            "store MB",
            "folder MB",
            "tickets/s",
        ],
        [
            (
                m,
                r["macro_f1"],
                r["points_vs_full"],
                r["train_seconds"],
                r["trainable"],
                f"{r['trainable_share']:.2%}",
                r["store_mb"],
                r["model_folder_mb"],
                r["tickets_per_second"],
            )
            for m, r in results.items()
        ],
    )
    emit_json(
        {
            "bench": "methods",
            "machine": machine,
            "label": args.label,
            "limit": args.limit,
            "epochs": args.epochs,
            "methods": results,
        }
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
