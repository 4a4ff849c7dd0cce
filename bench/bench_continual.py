"""Retrain with new tickets: forgetting with and without replay.

Splits the labels of --data in two: a first run learns the first half of the labels; then
"new tickets" arrive (the second half of the labels plus a few of the first half) and the
first run is retrained on them with ``python -m core train --from-run`` at each replay share.
Reported from metrics.json: macro-F1 on the earlier test tickets (previous_test), on the new
ones (new_test) and the forgetting (parent's macro-F1 on its test minus the new model's).

    python -m bench.bench_continual --label domain --limit 1500 --replay 0,0.5   # smoke
"""

from __future__ import annotations

import time

from bench.common import (
    OUT_DIR,
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
from core.runs import Run


def main(argv: list[str] | None = None) -> int:
    parser = common_parser(__doc__.split("\n\n")[0])
    add_data_arguments(parser, test_data=False)
    parser.add_argument("--replay", default="0,0.5", help="replay shares, comma-separated")
    parser.add_argument("--method", default="full")
    parser.add_argument("--epochs", type=float, default=2.0)
    args = parser.parse_args(argv)
    machine = print_header(f"Continual learning ({args.label})")
    columns = text_columns(args)
    table = load_table(args.data, columns, args.label, args.limit)
    labels = sorted(table[args.label].astype(str).unique())
    first = set(labels[: len(labels) // 2])
    is_first = table[args.label].astype(str).isin(first)
    old = table[is_first].sample(frac=1.0, random_state=0)
    earlier, later = old.iloc[: len(old) * 3 // 4], old.iloc[len(old) * 3 // 4 :]
    new = table[~is_first]
    import pandas as pd

    new = pd.concat([new, later.head(len(new) // 5)], ignore_index=True)
    earlier_file = write_csv(earlier, OUT_DIR / "data" / f"continual-earlier-{args.label}.csv")
    new_file = write_csv(new, OUT_DIR / "data" / f"continual-new-{args.label}.csv")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    runs_dir = OUT_DIR / "runs"
    parent = train_with_cli(
        earlier_file,
        None,
        columns,
        args.label,
        method=args.method,
        runs_dir=runs_dir,
        name=f"bench-continual-parent-{stamp}",
        extra=["--epochs", str(args.epochs), "--min-count", "1"],
    ).payload
    results = {}
    for share in [float(s) for s in args.replay.split(",") if s.strip()]:
        argv = ["-m", "core", "train", "--from-run", parent["run_dir"], "--data", str(new_file)]
        argv += ["--replay-fraction", str(share), "--method", args.method]
        argv += ["--epochs", str(args.epochs), "--runs-dir", str(runs_dir)]
        child = run_child(argv, what=f"retrain with replay {share}")
        metrics = Run(child.payload["run_dir"]).metrics()
        results[share] = {
            "previous_test_macro_f1": metrics["previous_test"]["macro_f1"],
            "new_test_macro_f1": metrics["new_test"]["macro_f1"],
            "forgetting": metrics["forgetting"],
            "train_seconds": child.payload["train_seconds"],
        }
    print_table(
        f"retraining on new labels (parent macro-F1 {parent['macro_f1']:.3f})",
        ["replay share", "earlier test F1", "new test F1", "forgetting", "train s"],
        [
            (
                k,
                r["previous_test_macro_f1"],
                r["new_test_macro_f1"],
                r["forgetting"],
                r["train_seconds"],
            )
            for k, r in results.items()
        ],
    )
    emit_json({"bench": "continual", "machine": machine, "parent": parent, "replay": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
