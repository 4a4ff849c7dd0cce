"""Write a large file of tickets for the streaming benchmarks (not committed; regenerate it).

Rows are drawn with replacement from a source ticket file (CLINC150 by default, else the
sample tickets in assets/) and written chunk by chunk, so even 10 million rows take little
memory. Each row gets a ticket id, so scored output lines can be traced back.

    python -m bench.make_big_file --n 1000000 --out bench/out/data/big-1m.csv
    python -m bench.make_big_file --n 200000 --out bench/out/data/big.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from bench.common import DEFAULT_DATA, REPO_ROOT

SAMPLE = REPO_ROOT / "assets" / "sample_tickets.csv"
CHUNK = 50_000


def source_texts(path: Path, column: str) -> list[str]:
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    return [t for t in table[column].tolist() if t.strip()]


def write_big_file(out: Path, n: int, texts: list[str], column: str, seed: int = 0) -> Path:
    """``n`` tickets (id + text) in CSV or JSON Lines, chosen by the extension of ``out``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    pool = np.asarray(texts, dtype=object)
    with open(out, "w", encoding="utf-8", newline="") as handle:
        for start in range(0, n, CHUNK):
            size = min(CHUNK, n - start)
            ids = [f"T-{i:08d}" for i in range(start, start + size)]
            chunk = pd.DataFrame({"ticket_id": ids, column: pool[rng.integers(0, len(pool), size)]})
            if out.suffix == ".jsonl":
                for record in chunk.to_dict("records"):
                    handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            else:
                chunk.to_csv(handle, index=False, header=start == 0)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, required=True, help="how many tickets")
    parser.add_argument("--out", type=Path, required=True, help=".csv or .jsonl")
    parser.add_argument("--source", type=Path, help="ticket file to draw from (default CLINC150)")
    parser.add_argument("--column", help="its text column (default: text, or body for assets)")
    args = parser.parse_args()
    source = args.source or (DEFAULT_DATA if DEFAULT_DATA.is_file() else SAMPLE)
    column = args.column or ("body" if source == SAMPLE else "text")
    write_big_file(args.out, args.n, source_texts(source, column), column)
    print(f"Wrote {args.n:,} tickets to {args.out}", file=sys.stderr)
    print(json.dumps({"out": str(args.out), "n": args.n, "column": column}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
