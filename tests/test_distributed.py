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


def _stop_decisions(rank: int, init_file: str, answers) -> None:
    """One rank of a real 2-process gloo group: three steps' stop checks, each rank with its
    own clock and its own cancel button (the second rank's clock is past the deadline; the
    first rank's cancel is pressed before the third step)."""
    import threading
    import time

    import torch.distributed as dist
    from transformers import TrainerControl

    from core.callbacks import StopControl

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        cancel = threading.Event()
        stopper = StopControl(cancel, deadline=time.monotonic() + 3600)
        decisions = []
        for step in range(3):
            if rank == 1 and step >= 1:
                stopper.deadline = time.monotonic() - 1
            if rank == 0 and step == 2:
                cancel.set()
            control = TrainerControl()
            stopper.on_step_end(None, None, control)
            decisions.append(
                (control.should_training_stop, control.should_evaluate, stopper.reason)
            )
        answers.put((rank, decisions))
    finally:
        dist.destroy_process_group()


def test_ranks_take_the_stop_decision_together(tmp_path):
    """Under torchrun a rank whose clock passed the time budget must not stop alone (the others
    would wait for it forever): the ranks agree, and a cancel on one rank wins everywhere."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    answers = context.Queue()
    init_file = str(tmp_path / "rendezvous")
    workers = [
        context.Process(target=_stop_decisions, args=(rank, init_file, answers))
        for rank in range(2)
    ]
    for worker in workers:
        worker.start()
    try:
        results = dict(answers.get(timeout=180) for _ in workers)
    finally:
        for worker in workers:
            worker.join(timeout=60)
    go_on = (False, False, None)
    budget = (True, True, "time budget")
    cancelled = (True, False, "cancelled")  # no last validation check when cancelled
    assert results[0] == results[1] == [go_on, budget, cancelled]
    assert all(worker.exitcode == 0 for worker in workers)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def torchrun_train(model_dir: Path, tmp_path: Path, *options: str) -> tuple[Path, list[dict]]:
    """``torchrun --nproc_per_node=2 -m core train`` on the CPU (gloo); the runs folder and the
    summaries printed. Fails the test, with the end of stderr, unless it exits 0 with one
    summary and one progress report (only rank 0 prints)."""
    data = tmp_path / "tickets.csv"
    topic_frame(30).drop(columns="row").to_csv(data, index=False)
    runs_dir = tmp_path / "runs"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2"]
    command += ["--master_addr=127.0.0.1", f"--master_port={free_port()}", "-m", "core", "train"]
    command += ["--data", str(data), "--text-column", "text", "--label-column", "label"]
    command += ["--model", str(model_dir), "--batch-size", "8", "--runs-dir", str(runs_dir)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [*command, *options], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summaries = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(summaries) == 1  # only rank 0 prints the summary
    assert done.stderr.count("Training started") == 1  # and the progress
    return runs_dir, summaries


def the_one_run(runs_dir: Path, summaries: list[dict]):
    """The single run folder torchrun left, checked finished and loadable."""
    from core.inference import Predictor
    from core.runs import RunStore

    runs = RunStore(runs_dir).list()
    assert [r.run_id for r in runs] == [summaries[0]["run_id"]]  # one run folder
    assert runs[0].state == "succeeded"
    run = RunStore(runs_dir).get(runs[0].run_id)
    predictor = Predictor.load(run.path)
    assert predictor.labels == ["billing", "login", "shipping"]
    assert predictor.predict(["Where is my parcel"])[0].label in predictor.labels
    return run


@pytest.mark.slow
def test_torchrun_with_two_cpu_processes_makes_one_complete_loadable_run(tiny_model_dir, tmp_path):
    runs_dir, summaries = torchrun_train(tiny_model_dir, tmp_path, "--epochs", "2")
    training = the_one_run(runs_dir, summaries).read_json("metrics.json")["training"]
    assert training["processes"] == 2  # both ranks reached the end of training together
    # Each rank trained on half the tickets per step: half the steps of a single process.
    per_step = 8 * 2
    assert training["steps"] == 2 * math.ceil(training["split_sizes"]["train"] / per_step)


@pytest.mark.slow
def test_a_time_budget_under_torchrun_stops_both_ranks_at_the_same_step(tiny_model_dir, tmp_path):
    """The budget (0.6 s) runs out while the model loads: the ranks agree to stop after the
    first step, validate once more together, and the run is complete."""
    options = ("--epochs", "30", "--time-budget", "0.01")
    runs_dir, summaries = torchrun_train(tiny_model_dir, tmp_path, *options)
    assert summaries[0]["stop_reason"] == "time budget"
    training = the_one_run(runs_dir, summaries).read_json("metrics.json")["training"]
    assert training["stop_reason"] == "time budget"
    assert training["processes"] == 2  # both ranks got to the end: neither waited for the other
    assert training["steps"] == 1
    assert training["best_validation_macro_f1"] is not None  # the last check ran on both
