"""Background training jobs: one worker thread, a FIFO queue, cooperative cancel.

The UI submits a request and then only reads snapshots: a ``JobSnapshot`` is an immutable
copy of a job's progress taken under the manager's lock, so a page can render it while the
worker keeps updating. The worker thread never calls UI code and never touches the disk per
progress step; status.json is written on state changes, history.json at each validation check
and at the end.

Every job records its owner: whoever submitted it (a signed-in person, or one browser session
when nobody signs in). The manager, not the page, decides what an owner may see and cancel
(:meth:`JobManager.can_cancel`, :meth:`JobManager.outlook`): another analyst's job is only
"someone else's training", never its name, progress or Cancel button.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import itertools
import threading
import time
import traceback
import weakref
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from core.errors import ConfigError, JobCancelledError, RunNotFoundError, TicketTuneError
from core.progress import ProgressCallback, ProgressEvent
from core.runs import FINISHED_STATES, Run, RunStore, mark_live, utc_now_iso

TrainFn = Callable[[Run, Any, ProgressCallback, threading.Event], dict]

HISTORY_FILE = "history.json"
ERROR_FILE = "error.txt"
CANCELLED_REASON = "Cancelled by you."
RESUMABLE_STATES = ("cancelled", "interrupted", "failed")
SHUTDOWN_REASON = "Cancelled because the app was shutting down."
MEMORY_REASON = (
    "The computer ran out of memory. Try a smaller batch size, a shorter maximum length, "
    "or the LoRA/quick method."
)
DISK_FULL_REASON = "The disk is full. Free some space (or delete old runs) and start again."
OWNER_FIELD = "job_owner"  # in status.json; "pid"/"host" there are the *process* that works on it
_MAX_DETAIL = 300


# ------------------------------------------------------------------------ failure reasons


def _exception_chain(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain and len(chain) < 10:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


_OOM_PHRASES = (
    "out of memory",
    "can't allocate memory",  # torch's DefaultCPUAllocator
    "cannot allocate memory",
    "failed to allocate memory",  # ONNX Runtime's arena (BFCArena::AllocateRawInternal)
)


def _is_out_of_memory(exc: BaseException) -> bool:
    """MemoryError, torch's OutOfMemoryError (matched by name, no torch import), the
    RuntimeError torch's CPU allocator raises ("DefaultCPUAllocator: can't allocate memory")
    and ONNX Runtime's ``Fail`` from its arena ("Failed to allocate memory for requested
    buffer"), which derives from plain Exception."""
    if isinstance(exc, MemoryError):
        return True
    if type(exc).__name__ == "OutOfMemoryError":
        return True
    if isinstance(exc, OSError) and exc.errno == errno.ENOMEM:
        return True
    text = str(exc).lower()
    from_runtime = isinstance(exc, RuntimeError) or type(exc).__module__.startswith("onnxruntime")
    return from_runtime and any(phrase in text for phrase in _OOM_PHRASES)


def _is_disk_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return True
    return "no space left on device" in str(exc).lower()


def explain_failure(exc: BaseException) -> str:
    """A plain-language reason for the analyst; the traceback goes to error.txt."""
    chain = _exception_chain(exc)
    if any(_is_out_of_memory(e) for e in chain):
        return MEMORY_REASON
    if any(_is_disk_full(e) for e in chain):
        return DISK_FULL_REASON
    if isinstance(exc, TicketTuneError) and str(exc).strip():
        return str(exc).strip()
    detail = str(exc).strip() or "no details"
    if len(detail) > _MAX_DETAIL:
        detail = detail[: _MAX_DETAIL - 1] + "…"
    return (
        f"Training stopped because of an unexpected error ({type(exc).__name__}: {detail}). "
        "The details are saved in error.txt in the run folder."
    )


# ----------------------------------------------------------------------------- snapshots


@dataclass(frozen=True)
class JobSnapshot:
    """An immutable view of one job, safe to hand to the UI."""

    run_id: str
    name: str
    state: str
    stage: str | None
    message: str | None
    step: int
    total_steps: int
    fraction: float
    epoch: float
    eta_seconds: float | None
    elapsed_seconds: float
    loss_history: tuple[tuple[int, float], ...]
    eval_history: tuple[tuple[int, dict], ...]
    events: tuple[tuple[str, str], ...]
    reason: str | None
    queue_position: int | None
    result: dict | None
    owner: str | None = None

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_STATES


def owned_by(job: JobSnapshot, owner: str | None) -> bool:
    """Whether ``owner`` may follow and cancel ``job``.

    A job without an owner (submitted by code, not through the app) belongs to everyone, as
    everything did before jobs had owners; otherwise only the same owner matches.
    """
    return job.owner is None or job.owner == owner


@dataclass(frozen=True)
class QueueOutlook:
    """What one owner may know about the queue: their own jobs, and only how busy the worker
    is with everyone else's (no names, no progress)."""

    mine: JobSnapshot | None  # the owner's running job, else their next queued one
    latest: JobSnapshot | None  # the owner's newest job of this manager, in any state
    mine_queued: int  # the owner's jobs waiting
    others_running: bool  # someone else's job holds the worker now
    others_queued: int  # someone else's jobs waiting

    @property
    def busy(self) -> bool:
        """Some job, anyone's, is running or waiting."""
        return self.mine is not None or self.others_running or self.others_queued > 0


@dataclass(eq=False)
class _Job:
    """Mutable state of one job; only touched under ``JobManager._lock``."""

    run: Run
    request: Any
    name: str
    seq: int
    events: deque
    owner: str | None = None
    state: str = "queued"
    stage: str | None = None
    message: str | None = None
    step: int = 0
    total_steps: int = 0
    epoch: float = 0.0
    eta_seconds: float | None = None
    started: float | None = None
    ended: float | None = None
    loss_history: list[tuple[int, float]] = field(default_factory=list)
    eval_history: list[tuple[int, dict]] = field(default_factory=list)
    reason: str | None = None
    result: dict | None = None
    cancel_event: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    future: Future | None = None

    def log(self, message: str) -> None:
        self.events.append((utc_now_iso(), message))

    def elapsed(self) -> float:
        if self.started is None:
            return 0.0
        end = self.ended if self.ended is not None else time.monotonic()
        return max(0.0, end - self.started)


# ----------------------------------------------------------------------------- manager


class JobManager:
    """Runs training jobs one at a time on a single worker thread, FIFO."""

    def __init__(self, store: RunStore, train_fn: TrainFn, *, max_events: int = 300):
        self.store = store
        self.train_fn = train_fn
        self.max_events = max_events
        self._lock = threading.RLock()
        self._jobs: dict[str, _Job] = {}
        self._seq = itertools.count()
        self._closed = False
        self._shutdown_reason: str | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tickettune-job")
        self.recovered = store.recover_interrupted()
        _stop_at_exit(self)

    # ---------------------------------------------------------------- public API

    def submit(
        self,
        request: Any,
        *,
        name: str | None = None,
        status_fields: dict | None = None,
        owner: str | None = None,
    ) -> str:
        """Create the run (state "queued") and queue the job. Returns the run id.

        ``owner`` (see :func:`owned_by`) is who may follow and cancel it; it is also recorded
        in status.json.
        """
        with self._lock:
            self._check_open()
            fields = {**(status_fields or {}), **({OWNER_FIELD: owner} if owner else {})}
            run = self.store.create(name, **fields)
            return self._enqueue(run, request, owner, "Queued.")

    def resubmit(self, run_id: str, request: Any, *, owner: str | None = None) -> str:
        """Queue an unfinished run again in its own folder (resume from its checkpoint).

        Only a cancelled, interrupted or failed run with a saved checkpoint qualifies; the
        ``train_fn`` sees ``request`` (e.g. ``pipeline.ResumeRequest``) and the same run.
        ``owner`` becomes the resumed job's owner.
        """
        with self._lock:
            self._check_open()
            known = self._jobs.get(run_id)
            if known is not None and known.state not in FINISHED_STATES:
                raise ConfigError(f"Run {run_id} is already {known.state}.")
            run = self.store.get(run_id)
            state = run.status().get("state")
            if state not in RESUMABLE_STATES or not run.has_checkpoint():
                raise ConfigError(
                    f"Run {run_id} cannot be resumed: it is {state} and "
                    f"{'has' if run.has_checkpoint() else 'has no'} saved checkpoint."
                )
            run.set_status("queued", reason=None, **{OWNER_FIELD: owner})
            return self._enqueue(run, request, owner, "Queued to resume from the last checkpoint.")

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("This JobManager has been shut down.")

    def _enqueue(self, run: Run, request: Any, owner: str | None, message: str) -> str:
        """Register the job and hand it to the worker (caller holds the lock)."""
        mark_live(run)
        job = _Job(
            run=run,
            request=request,
            name=str(run.status().get("name") or run.id),
            seq=next(self._seq),
            events=deque(maxlen=self.max_events),
            owner=owner,
        )
        job.log(message)
        self._jobs[run.id] = job
        job.future = self._executor.submit(self._work, job)
        return run.id

    def snapshot(self, run_id: str) -> JobSnapshot:
        """Live view of one of this manager's jobs, else rebuilt from the run folder."""
        with self._lock:
            job = self._jobs.get(run_id)
            if job is not None:
                return self._snapshot(job)
        return snapshot_from_disk(self.store.get(run_id))

    def jobs(self) -> list[JobSnapshot]:
        """This manager's jobs, newest first."""
        with self._lock:
            ordered = sorted(self._jobs.values(), key=lambda j: j.seq, reverse=True)
            return [self._snapshot(job) for job in ordered]

    def active(self) -> JobSnapshot | None:
        """The running job, else the next queued one, else None."""
        with self._lock:
            candidates = [j for j in self._jobs.values() if j.state in ("running", "queued")]
            if not candidates:
                return None
            job = min(candidates, key=lambda j: (j.state != "running", j.seq))
            return self._snapshot(job)

    def outlook(self, owner: str | None) -> QueueOutlook:
        """The queue as ``owner`` may see it (what the Train page and the sidebar show)."""
        with self._lock:
            snapshots = [self._snapshot(j) for j in sorted(self._jobs.values(), key=_by_seq)]
        mine = [s for s in snapshots if owned_by(s, owner)]
        others = [s for s in snapshots if not owned_by(s, owner)]
        active = [s for s in mine if s.state in ("running", "queued")]
        return QueueOutlook(
            mine=min(active, key=lambda s: s.state != "running") if active else None,
            latest=mine[-1] if mine else None,
            mine_queued=sum(1 for s in mine if s.state == "queued"),
            others_running=any(s.state == "running" for s in others),
            others_queued=sum(1 for s in others if s.state == "queued"),
        )

    @staticmethod
    def can_cancel(job: JobSnapshot, owner: str | None) -> bool:
        """Only the job's own owner cancels it, and only while it is queued or running."""
        return not job.finished and owned_by(job, owner)

    def cancel(self, run_id: str, *, owner: str | None = None) -> bool:
        """Ask a job to stop. Returns False if it is unknown or already finished, or when
        ``owner`` is given and :meth:`can_cancel` says no.

        A running job gets its Event set and stops at its next check; a queued job is marked
        cancelled at once and never starts. (The app always passes ``owner``; code that owns
        the manager, such as the CLI or a shutdown, does not.)
        """
        with self._lock:
            job = self._jobs.get(run_id)
            if job is None or job.state in FINISHED_STATES:
                return False
            if owner is not None and not self.can_cancel(self._snapshot(job), owner):
                return False
            if job.state == "running":
                if not job.cancel_event.is_set():
                    job.cancel_event.set()
                    job.log("Cancel requested; stopping after the current step.")
                return True
            if job.future is not None:
                job.future.cancel()
            self._finish(job, "cancelled", reason=CANCELLED_REASON)
        self._persist_end(job)
        return True

    def wait(self, run_id: str, timeout: float | None = None) -> JobSnapshot:
        """Block until the job has finished (or ``timeout`` passed); returns its snapshot."""
        with self._lock:
            job = self._jobs.get(run_id)
        if job is not None:
            job.done.wait(timeout)
        return self.snapshot(run_id)

    def shutdown(self, wait: bool = True, *, cancel: bool = True) -> None:
        """Stop accepting jobs.

        With ``cancel`` (the default) queued jobs are cancelled and the running job is asked
        to stop; with ``cancel=False`` the queue is worked off first. ``wait`` blocks until
        the worker thread is done.
        """
        with self._lock:
            self._closed = True
            pending = []
            if cancel:
                self._shutdown_reason = SHUTDOWN_REASON
                for job in self._jobs.values():
                    if job.state == "running":
                        job.cancel_event.set()
                        job.log("Stopping because the app is shutting down.")
                    elif job.state == "queued":
                        if job.future is not None:
                            job.future.cancel()
                        self._finish(job, "cancelled", reason=SHUTDOWN_REASON)
                        pending.append(job)
        for job in pending:
            self._persist_end(job)
        self._executor.shutdown(wait=wait)

    # ---------------------------------------------------------------- worker side

    def _work(self, job: _Job) -> None:
        with self._lock:
            if job.state != "queued":
                return
            job.state = "running"
            job.started = time.monotonic()
            job.log("Started.")
        try:
            self._execute(job)
        except BaseException as exc:  # SystemExit/KeyboardInterrupt raised inside train_fn
            self._end_failed(job, exc)
            raise
        finally:
            self._persist_end(job)

    def _execute(self, job: _Job) -> None:
        try:
            job.run.set_status("running", reason=None)
            result = self.train_fn(job.run, job.request, self._progress_for(job), job.cancel_event)
        except JobCancelledError:
            self._end_cancelled(job)
        except Exception as exc:
            self._end_failed(job, exc)
        else:
            if job.cancel_event.is_set():
                self._end_cancelled(job)
            else:
                with self._lock:
                    self._finish(job, "succeeded", result=result)

    def _progress_for(self, job: _Job) -> ProgressCallback:
        def progress(event: ProgressEvent) -> None:
            with self._lock:
                if job.state != "running":
                    return
                self._apply(job, event)
                history = _history_dict(job) if event.eval_metrics is not None else None
            if history is not None:  # a few times per epoch: curves survive a killed app
                try:
                    job.run.write_json(HISTORY_FILE, history)
                except Exception as exc:
                    self._note_write_failure(job, HISTORY_FILE, exc)

        return progress

    @staticmethod
    def _apply(job: _Job, event: ProgressEvent) -> None:
        """Mirror the event; one without ``total_steps`` (a message) keeps the step counters."""
        job.stage = event.stage
        if event.total_steps:
            job.step = int(event.step)
            job.total_steps = int(event.total_steps)
            job.epoch = float(event.epoch)
            job.eta_seconds = event.eta_seconds
        if event.message is not None:
            job.message = event.message
            job.log(event.message)
        if event.loss is not None:
            job.loss_history.append((int(event.step), float(event.loss)))
        if event.eval_metrics is not None:
            job.eval_history.append((int(event.step), dict(event.eval_metrics)))

    def _end_cancelled(self, job: _Job) -> None:
        with self._lock:
            self._finish(job, "cancelled", reason=self._shutdown_reason or CANCELLED_REASON)

    def _end_failed(self, job: _Job, exc: BaseException) -> None:
        details = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        try:
            job.run.write_text(ERROR_FILE, details)
        except Exception as write_exc:  # disk full or run deleted: the failure still counts
            self._note_write_failure(job, ERROR_FILE, write_exc)
        with self._lock:
            self._finish(job, "failed", reason=explain_failure(exc))

    def _finish(self, job: _Job, state: str, *, reason: str | None = None, result=None) -> None:
        """In-memory end of a job (caller holds the lock); disk follows in _persist_end."""
        job.state = state
        job.reason = reason
        job.result = result
        job.ended = time.monotonic() if job.started is not None else None
        job.eta_seconds = None
        if state == "succeeded":
            job.log("Finished.")
            if job.total_steps:
                job.step = job.total_steps
        else:
            job.log(f"{state.capitalize()}: {reason}")

    def _persist_end(self, job: _Job) -> None:
        """status.json + history.json; then wake waiters. Disk errors never kill the worker."""
        with self._lock:
            state, reason, result = job.state, job.reason, job.result
            history = _history_dict(job)
        try:
            fields: dict[str, Any] = {"reason": reason}
            if result is not None:
                fields["result"] = result
            job.run.set_status(state, **fields)
        except Exception as exc:
            self._note_write_failure(job, "status.json", exc)
        try:
            job.run.write_json(HISTORY_FILE, history)
        except Exception as exc:
            self._note_write_failure(job, HISTORY_FILE, exc)
        mark_live(job.run, live=False)
        job.done.set()

    def _note_write_failure(self, job: _Job, what: str, exc: Exception) -> None:
        with self._lock:
            job.log(f"Could not save {what}: {explain_failure(exc)}")

    def _snapshot(self, job: _Job) -> JobSnapshot:
        return JobSnapshot(
            run_id=job.run.id,
            name=job.name,
            state=job.state,
            stage=job.stage,
            message=job.message,
            step=job.step,
            total_steps=job.total_steps,
            fraction=_fraction(job.state, job.step, job.total_steps),
            epoch=job.epoch,
            eta_seconds=job.eta_seconds,
            elapsed_seconds=job.elapsed(),
            loss_history=tuple(job.loss_history),
            eval_history=tuple((s, dict(m)) for s, m in job.eval_history),
            events=tuple(job.events),
            reason=job.reason,
            queue_position=self._queue_position(job),
            result=job.result,
            owner=job.owner,
        )

    def _queue_position(self, job: _Job) -> int | None:
        """1 = starts next, 2 = one queued job ahead of it, ...; None unless queued."""
        if job.state != "queued":
            return None
        return 1 + sum(1 for j in self._jobs.values() if j.state == "queued" and j.seq < job.seq)


def _by_seq(job: _Job) -> int:
    return job.seq


def _stop_at_exit(manager: JobManager) -> None:
    """Ask the running job to stop when the interpreter exits.

    The executor joins its worker thread at exit; without this, stopping the app would hang
    until the training finished. ``threading._register_atexit`` hooks run before that join
    (plain ``atexit`` runs after it). A weak reference keeps the manager collectable.
    """
    register = getattr(threading, "_register_atexit", None)
    if register is None:
        return
    ref = weakref.ref(manager)

    def stop() -> None:
        alive = ref()
        if alive is not None:
            alive.shutdown(wait=False)

    with contextlib.suppress(RuntimeError):  # the interpreter is already shutting down
        register(stop)


# ---------------------------------------------------------------------- from the disk


def _fraction(state: str, step: int, total_steps: int) -> float:
    if state == "succeeded":
        return 1.0
    return min(1.0, step / total_steps) if total_steps else 0.0


def _history_dict(job: _Job) -> dict:
    return {
        "loss": [[s, v] for s, v in job.loss_history],
        "eval": [[s, m] for s, m in job.eval_history],
        "events": [[t, m] for t, m in job.events],
    }


def _pairs(value: Any) -> list[tuple[Any, Any]]:
    if not isinstance(value, list):
        return []
    return [(item[0], item[1]) for item in value if isinstance(item, list) and len(item) == 2]


def _seconds_between(start: Any, end: Any) -> float:
    try:
        begin = dt.datetime.fromisoformat(start)
        finish = dt.datetime.fromisoformat(end) if end else dt.datetime.now(dt.timezone.utc)
        return max(0.0, (finish - begin).total_seconds())
    except (TypeError, ValueError):
        return 0.0


def snapshot_from_disk(run: Run) -> JobSnapshot:
    """Rebuild a snapshot from status.json and history.json (a run of an earlier process)."""
    try:
        status = run.status()
    except RunNotFoundError:
        status = {"state": "failed", "reason": "unreadable run folder"}
    history = run.read_json(HISTORY_FILE, default={})
    history = history if isinstance(history, dict) else {}
    loss = tuple((int(s), float(v)) for s, v in _pairs(history.get("loss")))
    evals = tuple((int(s), dict(m)) for s, m in _pairs(history.get("eval")) if isinstance(m, dict))
    events = tuple((str(t), str(m)) for t, m in _pairs(history.get("events")))
    state = str(status.get("state") or "failed")
    step = loss[-1][0] if loss else 0
    result = status.get("result")
    return JobSnapshot(
        run_id=run.id,
        name=str(status.get("name") or run.id),
        state=state,
        stage=None,
        message=events[-1][1] if events else None,
        step=step,
        total_steps=step if state == "succeeded" else 0,
        fraction=1.0 if state == "succeeded" else 0.0,
        epoch=0.0,
        eta_seconds=None,
        elapsed_seconds=_seconds_between(status.get("started_at"), status.get("finished_at")),
        loss_history=loss,
        eval_history=evals,
        events=events,
        reason=status.get("reason"),
        queue_position=None,
        result=result if isinstance(result, dict) else None,
        owner=_text_or_none(status.get(OWNER_FIELD)),
    )


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
