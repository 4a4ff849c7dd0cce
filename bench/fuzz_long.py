"""The fuzz tests of tests/test_fuzz.py with a big budget: inputs tried, and failures.

Same strategies and properties as the CI tests (tests/strategies.py), under the "long" hypothesis
profile. Prints the inputs tried per property and every failure (hypothesis shrinks each to a
minimal example, which goes into tests/test_fuzz.py as an ``@example`` once fixed).

    python -m bench.fuzz_long                      # 2,000 examples per property
    python -m bench.fuzz_long --examples 20000     # longer
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=2_000, help="examples per property")
    parser.add_argument("-k", default="", help="only the properties matching this (pytest -k)")
    args = parser.parse_args(argv)
    os.environ["HYPOTHESIS_PROFILE"] = "long"
    os.environ["TICKETTUNE_FUZZ_EXAMPLES"] = str(args.examples)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import pytest

    from tests.strategies import TRIED

    signal.signal(signal.SIGTERM, _interrupt)  # `timeout` stops it: still print the counts
    started = time.perf_counter()
    pytest_args = [str(ROOT / "tests" / "test_fuzz.py"), "-q", "-p", "no:cacheprovider"]
    pytest_args += ["--hypothesis-show-statistics"] + (["-k", args.k] if args.k else [])
    code = pytest.main(pytest_args)
    minutes = (time.perf_counter() - started) / 60
    print(f"\nInputs tried ({args.examples:,} examples per property, {minutes:.1f} min):")
    for name, count in sorted(TRIED.items()):
        print(f"  {name:<24} {count:>8,}")
    print(f"  {'total':<24} {sum(v for k, v in TRIED.items() if ':' not in k):>8,}")
    print("failures: none" if code == 0 else "failures: see the pytest report above")
    return int(code)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
