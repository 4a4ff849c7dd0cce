"""Helpers every bench script shares: data arguments, subsampling, timing, memory, output.

Output convention: each script prints the machine header, human-readable tables, the targets
it measures with met / not met, and as its LAST stdout line one JSON object (for
``bench/summarize.py`` and anyone scripting around the benchmarks). Progress and library
chatter go to stderr.

Measured phases run in fresh child processes (``run_child``), so one phase's peak memory,
warm caches or thread settings never leak into another's numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT / ".." / "shared" / "data"
DEFAULT_DATA = SHARED_DATA / "clinc150_train.csv"
DEFAULT_TEST_DATA = SHARED_DATA / "clinc150_test.csv"
DEFAULT_TEXT_COLUMNS = ("text",)
DEFAULT_LABEL = "intent"
OUT_DIR = REPO_ROOT / "bench" / "out"
SEED = 42


# ------------------------------------------------------------------------------ data


def add_data_arguments(parser: argparse.ArgumentParser, *, test_data: bool = True) -> None:
    """--data, --test-data, --text (repeatable), --label and --limit, the same in every script."""
    parser.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_DATA,
        help="ticket file to train on: CSV, TSV, Excel or JSONL",
    )
    if test_data:
        parser.add_argument(
            "--test-data",
            type=Path,
            default=DEFAULT_TEST_DATA,
            help="separate file of test tickets, same columns",
        )
    parser.add_argument(
        "--text",
        action="append",
        dest="text_columns",
        metavar="COLUMN",
        help="text column; repeat for several, e.g. --text subject --text body (default: text)",
    )
    parser.add_argument("--label", default=DEFAULT_LABEL, help="label column")
    parser.add_argument(
        "--limit",
        type=int,
        metavar="N",
        help="use at most N rows of each file, spread evenly over labels (for smoke runs)",
    )


def text_columns(args: argparse.Namespace) -> tuple[str, ...]:
    """argparse's append action cannot have a default without appending to it; resolve here."""
    return tuple(args.text_columns or DEFAULT_TEXT_COLUMNS)


def data_arguments(args: argparse.Namespace, *, test_data: bool = True) -> list[str]:
    """The data arguments as a command line, to hand the same data to a child process."""
    argv = ["--data", str(args.data), "--label", args.label]
    if test_data and getattr(args, "test_data", None) is not None:
        argv += ["--test-data", str(args.test_data)]
    for column in text_columns(args):
        argv += ["--text", column]
    if args.limit:
        argv += ["--limit", str(args.limit)]
    return argv


def subsample(table: pd.DataFrame, n: int | None, label_column: str) -> pd.DataFrame:
    """At most ``n`` rows, dealt out label by label (round robin) so every label keeps rows.

    Deterministic (fixed seed). Labels come out about equally represented, which for a smoke
    run matters more than keeping the original label shares.
    """
    if not n or n >= len(table):
        return table
    shuffled = table.sample(frac=1.0, random_state=SEED)
    rank = shuffled.groupby(label_column, sort=False).cumcount()
    chosen = rank.sort_values(kind="stable").index[:n]
    return table.loc[sorted(chosen)].reset_index(drop=True)


def load_table(
    path: Path, text_cols: Sequence[str], label_column: str | None, limit: int | None
) -> pd.DataFrame:
    """Read a ticket file the way the app does (core.tables) and check the columns exist."""
    from core.tables import read_table

    if not Path(path).is_file():
        raise SystemExit(f"error: no file {path} (pass --data / --test-data)")
    table = read_table(path)
    wanted = [*text_cols, *([label_column] if label_column else [])]
    missing = [c for c in wanted if c not in table.columns]
    if missing:
        raise SystemExit(
            f"error: {path} has no column(s) {missing}; columns: {list(table.columns)} "
            "(choose them with --text and --label)"
        )
    if limit and label_column:
        return subsample(table, limit, label_column)
    return table.head(limit) if limit else table


def prepared_tickets(
    table: pd.DataFrame, text_cols: Sequence[str], label_column: str, *, min_count: int = 1
) -> pd.DataFrame:
    """Rows with "text" and "label" exactly as the pipeline prepares them (core.schema)."""
    from core.schema import LabelScheme

    scheme = LabelScheme(text_columns=tuple(text_cols), label_column=label_column)
    if min_count != scheme.min_count:
        scheme = LabelScheme(
            text_columns=tuple(text_cols), label_column=label_column, min_count=min_count
        )
    return scheme.apply(table).frame.reset_index(drop=True)


def test_texts(args: argparse.Namespace) -> tuple[list[str], list[str] | None]:
    """Texts of --test-data joined as the app joins them (core.text), and its labels if any.

    With --limit, the first N rows: scoring speed does not depend on which tickets they are.
    """
    from core.text import clean_cells, ticket_texts

    columns = text_columns(args)
    table = load_table(args.test_data, columns, None, args.limit)
    labels = clean_cells(table[args.label]) if args.label in table.columns else None
    return ticket_texts(table, columns), labels


def sample_texts(texts: Sequence[str], n: int) -> list[str]:
    """``n`` texts drawn at random (fixed seed; repeats if the file is short): real lengths."""
    rng = np.random.default_rng(SEED)
    return [texts[i] for i in rng.integers(0, len(texts), size=n)]


def write_csv(table: pd.DataFrame, path: Path) -> Path:
    """Save a (subsampled) table for a child process that reads files, e.g. the CLI."""
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index=False)
    return path


# ------------------------------------------------------------------------ time, memory


@contextmanager
def stopwatch() -> Iterator[dict[str, float]]:
    """``with stopwatch() as t: ...`` then ``t["seconds"]``: wall time on a monotonic clock."""
    timing: dict[str, float] = {}
    started = time.perf_counter()
    try:
        yield timing
    finally:
        timing["seconds"] = time.perf_counter() - started


def latency_stats(seconds: Sequence[float]) -> dict[str, float]:
    """p50 / p95 / max / mean in milliseconds, and the number of calls."""
    if not len(seconds):
        return {"n": 0, "p50_ms": float("nan"), "p95_ms": float("nan"), "max_ms": float("nan")}
    ms = np.asarray(seconds, dtype=float) * 1000.0
    return {
        "n": len(ms),
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p95_ms": round(float(np.percentile(ms, 95)), 2),
        "max_ms": round(float(ms.max()), 2),
        "mean_ms": round(float(ms.mean()), 2),
    }


def _maxrss_to_mb(maxrss: int) -> float:
    """ru_maxrss is KiB on Linux and bytes on macOS; MB here are 10^6 bytes."""
    scale = 1 if sys.platform == "darwin" else 1024
    return round(maxrss * scale / 1e6, 1)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB.

    Linux's VmHWM counts only this program's own memory; ru_maxrss (the fallback elsewhere)
    also carries the high-water mark of the process it was started from (see ``run_child``).
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) * 1024 / 1e6, 1)
    except OSError:
        pass
    return _maxrss_to_mb(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


@dataclass
class ChildResult:
    """What a child process reported (its last JSON line) and what the OS measured about it."""

    payload: dict[str, Any]
    wall_seconds: float
    peak_rss_mb: float


#: Starts ``python ARGV``, waits for it and prints its exit status and ru_maxrss as a last line.
#: Linux records the high-water mark of the address space a process is exec'd from into its
#: ru_maxrss, so a child started straight from a large bench parent would report the parent's
#: peak when that is higher (measured: a 400 MB parent, ``python -c pass`` "used" 413 MB).
#: Started from this small launcher, the figure is the child's own.
_LAUNCHER = """
import json, os, subprocess, sys
proc = subprocess.Popen(sys.argv[1:])
_pid, status, usage = os.wait4(proc.pid, 0)
sys.stdout.flush()
print(json.dumps({"launcher": {"status": status, "maxrss": usage.ru_maxrss}}), flush=True)
"""


def run_child(argv: Sequence[str], *, what: str) -> ChildResult:
    """Run ``python ARGV`` from the repo root in a fresh process and read its last JSON line.

    The child's stderr (progress) passes through. Its peak RSS is that one process's own
    ru_maxrss (from ``os.wait4`` in a small launcher, ``_LAUNCHER``), so phases measured this
    way never mix their memory peaks, nor this process's.
    """
    command = [sys.executable, *argv]
    print(f"[bench] {what}: python {' '.join(command[1:])}", file=sys.stderr, flush=True)
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", _LAUNCHER, *command],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,  # Ctrl-C here must stop the child too: see below
    )
    try:
        stdout, _ = proc.communicate()
    except BaseException:  # Ctrl-C: do not leave the child training on its own
        os.killpg(proc.pid, 9)
        proc.wait()
        raise
    wall = time.perf_counter() - started
    lines = [line for line in stdout.splitlines() if line.strip()]
    try:
        report = json.loads(lines.pop())["launcher"]
    except (IndexError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise RuntimeError(f"{what}: the launcher did not report (exit {proc.returncode})") from exc
    returncode = os.waitstatus_to_exitcode(report["status"])
    if returncode != 0 or not lines:
        tail = "\n".join(lines[-5:])
        raise RuntimeError(f"{what} failed (exit code {returncode}). Last output:\n{tail}")
    try:
        payload = json.loads(lines[-1])
    except json.JSONDecodeError as exc:
        raise RuntimeError(f"{what}: the last output line is not JSON: {lines[-1][:200]}") from exc
    return ChildResult(payload, wall, _maxrss_to_mb(report["maxrss"]))


def train_with_cli(
    data: Path,
    test_data: Path | None,
    text_cols: Sequence[str],
    label: str,
    *,
    method: str,
    runs_dir: Path,
    name: str,
    extra: Sequence[str] = (),
) -> ChildResult:
    """``python -m core train ...`` exactly as a user types it; its JSON line is the result."""
    argv = ["-m", "core", "train", "--data", str(data), "--label-column", label]
    for column in text_cols:
        argv += ["--text-column", column]
    if test_data is not None:
        argv += ["--test-data", str(test_data)]
    argv += ["--method", method, "--runs-dir", str(runs_dir), "--name", name, *extra]
    return run_child(argv, what=f"train {method} with the CLI")


def train_quick_run(args: argparse.Namespace) -> Path:
    """A ``quick`` run on --data (about a minute) for scripts that need some trained model.

    Scoring speed does not depend on how a model was trained; agreement with fp32 can, so
    prefer passing --run with a default ('full') run, as bench/run_all.sh does.
    """
    columns = text_columns(args)
    data = args.data
    if args.limit:
        table = load_table(args.data, columns, args.label, args.limit)
        data = write_csv(table, OUT_DIR / "data" / f"train-{args.label}-{args.limit}.csv")
    child = train_with_cli(
        data,
        None,
        columns,
        args.label,
        method="quick",
        runs_dir=OUT_DIR / "runs",
        name=f"bench-quick-{time.strftime('%Y%m%d-%H%M%S')}",
        extra=["--min-count", "1"],
    )
    return Path(child.payload["run_dir"])


# ------------------------------------------------------------------------ reporting


@dataclass(frozen=True)
class Target:
    """One number from the issue's target list and whether this run met it."""

    name: str
    value: float | None
    threshold: float
    higher_is_better: bool
    unit: str = ""

    @property
    def met(self) -> bool | None:
        if self.value is None or not np.isfinite(self.value):
            return None
        if self.higher_is_better:
            return self.value >= self.threshold
        return self.value <= self.threshold

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": self.value,
            "target": f"{'>=' if self.higher_is_better else '<='} {self.threshold:g}{self.unit}",
            "met": self.met,
        }


def verdict(met: bool | None) -> str:
    return {True: "met", False: "NOT MET", None: "not measured"}[met]


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A plain aligned text table (readable in a terminal and in a tee'd log)."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    print(f"-- {title}")
    print("  ".join(str(h).ljust(w) for h, w in zip(headers, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    print(flush=True)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if not np.isfinite(value):
            return "-"
        return f"{value:,.1f}" if abs(value) >= 100 else f"{value:.3g}"
    return str(value)


def print_targets(targets: Sequence[Target], *, limited: bool = False) -> None:
    """The targets with met / NOT MET; ``limited`` (a --limit smoke run) adds a caveat."""
    rows = [(t.name, t.value, t.as_dict()["target"], verdict(t.met)) for t in targets]
    print_table("targets", ["target", "measured", "wanted", "verdict"], rows)
    if limited:
        print(
            "note: this was a --limit run; the targets are defined for the full data set on a "
            "quiet machine, so these verdicts are indicative only.\n",
            flush=True,
        )


def emit_json(payload: dict[str, Any]) -> None:
    """The one machine-readable line; it must be the last line on stdout."""
    from bench.machine import load_average

    payload = {**payload, "load_average_1min_at_end": load_average()}
    print(json.dumps(payload, default=_json_default), flush=True)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def common_parser(description: str) -> argparse.ArgumentParser:
    """A parser whose help shows the module docstring's first paragraph and the defaults."""
    return argparse.ArgumentParser(
        description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
