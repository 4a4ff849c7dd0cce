"""Load on the scoring service: 16 concurrent clients against ``python -m core serve``.

Why: the helpdesk sends tickets one at a time as they arrive, and bulk jobs send batches; the
service must keep answering both under concurrent load (micro-batching groups the waiting
requests into one forward pass). Two phases, each for a bounded time: every client sends
single tickets, then batches of 32. Reported per phase: requests/s, tickets/s, latency
p50/p95/p99 and errors. The service listens on 127.0.0.1 only.

    python -m bench.bench_service --run bench/out/runs/<run> --clients 16 --seconds 30
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from bench.common import (
    REPO_ROOT,
    add_data_arguments,
    emit_json,
    print_table,
    text_columns,
    train_quick_run,
)
from bench.machine import print_header
from bench.make_big_file import source_texts


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_service(run: Path, port: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "core", "serve", str(run), "--port", str(port)]
    process = subprocess.Popen(command, cwd=REPO_ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the service exited before it answered /health")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/health")
            if connection.getresponse().status == 200:
                return process
        except OSError:
            time.sleep(0.5)
    process.kill()
    raise RuntimeError("the service did not answer /health within 180 s")


def client_loop(port: int, texts: list[str], batch: int, until: float, seed: int, out: dict):
    """One client on one keep-alive connection: send, wait for the answer, repeat."""
    rng = random.Random(seed)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {"Content-Type": "application/json"}
    while time.monotonic() < until:
        picked = [rng.choice(texts) for _ in range(batch)]
        body = {"text": picked[0]} if batch == 1 else {"texts": picked}
        started = time.perf_counter()
        try:
            connection.request("POST", "/predict", json.dumps(body), headers)
            response = connection.getresponse()
            answer = json.loads(response.read())
            ok = response.status == 200 and len(answer["predictions"]) == batch
        except (OSError, http.client.HTTPException, ValueError):
            ok = False
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        out["latencies"].append(time.perf_counter() - started)
        out["errors" if not ok else "ok"] += 1


def run_phase(port: int, texts: list[str], clients: int, batch: int, seconds: float) -> dict:
    results = [{"latencies": [], "errors": 0, "ok": 0} for _ in range(clients)]
    until = time.monotonic() + seconds
    threads = [
        threading.Thread(target=client_loop, args=(port, texts, batch, until, i, results[i]))
        for i in range(clients)
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    latencies = np.concatenate([np.asarray(r["latencies"]) for r in results]) * 1000
    ok = sum(r["ok"] for r in results)
    return {
        "batch": batch,
        "clients": clients,
        "seconds": round(wall, 1),
        "requests": len(latencies),
        "errors": sum(r["errors"] for r in results),
        "requests_per_s": round(ok / wall, 1),
        "tickets_per_s": round(ok * batch / wall, 1),
        **{f"p{q}_ms": round(float(np.percentile(latencies, q)), 1) for q in (50, 95, 99)},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_arguments(parser, test_data=False)
    parser.add_argument("--run", type=Path, help="a trained run (default: train a quick one)")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=30.0, help="per phase")
    parser.add_argument("--batches", default="1,32", help="tickets per request, per phase")
    args = parser.parse_args()
    info = print_header("Scoring service under load (python -m core serve)")
    run = args.run or train_quick_run(args)
    texts = source_texts(args.data, text_columns(args)[0])
    port = free_port()
    service = start_service(run, port)
    try:
        phases = [
            run_phase(port, texts, args.clients, int(batch), args.seconds)
            for batch in args.batches.split(",")
        ]
    finally:
        service.terminate()
        service.wait(timeout=30)
    keys = ["batch", "clients", "requests", "errors", "requests_per_s", "tickets_per_s"]
    keys += ["p50_ms", "p95_ms", "p99_ms"]
    print_table("Load phases", keys, [[p[k] for k in keys] for p in phases])
    emit_json({"machine": info, "run": str(run), "phases": phases})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
