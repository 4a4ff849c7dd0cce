"""Summarise a bench/run_all.sh output folder: every target with met / not met, as Markdown.

Why: each bench script ends its log with one JSON line; this collects them into the rows
bench/RESULTS.md wants, so the lead copies numbers instead of retyping them.

    python -m bench.summarize bench/out/<timestamp>            # prints, writes summary.md
                     (a folder with native/ and avx2/ from run_all.sh --isa both: one column each)
    python -m bench.summarize --field default_run_dir LOG      # one value, for run_all.sh
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from bench.common import verdict
from bench.machine import header_lines


def last_json(log: Path) -> dict[str, Any] | None:
    """The JSON object on the last non-empty line of a log, if there is one."""
    for line in reversed(log.read_text(encoding="utf-8", errors="replace").splitlines()):
        if line.strip():
            try:
                value = json.loads(line)
            except json.JSONDecodeError:
                return None
            return value if isinstance(value, dict) else None
    return None


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 100 else f"{value:.3g}"
    return "-" if value is None else str(value)


ISA_MODES = ("native", "avx2")


def collect(folder: Path) -> dict[str, dict[str, Any]]:
    """Bench name → its JSON line, for every log in ``folder`` that has one."""
    reports = {log.stem: data for log in sorted(folder.glob("*.log")) if (data := last_json(log))}
    return {name: data for name, data in reports.items() if "bench" in data}


def summary_markdown(folder: Path) -> str:
    modes = {mode: collect(folder / mode) for mode in ISA_MODES if (folder / mode).is_dir()}
    if not modes:
        modes = {"": collect(folder)}
    if not any(modes.values()):
        return f"No bench results in {folder}.\n"
    lines = [f"# Benchmark summary ({folder.name})", ""]
    for mode, reports in modes.items():
        machine = next((r["machine"] for r in reports.values() if "machine" in r), None)
        if machine:
            lines += [f"{mode}:"] if mode else []
            lines += [f"    {line}" for line in header_lines(machine)] + [""]
    lines += _targets_table(modes)
    for mode, reports in modes.items():
        lines += _caveats(reports, f" ({mode})" if mode else "")
    return "\n".join(lines) + "\n"


def _targets_table(modes: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    """One row per (bench, target); one measured and one verdict column per mode."""
    names = [m or "measured" for m in modes]
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for mode, reports in modes.items():
        for bench, data in reports.items():
            for target in data.get("targets", []):
                row = rows.setdefault((bench, target["name"]), {"wanted": target["target"]})
                row[mode] = target
    measured = " | ".join(names)
    verdicts = " | ".join(f"verdict {n}" if len(names) > 1 else "verdict" for n in names)
    lines = [f"| bench | target | {measured} | wanted | {verdicts} |"]
    lines.append("|---|---|" + "---|" * (2 * len(names) + 1))
    for (bench, name), row in rows.items():
        values = " | ".join(_fmt(row[m]["value"]) if m in row else "-" for m in modes)
        marks = " | ".join(verdict(row[m]["met"]) if m in row else "-" for m in modes)
        lines.append(f"| {bench} | {name} | {values} | {row['wanted']} | {marks} |")
    return lines


def _caveats(reports: dict[str, dict[str, Any]], suffix: str) -> list[str]:
    lines = []
    limited = sorted(name for name, data in reports.items() if data.get("limit"))
    if limited:
        lines += ["", f"Smoke run (--limit) in{suffix}: {', '.join(limited)}; indicative only."]
    busy = [
        name
        for name, data in reports.items()
        if (load := data.get("load_average_1min_at_end")) is not None
        and load > 0.5 * data.get("machine", {}).get("usable_cores", 1)
    ]
    if busy:
        lines += ["", f"Machine busy (load average) at the end of{suffix}: {', '.join(busy)}."]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", type=Path, help="run_all output folder, or a log with --field")
    parser.add_argument("--field", help="print this key of the log's JSON line and exit")
    args = parser.parse_args(argv)
    if args.field:
        data = last_json(args.path) or {}
        value = data.get(args.field)
        if value is None:
            return 1
        print(value)
        return 0
    text = summary_markdown(args.path)
    (args.path / "summary.md").write_text(text, encoding="utf-8")
    print(text, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
