"""Faults (issue 12): a killed process, resume, cancel under load, NaN loss, damaged folders.

Real processes and real training on the tiny BERT: the CLI is started as a subprocess and
killed with SIGKILL; cancel latency is measured while a competing process keeps a core busy.
Every wait polls the state it waits for (with a generous deadline), never a fixed sleep.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from core.config import TrainConfig
from core.errors import JobCancelledError
from core.jobs import JobManager
from core.pipeline import TrainingRequest, execute
from core.progress import ProgressEvent
from core.runs import INTERRUPTED_REASON, RunStore
from core.schema import LabelScheme
from tests.helpers import topic_frame, topic_split

ROOT = Path(__file__).resolve().parents[1]
CANCEL_LIMIT_S = 5.0
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.05)


def tickets_csv(tmp_path: Path, n_per_label: int = 40) -> Path:
    table = topic_frame(n_per_label).drop(columns="row")
    path = tmp_path / "tickets.csv"
    table.rename(columns={"text": "ticket", "label": "team"}).to_csv(path, index=False)
    return path


def cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "core", *args],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture
def cpu_hog():
    """A competing CPU-bound process, as when several helpers share the 2 cores."""
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    yield hog
    hog.kill()
    hog.wait()


# ------------------------------------------------------------- SIGKILL, listing, resume


def test_sigkilled_training_reads_interrupted_and_resumes_from_its_checkpoint(
    tiny_model_dir, trained_run, tmp_path
):
    runs_dir = tmp_path / "runs"
    store = RunStore(runs_dir)
    neighbour = store.create("finished neighbour")
    neighbour.write_json("metrics.json", {"model": {"macro_f1": 0.5}})
    neighbour.set_status("succeeded")
    before = folder_bytes(neighbour.path)
    data = tickets_csv(tmp_path)
    train_args = ["train", "--data", str(data), "--text-column", "ticket"]
    train_args += ["--label-column", "team", "--model", str(tiny_model_dir), "--method", "full"]
    train_args += ["--epochs", "10", "--batch-size", "8", "--runs-dir", str(runs_dir)]
    process = subprocess.Popen(
        [sys.executable, "-m", "core", *train_args],
        cwd=ROOT,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def killed_run():
            return next((r for r in store.runs() if r != neighbour), None)

        def checkpoint_while_running() -> bool:
            run = killed_run()
            return run is not None and run.status()["state"] == "running" and run.has_checkpoint()

        wait_for(checkpoint_while_running, 300, "a checkpoint of the running CLI run")
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    run = killed_run()
    assert run.stored_status()["state"] == "running"  # nobody rewrote it: readers derive it

    listing = cli("runs", "--runs-dir", str(runs_dir))
    assert listing.returncode == 0
    line = next(x for x in listing.stdout.splitlines() if x.startswith(run.id))
    assert " interrupted " in line and "--resume" in line
    by_id = {s.run_id: s for s in RunStore(runs_dir).list()}
    assert by_id[run.id].state == "interrupted" and by_id[run.id].resumable
    assert by_id[run.id].reason == INTERRUPTED_REASON
    assert by_id[neighbour.id].state == "succeeded"
    assert folder_bytes(neighbour.path) == before
    checkpoint_step = json.loads((run.path / "checkpoint" / "trainer_state.json").read_text())[
        "global_step"
    ]
    assert checkpoint_step > 0

    resumed = cli("train", "--resume", str(run.path))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"Training resumed at step {checkpoint_step} of" in resumed.stderr
    result = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert result["run_id"] == run.id
    status = run.status()
    assert status["state"] == "succeeded" and status["usable_model"] is False
    assert not run.has_checkpoint()  # finished: the checkpoint is cleaned up
    assert [p.name for p in runs_dir.iterdir() if not p.name.startswith(".")].count(run.id) == 1
    from core.inference import Predictor

    predictor = Predictor.load(run.path)
    assert predictor.predict(["I cannot log in to my account"])[0].label in predictor.labels
    assert folder_bytes(neighbour.path) == before


def test_resume_refuses_a_run_without_checkpoint(trained_run, tmp_path):
    done = cli("train", "--resume", str(trained_run.path))
    assert done.returncode == 2 and "cannot be resumed" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    missing = cli("train", "--resume", str(tmp_path / "nope"))
    assert missing.returncode == 2 and "is not a run folder" in missing.stderr
    bare = cli("train", "--data", str(tickets_csv(tmp_path)))
    assert bare.returncode == 2 and "--text-column" in bare.stderr
