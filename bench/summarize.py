"""Summarise a bench/run_all.sh output folder: every target with met / not met, as Markdown.

Why: each bench script ends its log with one JSON line; this collects them into the rows
bench/RESULTS.md wants, so the lead copies numbers instead of retyping them.

    python -m bench.summarize bench/out/<timestamp>            # prints, writes summary.md
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


def summary_markdown(folder: Path) -> str:
    reports = {log.stem: data for log in sorted(folder.glob("*.log")) if (data := last_json(log))}
    reports = {name: data for name, data in reports.items() if "bench" in data}
    if not reports:
        return f"No bench results in {folder}.\n"
    lines = [f"# Benchmark summary ({folder.name})", ""]
    machine = next((r["machine"] for r in reports.values() if "machine" in r), None)
    if machine:
        lines += [f"    {line}" for line in header_lines(machine)] + [""]
    lines += ["| bench | target | measured | wanted | verdict |", "|---|---|---|---|---|"]
    for name, data in reports.items():
        for target in data.get("targets", []):
            lines.append(
                f"| {name} | {target['name']} | {_fmt(target['value'])} | {target['target']} "
                f"| {verdict(target['met'])} |"
            )
    limited = sorted(name for name, data in reports.items() if data.get("limit"))
    if limited:
        lines += ["", f"Smoke run (--limit) in: {', '.join(limited)}; verdicts indicative only."]
    busy = [
        name
        for name, data in reports.items()
        if (load := data.get("load_average_1min_at_end")) is not None
        and load > 0.5 * data.get("machine", {}).get("usable_cores", 1)
    ]
    if busy:
        lines += ["", f"Machine busy (load average) at the end of: {', '.join(busy)}."]
    return "\n".join(lines) + "\n"


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
