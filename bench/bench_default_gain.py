"""Does the default earn its time? Default (`full`) against `quick`, over seeds and label schemes.

Why: issue #10 asks the default to beat `quick` by at least 2 points of macro-F1, averaged over
3 seeds, on both CLINC150 label schemes. A seed changes the validation hold-out and the
training order; one run's gain is within seed noise of the target, so only the mean decides.
For each label column and seed, `quick` then `full` are trained with the command line on the
same split (``--seed``), in fresh processes; `full` reuses quick's reading of the tickets
(core/reuse.py), as an analyst's second run would.

    python -m bench.bench_default_gain                              # intent and domain, 3 seeds
    python -m bench.bench_default_gain --labels domain --seeds 1 --limit 1500   # smoke
    python -m bench.bench_default_gain --labels intent --per-label 10   # few-shot row

``--per-label N`` trains on N tickets per label drawn from --data with each seed (the usual
few-shot setting; 10 per label is 1,510 intent tickets) and tests on the whole --test-data.
There the target is that the default is never below quick (it keeps the better model on
validation, core/model_choice.py).
"""

from __future__ import annotations

import shlex
import statistics
import time
from pathlib import Path

from bench.bench_quality import input_files
from bench.common import (
    OUT_DIR,
    Target,
    add_data_arguments,
    common_parser,
    emit_json,
    load_table,
    print_table,
    print_targets,
    text_columns,
    train_with_cli,
    write_csv,
)
from bench.machine import print_header

TARGET_POINTS = 2.0


def main(argv: list[str] | None = None) -> int:
    parser = common_parser(__doc__.split("\n\n")[0])
    add_data_arguments(parser)
    parser.add_argument("--labels", default="intent,domain", help="label columns, comma-separated")
    parser.add_argument("--seeds", default="42,1,2", help="seeds, comma-separated")
    parser.add_argument("--runs-dir", type=Path, default=OUT_DIR / "runs-default-gain")
    parser.add_argument(
        "--per-label", type=int, default=None, help="train on N tickets per label (few-shot)"
    )
    parser.add_argument(
        "--full-args",
        default="",
        help="extra CLI arguments for the default run only, to measure a lever before it "
        'becomes the default, e.g. "--batch-size 64 --learning-rate 8e-5"',
    )
    args = parser.parse_args(argv)
    labels = [x.strip() for x in args.labels.split(",") if x.strip()]
    seeds = [int(x) for x in args.seeds.split(",") if x.strip()]
    full_args = shlex.split(args.full_args)
    machine = print_header("Default against quick over seeds")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    rows, results = [], {}
    for label in labels:
        args.label = label
        data, test_data = input_files(args, OUT_DIR / "data")
        gains = []
        for seed in seeds:
            if args.per_label:
                data = few_shot_file(args, label, seed, OUT_DIR / "data")
            scores, children = {}, {}
            for method in ("quick", "full"):
                child = train_with_cli(
                    data, test_data, text_columns(args), label, method=method,
                    runs_dir=args.runs_dir, name=f"gain-{label}-{method}-{seed}-{stamp}",
                    extra=["--seed", str(seed), *(full_args if method == "full" else [])],
                )  # fmt: skip
                scores[method] = child.payload
                children[method] = child
            gain = round((scores["full"]["macro_f1"] - scores["quick"]["macro_f1"]) * 100, 2)
            gains.append(gain)
            validation = scores["full"].get("best_validation_macro_f1")
            rows.append((label, seed, round(scores["quick"]["macro_f1"], 4),
                         round(scores["full"]["macro_f1"], 4), gain,
                         round(validation, 4) if validation is not None else None,
                         scores["full"].get("kept_quick"), scores["quick"]["total_seconds"],
                         scores["full"]["total_seconds"],
                         round(children["full"].wall_seconds, 1),
                         round(children["full"].peak_rss_mb)))  # fmt: skip
        results[label] = {"gains": gains, "mean_gain": round(statistics.mean(gains), 2)}
    print_table(
        "default (full) against quick, test macro-F1",
        [
            "labels",
            "seed",
            "quick",
            "full",
            "gain pts",
            "full val",
            "kept quick",
            "quick s",
            "full s",
            "full CLI wall s",
            "full peak RSS MB",
        ],
        rows,
    )
    print_table(
        "mean gain over seeds (points)",
        ["labels", "seeds", "mean", "min", "max"],
        [
            (k, len(v["gains"]), v["mean_gain"], min(v["gains"]), max(v["gains"]))
            for k, v in results.items()
        ],
    )
    target = 0.0 if args.per_label else TARGET_POINTS
    print_targets(
        [
            Target(f"default - quick, {k} (mean)", v["mean_gain"], target, True, " pts")
            for k, v in results.items()
        ],
        limited=bool(args.limit),
    )
    emit_json(
        {
            "bench": "default_gain",
            "per_label": args.per_label,
            "rows": rows,
            "results": results,
            "machine": machine,
        }
    )
    return 0


def few_shot_file(args, label: str, seed: int, work_dir: Path) -> Path:
    """``args.per_label`` tickets of every label from --data, drawn with ``seed``."""
    table = load_table(args.data, text_columns(args), label, None)
    sample = table.groupby(label, group_keys=False).sample(
        n=args.per_label, random_state=seed, replace=False
    )
    return write_csv(sample, work_dir / f"train-{label}-{args.per_label}-per-label-{seed}.csv")


if __name__ == "__main__":
    raise SystemExit(main())
