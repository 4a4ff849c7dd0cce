"""Write a perturbed copy of a ticket file: typos, dropped and swapped characters, casing,
extra whitespace. Seeded: the same file, seed and rate give the same copy.

    python bench/perturb_tickets.py test.csv test_perturbed.csv --seed 0 [--rate 0.1]

Every other column (the label) is copied unchanged. Used by bench/bench_adversarial.py.
"""

from __future__ import annotations

import argparse
import random
import string
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.tables import read_table

KEYBOARD_NEIGHBOURS = {
    row[i]: row[max(0, i - 1)] + row[i + 1 : i + 2]
    for row in ("qwertyuiop", "asdfghjkl", "zxcvbnm")
    for i in range(len(row))
}


def _typo(ch: str, rng: random.Random) -> str:
    near = KEYBOARD_NEIGHBOURS.get(ch.lower())
    return rng.choice(near) if near else rng.choice(string.ascii_lowercase)


def perturb_text(text: str, rng: random.Random, rate: float = 0.1) -> str:
    """Each letter, at ``rate``, is dropped, swapped with the next, doubled or mistyped; then
    the casing of the whole ticket may change and whitespace may be doubled."""
    chars, out, i = list(str(text)), [], 0
    while i < len(chars):
        ch = chars[i]
        if ch.isalpha() and rng.random() < rate:
            kind = rng.choice(("drop", "swap", "double", "typo"))
            if kind == "swap" and i + 1 < len(chars):
                out += [chars[i + 1], ch]
                i += 2
                continue
            out += {"drop": [], "double": [ch, ch], "typo": [_typo(ch, rng)]}.get(kind, [ch])
        else:
            out.append(ch)
        i += 1
    result = "".join(out)
    casing = rng.random()
    if casing < 0.15:
        result = result.upper()
    elif casing < 0.35:
        result = result.lower()
    if rng.random() < 0.3:
        result = result.replace(" ", "  ", 1 + rng.randrange(3))
    if rng.random() < 0.2:
        result = f" {result} "
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source")
    parser.add_argument("out")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rate", type=float, default=0.1, help="share of letters changed")
    parser.add_argument("--text-column", action="append", dest="text_columns")
    args = parser.parse_args(argv)
    table = read_table(args.source)
    columns = args.text_columns or ["text"]
    rng = random.Random(args.seed)
    for column in columns:
        table[column] = [perturb_text(t, rng, args.rate) for t in table[column].astype(str)]
    table.to_csv(args.out, index=False)
    print(f"Wrote {len(table)} perturbed tickets to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
