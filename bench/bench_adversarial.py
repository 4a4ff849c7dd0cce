"""Adversarial training (FGM): does it keep the model steadier on typo-ridden tickets?

Trains the same method twice with the command line, without and with ``--adversarial``, on
the same split, then scores the clean test file and a perturbed copy of it
(bench/perturb_tickets.py: typos, dropped and swapped letters, casing, extra spaces; seeded)
with ``python -m core evaluate``. Reported: macro-F1 clean / perturbed for both, the drop
under perturbation, and the training time each took.

    python -m bench.bench_adversarial --label domain --limit 1500          # smoke
    python -m bench.bench_adversarial --label intent --rate 0.1
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from bench.common import (
    OUT_DIR,
    REPO_ROOT,
    add_data_arguments,
    common_parser,
    emit_json,
    load_table,
    print_table,
    run_child,
    text_columns,
    train_with_cli,
    write_csv,
)
from bench.machine import print_header


def evaluate(run_dir: str, data: Path, columns, label: str) -> float:
    argv = ["-m", "core", "evaluate", run_dir, "--data", str(data), "--label-column", label]
    for column in columns:
        argv += ["--text-column", column]
    return run_child(argv, what="evaluate").payload["macro_f1"]


def main(argv: list[str] | None = None) -> int:
    parser = common_parser(__doc__.split("\n\n")[0])
    add_data_arguments(parser)
    parser.add_argument("--method", default="full")
    parser.add_argument("--epochs", type=float, default=3.0)
    parser.add_argument("--rate", type=float, default=0.1, help="share of letters perturbed")
    parser.add_argument("--seed", type=int, default=0, help="perturbation seed")
    args = parser.parse_args(argv)
    machine = print_header(f"Adversarial training ({args.label})")
    columns = text_columns(args)
    data = write_csv(
        load_table(args.data, columns, args.label, args.limit),
        OUT_DIR / "data" / f"adv-train-{args.label}.csv",
    )
    clean = write_csv(
        load_table(args.test_data, columns, args.label, args.limit),
        OUT_DIR / "data" / f"adv-test-{args.label}.csv",
    )
    perturbed = OUT_DIR / "data" / f"adv-test-{args.label}-perturbed.csv"
    perturb = [str(REPO_ROOT / "bench" / "perturb_tickets.py"), str(clean), str(perturbed)]
    perturb += ["--seed", str(args.seed), "--rate", str(args.rate)]
    for column in columns:
        perturb += ["--text-column", column]
    import subprocess

    subprocess.run([sys.executable, *perturb], check=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    results = {}
    for name, extra in (("plain", []), ("adversarial", ["--adversarial"])):
        child = train_with_cli(
            data,
            clean,
            columns,
            args.label,
            method=args.method,
            runs_dir=OUT_DIR / "runs",
            name=f"bench-adv-{name}-{stamp}",
            extra=["--epochs", str(args.epochs), "--min-count", "1", *extra],
        )
        run_dir = child.payload["run_dir"]
        clean_f1 = child.payload["macro_f1"]
        noisy_f1 = evaluate(run_dir, perturbed, columns, args.label)
        results[name] = {
            "clean_macro_f1": clean_f1,
            "perturbed_macro_f1": noisy_f1,
            "drop_points": round((clean_f1 - noisy_f1) * 100, 2),
            "train_seconds": child.payload["train_seconds"],
            "run_dir": run_dir,
        }
    print_table(
        f"{args.method} with and without FGM ({args.label}, perturbation rate {args.rate})",
        ["training", "clean F1", "perturbed F1", "drop (pts)", "train s"],
        [
            (k, r["clean_macro_f1"], r["perturbed_macro_f1"], r["drop_points"], r["train_seconds"])
            for k, r in results.items()
        ],
    )
    emit_json(
        {
            "bench": "adversarial",
            "machine": machine,
            "label": args.label,
            "limit": args.limit,
            "rate": args.rate,
            "results": results,
        }
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
