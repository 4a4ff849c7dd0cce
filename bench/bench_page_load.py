"""First page load: how long until an analyst sees the app, and each page, in a real browser.

Why: the app must show itself within 3 s of the first request (issue #10: heavy imports such as
torch and transformers only where a page needs them). Starts ``streamlit run app.py`` with the
shipped config in a fresh process and an empty runs folder, then in headless Chromium measures:

- server start: process start → ``/_stcore/health`` answers;
- first page load: navigation to ``/`` → the Home page's heading is visible (a cold server:
  the first script run imports what the page needs);
- each page once (cold), then Home again (warm).

    python -m bench.bench_page_load
    python -m bench.bench_page_load --repeats 3
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench.common import REPO_ROOT, Target, common_parser, emit_json, print_table, print_targets
from bench.machine import print_header

CHROMIUM = os.environ.get("TICKETTUNE_E2E_CHROMIUM", "/usr/bin/chromium")
PAGES = (
    ("data", "1 · Your tickets"),
    ("train", "2 · Train a model"),
    ("review", "3 · Review the model"),
    ("predict", "4 · Use the model"),
    ("runs", "Runs"),
)
TARGET_FIRST_LOAD_S = 3.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int, runs_dir: Path) -> tuple[subprocess.Popen, float]:
    env = {**os.environ, "TICKETTUNE_RUNS_DIR": str(runs_dir), "HF_HUB_OFFLINE": "1"}
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
         "--server.headless", "true", "--browser.gatherUsageStats", "false"],
        cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/_stcore/health"
    while time.monotonic() - started < 120:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return proc, time.monotonic() - started
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("streamlit did not start within 120 s")


def timed_visit(page, url: str, text: str) -> float:
    started = time.monotonic()
    page.goto(url)
    page.get_by_role("heading", name=text).first.wait_for(state="visible", timeout=60_000)
    return time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = common_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=1, help="fresh servers to measure")
    args = parser.parse_args(argv)
    info = print_header("First page load in Chromium")
    from playwright.sync_api import sync_playwright

    rows, firsts = [], []
    for repeat in range(args.repeats):
        with tempfile.TemporaryDirectory() as runs_dir:
            port = free_port()
            proc, server_s = start_server(port, Path(runs_dir))
            try:
                with sync_playwright() as pw:
                    browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
                    page = browser.new_page()
                    base = f"http://127.0.0.1:{port}"
                    first = timed_visit(page, base + "/", "TicketTune")
                    firsts.append(first)
                    rows.append((repeat + 1, "server start (health answers)", round(server_s, 2)))
                    rows.append((repeat + 1, "first page load, Home (cold)", round(first, 2)))
                    for path, text in PAGES:
                        seconds = timed_visit(page, f"{base}/{path}", text)
                        rows.append((repeat + 1, f"/{path} (first visit)", round(seconds, 2)))
                    warm = timed_visit(page, base + "/", "TicketTune")
                    rows.append((repeat + 1, "Home again (warm)", round(warm, 2)))
                    browser.close()
            finally:
                proc.terminate()
                proc.wait(timeout=30)
    print_table("seconds until the page's heading is visible", ["repeat", "what", "s"], rows)
    worst = max(firsts)
    print_targets([Target("first page load (worst of repeats), s", worst, TARGET_FIRST_LOAD_S,
                          False)])  # fmt: skip
    emit_json({"bench": "page_load", "rows": rows, "first_load_worst_s": worst, "machine": info})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
