"""Constant-memory scoring: ``python -m core predict`` on files of growing size.

Why: a helpdesk exports millions of tickets at once; scoring must not need memory that grows
with the file. Each size runs the real CLI in a fresh process; its peak RSS comes from
``os.wait4`` (the whole process), throughput from the wall time (model loading included).
Peak RSS that stays flat from the smallest to the largest file shows the streaming works.

    python -m bench.bench_stream_scoring --run bench/out/runs/<run> --sizes 20000,200000,1000000
    python -m bench.bench_stream_scoring --sizes 20000,100000     # trains a quick run first
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.common import (
    OUT_DIR,
    Target,
    add_data_arguments,
    emit_json,
    print_table,
    print_targets,
    run_child,
    text_columns,
    train_quick_run,
)
from bench.machine import print_header
from bench.make_big_file import source_texts, write_big_file

RSS_TARGET_MB = 1500.0
FLAT_MB = 100.0


def score_one_size(run: Path, n: int, texts: list[str], column: str, chunk_rows: int) -> dict:
    data = OUT_DIR / "data" / f"big-{n}.csv"
    if not data.is_file():
        write_big_file(data, n, texts, column)
    out = OUT_DIR / "scored" / f"big-{n}-scored.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    argv = ["-m", "core", "predict", str(run), "--data", str(data), "--out", str(out)]
    child = run_child([*argv, "--chunk-rows", str(chunk_rows)], what=f"score {n:,} tickets")
    if child.payload["n"] != n:
        raise RuntimeError(f"scored {child.payload['n']} of {n} tickets")
    return {
        "n": n,
        "file_mb": round(data.stat().st_size / 1e6, 1),
        "wall_s": round(child.wall_seconds, 1),
        "tickets_per_s": round(n / child.wall_seconds, 1),
        "peak_rss_mb": child.peak_rss_mb,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_arguments(parser, test_data=False)
    parser.add_argument("--run", type=Path, help="a trained run (default: train a quick one)")
    parser.add_argument("--sizes", default="20000,100000,200000", help="tickets per file")
    parser.add_argument("--chunk-rows", type=int, default=5000)
    args = parser.parse_args()
    info = print_header("Streaming file scoring (python -m core predict)")
    run = args.run or train_quick_run(args)
    column = text_columns(args)[0]
    texts = source_texts(args.data, column)
    sizes = [int(s) for s in args.sizes.split(",")]
    results = [score_one_size(run, n, texts, column, args.chunk_rows) for n in sizes]
    headers = ["tickets", "file MB", "wall s", "tickets/s", "peak RSS MB"]
    keys = ["n", "file_mb", "wall_s", "tickets_per_s", "peak_rss_mb"]
    print_table("Scoring a file", headers, [[r[k] for k in keys] for r in results])
    peaks = [r["peak_rss_mb"] for r in results]
    growth = max(peaks) - min(peaks)
    print_targets(
        [
            Target("peak RSS at the largest size", peaks[-1], RSS_TARGET_MB, False, " MB"),
            Target("peak RSS growth, smallest to largest file", growth, FLAT_MB, False, " MB"),
        ]
    )
    emit_json({"machine": info, "run": str(run), "results": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
