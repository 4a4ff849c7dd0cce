"""JobManager with real threads and fake train functions; explain_failure wording."""

from __future__ import annotations

import errno
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from onnxruntime.capi.onnxruntime_pybind11_state import Fail as OnnxRuntimeFail

from core import runs as runs_module
from core.errors import DataError, JobCancelledError
from core.jobs import (
    CANCELLED_REASON,
    DISK_FULL_REASON,
    MEMORY_REASON,
    JobManager,
    JobSnapshot,
    explain_failure,
)
from core.progress import ProgressCallback, ProgressEvent
from core.runs import INTERRUPTED_REASON, Run, RunStore

TIMEOUT = 5.0


class FakeTrainer:
    """A train function driven by the request dict; records which runs it started."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.gates: dict[str, threading.Event] = {}
        self.running = threading.Event()
        self.gate_reached = threading.Event()

    def gate(self, key: str) -> threading.Event:
        return self.gates.setdefault(key, threading.Event())

    def __call__(
        self, run: Run, request: Any, progress: ProgressCallback, cancel: threading.Event
    ) -> dict:
        self.started.append(run.id)
        self.running.set()
        kind = request["kind"]
        if kind == "ok":
            return self._train(progress)
        if kind == "fail":
            raise ValueError("boom in step 3")
        if kind == "poll":
            return self._poll(progress, cancel, raise_on_cancel=request.get("raise", False))
        if kind == "gate":
            progress(ProgressEvent("training", step=3, total_steps=10, epoch=0.3))
            progress(ProgressEvent("saving", message="Saving the model."))
            self.gate_reached.set()
            while not self.gate(request["gate"]).wait(0.01):
                if cancel.is_set():
                    raise JobCancelledError()
            return {"gate": request["gate"]}
        if kind == "checked_then_gate":
            progress(ProgressEvent("training", step=2, total_steps=10, epoch=0.2, loss=0.7))
            progress(
                ProgressEvent(
                    "training", step=2, total_steps=10, epoch=0.2, eval_metrics={"macro_f1": 0.6}
                )
            )
            self.gate_reached.set()
            self.gate(request["gate"]).wait(TIMEOUT)
            return {}
        if kind == "disk_full":
            return self._fill_disk(run)
        raise AssertionError(kind)

    @staticmethod
    def _train(progress: ProgressCallback) -> dict:
        progress(ProgressEvent("preparing", message="Preparing tickets"))
        for step in range(1, 5):
            progress(
                ProgressEvent("training", step=step, total_steps=4, epoch=step / 4, loss=1 / step)
            )
        progress(
            ProgressEvent(
                "evaluating", "Validation done", 4, 4, 1.0, eval_metrics={"macro_f1": 0.8}
            )
        )
        return {"macro_f1": 0.8}

    @staticmethod
    def _poll(progress: ProgressCallback, cancel: threading.Event, raise_on_cancel: bool) -> dict:
        for step in range(10_000):
            if cancel.is_set():
                if raise_on_cancel:
                    raise JobCancelledError()
                return {"stopped_at": step}
            progress(ProgressEvent("training", step=step, total_steps=10_000, loss=0.5))
            time.sleep(0.005)
        return {}

    @staticmethod
    def _fill_disk(run: Run) -> dict:
        run.write_json("metrics.json", {"model": {"macro_f1": 0.1}})
        real_fsync = runs_module.os.fsync

        def full(fd: int) -> None:
            runs_module.os.fsync = real_fsync
            raise OSError(errno.ENOSPC, "No space left on device")

        runs_module.os.fsync = full
        try:
            run.write_json("metrics.json", {"model": {"macro_f1": 0.9}})
        finally:
            runs_module.os.fsync = real_fsync
        return {}


@pytest.fixture
def store(tmp_path: Path) -> RunStore:
    return RunStore(tmp_path / "runs")


@pytest.fixture
def trainer() -> FakeTrainer:
    return FakeTrainer()


@pytest.fixture
def manager(store: RunStore, trainer: FakeTrainer) -> Iterator[JobManager]:
    jm = JobManager(store, trainer)
    yield jm
    for gate in trainer.gates.values():
        gate.set()
    jm.shutdown(wait=True)


def _finished(jm: JobManager, run_id: str) -> JobSnapshot:
    snap = jm.wait(run_id, timeout=TIMEOUT)
    assert snap.finished, snap
    return snap


def test_success_records_progress_result_and_history(manager: JobManager, store: RunStore) -> None:
    """A successful job keeps loss/eval history, events and result, in memory and on disk."""
    run_id = manager.submit({"kind": "ok"}, name="First model", status_fields={"method": "full"})
    snap = _finished(manager, run_id)

    assert snap.state == "succeeded" and snap.reason is None
    assert snap.name == "First model"
    assert snap.loss_history == ((1, 1.0), (2, 0.5), (3, 1 / 3), (4, 0.25))
    assert snap.eval_history == ((4, {"macro_f1": 0.8}),)
    messages = [m for _, m in snap.events]
    assert "Preparing tickets" in messages and "Validation done" in messages
    assert snap.fraction == 1.0 and snap.result == {"macro_f1": 0.8}
    assert snap.queue_position is None

    run = store.get(run_id)
    status = run.status()
    assert status["state"] == "succeeded" and status["result"] == {"macro_f1": 0.8}
    assert status["method"] == "full" and status["started_at"] and status["finished_at"]
    history = run.read_json("history.json")
    assert history["loss"][0] == [1, 1.0] and history["eval"] == [[4, {"macro_f1": 0.8}]]
    assert [m for _, m in history["events"]] == messages
    assert manager.jobs()[0].run_id == run_id and manager.active() is None


def test_elapsed_grows_while_running_and_stops_at_the_end(
    manager: JobManager, trainer: FakeTrainer
) -> None:
    run_id = manager.submit({"kind": "gate", "gate": "e"})
    assert trainer.gate_reached.wait(TIMEOUT)
    first = manager.snapshot(run_id).elapsed_seconds
    time.sleep(0.1)
    running = manager.snapshot(run_id).elapsed_seconds
    assert running >= first + 0.09, "the clock runs while the job runs"
    trainer.gate("e").set()
    ended = _finished(manager, run_id).elapsed_seconds
    assert ended >= running
    time.sleep(0.1)
    assert manager.snapshot(run_id).elapsed_seconds == ended, "and stops when it ends"


def test_failure_is_explained_logged_and_next_job_runs(
    manager: JobManager, store: RunStore
) -> None:
    """A crashing job is "failed" with a plain reason and error.txt; the next job still runs."""
    bad = manager.submit({"kind": "fail"}, name="bad")
    good = manager.submit({"kind": "ok"}, name="good")

    failed = _finished(manager, bad)
    assert failed.state == "failed"
    assert "ValueError: boom in step 3" in failed.reason and "error.txt" in failed.reason
    traceback_text = store.get(bad).read_text("error.txt")
    assert "Traceback" in traceback_text and "boom in step 3" in traceback_text
    assert store.get(bad).status()["reason"] == failed.reason
    assert store.get(bad).read_json("history.json")["events"]

    assert _finished(manager, good).state == "succeeded"
    assert [s.run_id for s in manager.jobs()] == [good, bad]


def test_cancel_running_job_that_polls(manager: JobManager, trainer: FakeTrainer) -> None:
    """Cancelling a running job sets its Event; it ends "cancelled" within a second."""
    run_id = manager.submit({"kind": "poll"})
    assert trainer.running.wait(TIMEOUT)
    assert manager.snapshot(run_id).state == "running"

    started = time.monotonic()
    assert manager.cancel(run_id) is True
    snap = manager.wait(run_id, timeout=1.0)
    assert time.monotonic() - started < 1.0
    assert snap.state == "cancelled" and snap.reason == CANCELLED_REASON
    assert manager.store.get(run_id).status()["state"] == "cancelled"
    assert manager.cancel(run_id) is False


def test_cancel_via_job_cancelled_error(manager: JobManager, trainer: FakeTrainer) -> None:
    """A train function may also raise JobCancelledError when it sees the Event."""
    run_id = manager.submit({"kind": "poll", "raise": True})
    assert trainer.running.wait(TIMEOUT)
    manager.cancel(run_id)
    snap = _finished(manager, run_id)
    assert snap.state == "cancelled" and snap.reason == CANCELLED_REASON


def test_fifo_queue_single_worker_and_queued_cancel(
    manager: JobManager, trainer: FakeTrainer, store: RunStore
) -> None:
    """One job at a time, FIFO; queued jobs report their position; a cancelled one never runs."""
    first = manager.submit({"kind": "gate", "gate": "a"}, name="first")
    second = manager.submit({"kind": "gate", "gate": "b"}, name="second")
    third = manager.submit({"kind": "ok"}, name="third")
    assert trainer.gate_reached.wait(TIMEOUT)

    active = manager.active()
    assert active.run_id == first and active.stage == "saving"
    assert (active.step, active.total_steps, active.fraction) == (3, 10, 0.3)
    assert manager.snapshot(second).state == "queued"
    assert manager.snapshot(second).queue_position == 1
    assert manager.snapshot(third).queue_position == 2
    assert not store.get(first).exists("history.json")

    assert manager.cancel(second) is True
    cancelled = manager.snapshot(second)
    assert cancelled.state == "cancelled" and cancelled.finished
    assert store.get(second).status()["state"] == "cancelled"
    assert manager.snapshot(third).queue_position == 1

    trainer.gate("a").set()
    assert _finished(manager, first).state == "succeeded"
    assert _finished(manager, third).state == "succeeded"
    assert trainer.started == [first, third]
    assert manager.snapshot(second).state == "cancelled"


def test_snapshot_of_run_from_earlier_process(store: RunStore, trainer: FakeTrainer) -> None:
    """A new manager on the same folder rebuilds finished runs and recovers interrupted ones."""
    old = JobManager(store, trainer)
    done = old.submit({"kind": "ok"}, name="old run")
    _finished(old, done)
    old.shutdown()
    orphan = store.create("left running")
    orphan.set_status("running")

    new = JobManager(store, trainer)
    try:
        assert new.recovered == [orphan.id]
        snap = new.snapshot(done)
        assert snap.state == "succeeded" and snap.name == "old run"
        assert snap.loss_history[-1] == (4, 0.25)
        assert snap.eval_history == ((4, {"macro_f1": 0.8}),)
        assert snap.result == {"macro_f1": 0.8} and snap.fraction == 1.0
        lost = new.snapshot(orphan.id)
        assert lost.state == "interrupted" and lost.reason == INTERRUPTED_REASON
        assert new.jobs() == [] and new.cancel(done) is False
        assert new.wait(done, timeout=0.1).state == "succeeded"
    finally:
        new.shutdown()


def test_curves_are_on_disk_while_the_job_runs(
    manager: JobManager, store: RunStore, trainer: FakeTrainer
) -> None:
    """After a validation check, history.json already holds the curves, so an app that is
    killed mid-training still shows them for the interrupted run."""
    run_id = manager.submit({"kind": "checked_then_gate", "gate": "g"}, name="live")
    assert trainer.gate_reached.wait(TIMEOUT)
    history = store.get(run_id).read_json("history.json")
    assert history["loss"] == [[2, 0.7]]
    assert history["eval"] == [[2, {"macro_f1": 0.6}]]
    assert manager.snapshot(run_id).state == "running"
    trainer.gate("g").set()
    assert _finished(manager, run_id).state == "succeeded"


def test_second_manager_does_not_interrupt_live_job(
    manager: JobManager, trainer: FakeTrainer, store: RunStore
) -> None:
    """Another manager on the same folder (e.g. the CLI) leaves a job that is running alone."""
    run_id = manager.submit({"kind": "gate", "gate": "a"})
    assert trainer.running.wait(TIMEOUT)
    other = JobManager(store, trainer)
    other.shutdown()
    assert other.recovered == []
    assert store.get(run_id).status()["state"] == "running"
    trainer.gate("a").set()
    assert _finished(manager, run_id).state == "succeeded"


def test_full_disk_during_job(manager: JobManager, store: RunStore) -> None:
    """ENOSPC inside a job: disk-full reason, the earlier metrics.json intact, no temp files."""
    run_id = manager.submit({"kind": "disk_full"})
    snap = _finished(manager, run_id)
    assert snap.state == "failed" and snap.reason == DISK_FULL_REASON
    run = store.get(run_id)
    assert run.read_json("metrics.json") == {"model": {"macro_f1": 0.1}}
    assert not [p for p in run.path.iterdir() if p.name.endswith(".tmp")]
    assert store.list()[0].state == "failed"


def test_shutdown_cancels_queue_and_rejects_new_jobs(store: RunStore, trainer: FakeTrainer) -> None:
    """shutdown() stops the running job, cancels the queue and refuses new submissions."""
    jm = JobManager(store, trainer)
    running = jm.submit({"kind": "poll"})
    queued = jm.submit({"kind": "ok"})
    assert trainer.running.wait(TIMEOUT)
    jm.shutdown(wait=True)
    assert jm.snapshot(running).state == "cancelled"
    assert jm.snapshot(queued).state == "cancelled"
    assert trainer.started == [running]
    with pytest.raises(RuntimeError):
        jm.submit({"kind": "ok"})


EXIT_SCRIPT = """
import sys, time
sys.path.insert(0, sys.argv[1])
from core.jobs import JobManager
from core.runs import RunStore

def train(run, request, progress, cancel):
    while not cancel.wait(0.01):
        pass
    return {}

manager = JobManager(RunStore(sys.argv[2]), train)
print(manager.submit(None, name="left running"), flush=True)
time.sleep(0.2)
"""


def test_interpreter_exit_stops_running_job(tmp_path: Path) -> None:
    """When the app process exits, the running job is cancelled instead of blocking exit."""
    script = tmp_path / "exit_probe.py"
    script.write_text(textwrap.dedent(EXIT_SCRIPT), encoding="utf-8")
    repo = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, str(script), str(repo), str(tmp_path / "runs")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    status = RunStore(tmp_path / "runs").get(done.stdout.strip()).status()
    assert status["state"] == "cancelled"
    assert status["reason"] == "Cancelled because the app was shutting down."


class OutOfMemoryError(RuntimeError):
    """Stand-in for torch.cuda.OutOfMemoryError (matched by class name)."""


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (MemoryError(), MEMORY_REASON),
        (OutOfMemoryError("CUDA error"), MEMORY_REASON),
        (RuntimeError("CUDA out of memory. Tried to allocate 2 GiB"), MEMORY_REASON),
        (
            RuntimeError(
                "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't "
                "allocate memory: you tried to allocate 63242240 bytes. Error code 12"
            ),
            MEMORY_REASON,
        ),
        (OSError(errno.ENOMEM, "Cannot allocate memory"), MEMORY_REASON),
        (
            OnnxRuntimeFail(
                "[ONNXRuntimeError] : 1 : FAIL : Non-zero status code returned while running "
                "Expand node. Status Message: bfc_arena.cc:360 BFCArena::AllocateRawInternal "
                "Failed to allocate memory for requested buffer of size 29737472"
            ),
            MEMORY_REASON,
        ),
        (OSError(errno.ENOSPC, "No space left on device"), DISK_FULL_REASON),
        (DataError("The label column is empty."), "The label column is empty."),
    ],
)
def test_explain_failure_known_causes(exc: BaseException, expected: str) -> None:
    """Memory, full disk and our own errors map to fixed plain-language messages."""
    assert explain_failure(exc) == expected


def test_explain_failure_generic_and_chained() -> None:
    """Unknown errors name type and message; a wrapped ENOSPC is still a full disk."""
    generic = explain_failure(KeyError("weights"))
    assert generic.startswith("Training stopped because of an unexpected error (KeyError:")
    assert generic.endswith("The details are saved in error.txt in the run folder.")
    try:
        try:
            raise OSError(errno.ENOSPC, "disk")
        except OSError as inner:
            raise RuntimeError("saving checkpoint failed") from inner
    except RuntimeError as outer:
        assert explain_failure(outer) == DISK_FULL_REASON


# ------------------------------------------- issue 12: several users, resume, dead owners


def test_jobs_from_several_threads_queue_in_order_with_distinct_runs(manager, trainer, store):
    """Five sessions submitting at once: one run each, FIFO by submit order, all succeed."""
    barrier = threading.Barrier(5)
    submitted: list[tuple[float, str]] = []
    lock = threading.Lock()

    def session(i: int) -> None:
        barrier.wait()
        run_id = manager.submit({"kind": "ok"}, name=f"user {i}")
        with lock:
            submitted.append((time.monotonic(), run_id))

    threads = [threading.Thread(target=session, args=(i,)) for i in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    ids = [run_id for _, run_id in submitted]
    assert len(set(ids)) == 5
    snapshots = [manager.wait(run_id, timeout=TIMEOUT * 4) for run_id in ids]
    assert [s.state for s in snapshots] == ["succeeded"] * 5
    assert sorted(trainer.started) == sorted(ids) and len(trainer.started) == 5
    assert trainer.started == [j.run_id for j in reversed(manager.jobs())]  # FIFO
    assert {s.name for s in snapshots} == {f"user {i}" for i in range(5)}
    assert {s.state for s in store.list()} == {"succeeded"}


def test_resubmit_continues_the_same_run_folder_only_when_resumable(manager, trainer, store):
    run_id = manager.submit({"kind": "ok"})
    _finished(manager, run_id)
    with pytest.raises(Exception, match="cannot be resumed"):
        manager.resubmit(run_id, {"kind": "ok"})
    run = store.get(run_id)
    run.set_status("interrupted", reason=INTERRUPTED_REASON)
    with pytest.raises(Exception, match="has no saved checkpoint"):
        manager.resubmit(run_id, {"kind": "ok"})
    (run.path / "checkpoint").mkdir()
    (run.path / "checkpoint" / "trainer_state.json").write_text("{}")
    assert manager.resubmit(run_id, {"kind": "ok"}) == run_id
    assert _finished(manager, run_id).state == "succeeded"
    assert trainer.started == [run_id, run_id]
    assert [s.run_id for s in store.list()] == [run_id]


def test_snapshot_from_disk_of_a_killed_process_reads_interrupted(store, tmp_path):
    from core.jobs import snapshot_from_disk

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run = store.create("killed elsewhere", pid=dead.pid)
    run.set_status("running", pid=dead.pid)
    snapshot = snapshot_from_disk(run)
    assert snapshot.state == "interrupted" and snapshot.finished
    assert snapshot.reason == INTERRUPTED_REASON


def test_predictor_answers_from_another_thread_while_a_job_trains(trained_run, tiny_model_dir):
    """Scoring and the try-it box keep answering while the worker trains (real training)."""
    from core.config import TrainConfig
    from core.inference import Predictor
    from core.pipeline import TrainingRequest, execute
    from core.schema import LabelScheme
    from tests.helpers import topic_frame

    predictor = Predictor.load(trained_run.path)
    store = RunStore(trained_run.path.parent / "concurrent")
    jobs = JobManager(store, execute)
    table = topic_frame(40).drop(columns="row").rename(columns={"text": "t", "label": "l"})
    request = TrainingRequest(
        table=table,
        scheme=LabelScheme(text_columns=("t",), label_column="l"),
        config=TrainConfig(model=str(tiny_model_dir), method="full", epochs=50, batch_size=8),
    )
    try:
        run_id = jobs.submit(request, name="busy")
        deadline = time.monotonic() + 300
        while jobs.snapshot(run_id).stage != "training":
            assert time.monotonic() < deadline and not jobs.snapshot(run_id).finished
            time.sleep(0.05)
        answers: list[tuple[str, float]] = []

        def score() -> None:
            for _ in range(5):
                started = time.monotonic()
                label = predictor.predict(["My parcel never arrived"])[0].label
                answers.append((label, time.monotonic() - started))

        scorer = threading.Thread(target=score)
        scorer.start()
        scorer.join(120)
        assert not scorer.is_alive()
        assert jobs.snapshot(run_id).state == "running"  # the answers came while it trained
    finally:
        jobs.shutdown(wait=True)
    assert len(answers) == 5 and all(label in predictor.labels for label, _ in answers)
    assert max(seconds for _, seconds in answers) < 10


# ---------------------------------------------- issue 12: whose job it is (shared deployments)

ANA, BEN = "user:ana@example.org", "session:b3n"


def test_each_owner_sees_and_cancels_only_their_own_job(manager, trainer, store):
    """Another analyst's job: no snapshot of it in the outlook, no cancel; one's own: both."""
    anas = manager.submit({"kind": "gate", "gate": "a"}, name="ana's run", owner=ANA)
    bens = manager.submit({"kind": "gate", "gate": "b"}, name="ben's run", owner=BEN)
    assert trainer.gate_reached.wait(TIMEOUT)

    ana, ben = manager.outlook(ANA), manager.outlook(BEN)
    assert (ana.mine.run_id, ana.mine.state, ana.latest.run_id) == (anas, "running", anas)
    assert (ana.others_running, ana.others_queued, ana.mine_queued, ana.busy) == (False, 1, 0, True)
    assert (ben.mine.run_id, ben.mine.state, ben.mine.queue_position) == (bens, "queued", 1)
    assert (ben.others_running, ben.others_queued, ben.mine_queued) == (True, 0, 1)
    stranger = manager.outlook("session:someone-else")
    assert (stranger.mine, stranger.latest, stranger.others_queued) == (None, None, 1)

    running = manager.snapshot(anas)
    assert running.owner == ANA
    assert manager.can_cancel(running, ANA) and not manager.can_cancel(running, BEN)
    assert not manager.can_cancel(running, None)
    assert manager.cancel(anas, owner=BEN) is False
    assert manager.cancel(bens, owner=ANA) is False
    assert manager.snapshot(anas).state == "running"
    assert manager.snapshot(bens).state == "queued"

    assert manager.cancel(bens, owner=BEN) is True
    assert manager.snapshot(bens).state == "cancelled"
    trainer.gate("a").set()
    assert _finished(manager, anas).state == "succeeded"
    assert trainer.started == [anas]
    finished = manager.outlook(ANA)
    assert finished.mine is None and finished.latest.run_id == anas and not finished.busy
    assert not manager.can_cancel(finished.latest, ANA)  # nothing left to cancel


def test_the_owner_is_recorded_in_the_run_and_read_back_from_disk(manager, store):
    run_id = manager.submit({"kind": "ok"}, name="mine", owner=ANA)
    _finished(manager, run_id)
    from core.jobs import OWNER_FIELD, snapshot_from_disk

    assert store.get(run_id).status()[OWNER_FIELD] == ANA
    assert snapshot_from_disk(store.get(run_id)).owner == ANA
    unowned = manager.submit({"kind": "ok"}, name="from code")
    _finished(manager, unowned)
    assert OWNER_FIELD not in store.get(unowned).status()


def test_a_job_without_owner_stays_everyones_as_before(manager, trainer):
    """Jobs submitted by code (tests, scripts) have no owner: any session follows and cancels
    them, which is the single-analyst behaviour from before owners existed."""
    run_id = manager.submit({"kind": "poll"}, name="legacy")
    assert trainer.running.wait(TIMEOUT)
    assert manager.outlook(BEN).mine.run_id == run_id
    assert manager.can_cancel(manager.snapshot(run_id), BEN)
    assert manager.cancel(run_id, owner=BEN) is True
    assert _finished(manager, run_id).state == "cancelled"


def test_resume_belongs_to_whoever_resumed_it(manager, store):
    run_id = manager.submit({"kind": "fail"}, name="resumable", owner=ANA)
    assert _finished(manager, run_id).state == "failed"
    (store.get(run_id).path / "checkpoint").mkdir()
    (store.get(run_id).path / "checkpoint" / "trainer_state.json").write_text("{}")
    manager.resubmit(run_id, {"kind": "ok"}, owner=BEN)
    assert _finished(manager, run_id).state == "succeeded"
    assert manager.snapshot(run_id).owner == BEN
    assert manager.outlook(BEN).latest.run_id == run_id
    assert manager.outlook(ANA).latest is None
