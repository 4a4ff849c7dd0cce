"""Distillation: how much faster the student scores and how much macro-F1 it keeps.

Trains a teacher with the command line (or takes one with --run), then distils it with
``python -m core train --distill-from RUN --student-layers K`` for each K, on the teacher's own
split (same test tickets). Reported from each student's metrics.json["distillation"]: teacher
and student macro-F1, share kept, tickets/s of both on the test tickets and the speed-up.

    python -m bench.bench_distill --label domain --limit 1500 --layers 2,3   # smoke
    python -m bench.bench_distill --run runs/<a full run> --layers 2,3
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

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
    add_data_arguments(parser)
    parser.add_argument("--run", type=Path, help="a trained teacher run (default: train one)")
    parser.add_argument("--layers", default="2,3", help="student layer counts, comma-separated")
    parser.add_argument("--epochs", type=float, default=3.0)
    parser.add_argument(
        "--unlabelled-rest",
        action="store_true",
        help="also distil on the tickets of --data the teacher never saw, without their labels",
    )
    args = parser.parse_args(argv)
    machine = print_header(f"Distillation ({args.label})")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    runs_dir = OUT_DIR / "runs"
    teacher = args.run
    if teacher is None:
        columns = text_columns(args)
        data = write_csv(
            load_table(args.data, columns, args.label, args.limit),
            OUT_DIR / "data" / f"distill-train-{args.label}.csv",
        )
        test = write_csv(
            load_table(args.test_data, columns, args.label, args.limit),
            OUT_DIR / "data" / f"distill-test-{args.label}.csv",
        )
        child = train_with_cli(
            data,
            test,
            columns,
            args.label,
            method="full",
            runs_dir=runs_dir,
            name=f"bench-teacher-{stamp}",
            extra=["--epochs", str(args.epochs), "--min-count", "1"],
        )
        teacher = Path(child.payload["run_dir"])
    extra: list[str] = []
    if args.unlabelled_rest:
        extra = ["--unlabelled", str(unlabelled_rest(args, teacher)), "--text-column", "text"]
    students = {}
    for layers in [int(k) for k in args.layers.split(",") if k.strip()]:
        argv = ["-m", "core", "train", "--distill-from", str(teacher), "--runs-dir", str(runs_dir)]
        argv += ["--student-layers", str(layers), "--epochs", str(args.epochs), *extra]
        argv += ["--name", f"bench-student-{layers}-{stamp}"]
        child = run_child(argv, what=f"distil to {layers} layers")
        facts = Run(child.payload["run_dir"]).metrics()["distillation"]
        students[layers] = {**facts, "train_seconds": child.payload["train_seconds"]}
    print_table(
        "teacher against student on the same test tickets",
        ["layers", "teacher F1", "student F1", "kept", "teacher t/s", "student t/s", "speed-up"],
        [
            (
                k,
                s["teacher_macro_f1"],
                s["student_macro_f1"],
                s["macro_f1_kept"],
                s["teacher_tickets_per_second"],
                s["student_tickets_per_second"],
                s["speedup"],
            )
            for k, s in students.items()
        ],
    )
    emit_json(
        {"bench": "distill", "machine": machine, "teacher": str(teacher), "students": students}
    )
    return 0


def unlabelled_rest(args, teacher: Path) -> Path:
    """The tickets of the whole --data file that are in none of the teacher's split parts,
    text only (their labels are dropped): extra reading for the student."""
    from core.text import ticket_texts

    columns = text_columns(args)
    texts = pd.Series(ticket_texts(load_table(args.data, columns, None, None), columns))
    seen = set(Run(teacher).read_frame("split.csv")["text"].astype(str))
    rest = pd.DataFrame({"text": texts[~texts.isin(seen)]})
    print(f"[bench] {len(rest)} unlabelled tickets the teacher never saw", flush=True)
    return write_csv(rest, OUT_DIR / "data" / f"distill-unlabelled-{args.label}.csv")


if __name__ == "__main__":
    raise SystemExit(main())
