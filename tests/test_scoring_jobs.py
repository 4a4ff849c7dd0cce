"""Scoring in the background: snapshots to poll while it runs, the scored file when done."""

from __future__ import annotations

import shutil
import threading
import time

import pytest

from core.inference import Predictor
from core.runs import Run
from core.scored_files import get_scored, list_scored, scored_folder
from core.scoring_jobs import ScoringRunner
from tests.helpers import topic_frame


@pytest.fixture
def run(trained_run, tmp_path) -> Run:
    return Run(shutil.copytree(trained_run.path, tmp_path / trained_run.id))


@pytest.fixture(scope="module")
def predictor(trained_run) -> Predictor:
    return Predictor.load(trained_run.path, precision="fp32")


def wait(runner: ScoringRunner, job: str, timeout: float = 180.0) -> list:
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen.append(runner.snapshot(job))
        if seen[-1].finished:
            return seen
        time.sleep(0.05)
    raise AssertionError(f"scoring did not finish in {timeout} s: {seen[-1]}")


def test_a_job_scores_in_the_background_and_reports_its_progress(run, predictor, tmp_path):
    source = tmp_path / "upload-data"  # a saved upload: its name is not the file's
    frame = topic_frame(1000, seed=5).drop(columns="label")  # 3,000 tickets, 3 chunks
    frame.to_csv(source, index=False)
    runner = ScoringRunner()
    job = runner.start(run, predictor, source, "new tickets.csv", ["text"], threshold=0.9)
    assert [s.job_id for s in runner.running(run.id)] in ([job], [])  # [] if already done
    seen = wait(runner, job)
    last = seen[-1]
    assert last.state == "succeeded", last.error
    assert (last.rows, last.fraction, last.source_name) == (3000, 1.0, "new tickets.csv")
    rows = [s.rows for s in seen]
    assert rows == sorted(rows)
    assert runner.running(run.id) == []
    scored = get_scored(run, job)
    assert scored is not None and scored.rows == 3000 and list_scored(run) == [scored]
    assert scored.download_name == "new tickets-labelled.csv"


def test_a_failing_job_says_why_and_leaves_nothing(run, predictor, tmp_path):
    source = tmp_path / "upload-data"
    source.write_bytes(b"text\n" + "caf\xe9 ticket\n".encode("cp1252") * 3)
    runner = ScoringRunner()
    job = runner.start(run, predictor, source, "new.csv", ["subject"], threshold=None)
    last = wait(runner, job)[-1]
    assert last.state == "failed"
    assert "no column 'subject'" in last.error and "Traceback" not in last.error
    assert get_scored(run, job) is None and list(scored_folder(run).iterdir()) == []


class _GatedPredictor:
    """The real predictor, held at its first batch until the test opens the gate, so the
    cancel below lands while the job is running whatever the machine's speed."""

    def __init__(self, predictor: Predictor, gate: threading.Event):
        self._predictor, self._gate = predictor, gate

    def __getattr__(self, name):
        return getattr(self._predictor, name)

    def predict_proba(self, *args, **kwargs):
        self._gate.wait(timeout=60)
        return self._predictor.predict_proba(*args, **kwargs)


def test_a_cancelled_job_stops_after_its_chunk_and_leaves_nothing(run, predictor, tmp_path):
    source = tmp_path / "upload-data"
    topic_frame(1000, seed=6).drop(columns="label").to_csv(source, index=False)  # 3 chunks
    gate = threading.Event()
    runner = ScoringRunner()
    job = runner.start(
        run, _GatedPredictor(predictor, gate), source, "big.csv", ["text"], threshold=None
    )
    assert runner.cancel(job)
    gate.set()
    last = wait(runner, job)[-1]
    assert last.state == "cancelled" and last.finished
    assert last.rows == 1000  # the chunk it was on, not the whole file
    assert "Stopped at your request after 1,000 tickets" in last.error
    assert get_scored(run, job) is None and list(scored_folder(run).iterdir()) == []
    assert not runner.cancel(job)  # already over
    assert not runner.cancel("no-such-job")

    again = runner.start(run, predictor, source, "big.csv", ["text"], threshold=None)
    assert wait(runner, again)[-1].state == "succeeded"  # the next job is not affected
