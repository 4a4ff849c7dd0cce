"""Training across processes: rank helpers, and a real 2-process torchrun run on the CPU."""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from core import distributed
from tests.helpers import topic_frame

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("rank", "main"), [("0", True), ("1", False)])
def test_only_rank_0_runs_writes(monkeypatch, rank, main):
    monkeypatch.setenv("RANK", rank)
    monkeypatch.setenv("WORLD_SIZE", "2")
    written: list[str] = []
    result = distributed.main_process_only(written.append, "run folder")
    assert distributed.is_main_process() is main and distributed.is_distributed()
    assert written == (["run folder"] if main else []) and result is None


def test_without_torchrun_there_is_one_process(monkeypatch):
    for name in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    assert distributed.world_size() == 1 and distributed.rank() == 0
    assert distributed.is_main_process() and not distributed.is_distributed()
    assert distributed.participants() == 1


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_torchrun_with_two_cpu_processes_makes_one_complete_loadable_run(tiny_model_dir, tmp_path):
    from core.inference import Predictor
    from core.runs import RunStore

    data = tmp_path / "tickets.csv"
    topic_frame(30).drop(columns="row").to_csv(data, index=False)
    runs_dir = tmp_path / "runs"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2"]
    command += ["--master_addr=127.0.0.1", f"--master_port={free_port()}", "-m", "core", "train"]
    command += ["--data", str(data), "--text-column", "text", "--label-column", "label"]
    command += ["--model", str(tiny_model_dir), "--epochs", "2", "--batch-size", "8"]
    command += ["--runs-dir", str(runs_dir)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summaries = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(summaries) == 1  # only rank 0 prints the summary
    assert done.stderr.count("Training started") == 1  # and the progress

    runs = RunStore(runs_dir).list()
    assert [r.run_id for r in runs] == [json.loads(summaries[0])["run_id"]]  # one run folder
    run = RunStore(runs_dir).get(runs[0].run_id)
    assert runs[0].state == "succeeded"
    training = run.read_json("metrics.json")["training"]
    assert training["processes"] == 2  # both ranks reached the end of training together
    # Each rank trained on half the tickets per step: half the steps of a single process.
    per_step = 8 * 2
    assert training["steps"] == 2 * math.ceil(training["split_sizes"]["train"] / per_step)
    predictor = Predictor.load(run.path)
    assert predictor.labels == ["billing", "login", "shipping"]
    assert predictor.predict(["Where is my parcel"])[0].label in predictor.labels
