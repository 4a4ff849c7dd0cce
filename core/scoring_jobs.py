"""Scoring a file of new tickets in the background, so it goes on when the analyst clicks
elsewhere or reloads the page; the result lands in the run (:mod:`core.scored_files`).

One worker thread per file; the page polls :meth:`ScoringRunner.snapshot`. The worker never
touches the UI. :meth:`ScoringRunner.cancel` stops a job after the chunk it is on (at most
``APP_CHUNK_ROWS`` tickets); a stopped job, like a failed one, leaves no scored file.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from core.batch_scoring import StreamProgress
from core.errors import TicketTuneError
from core.runs import Run
from core.scored_files import new_scored_folder, score_into


@dataclass(frozen=True)
class ScoringSnapshot:
    """Where one scoring job is. ``job_id`` is the id of the scored file it writes."""

    job_id: str
    run_id: str
    source_name: str
    upload_id: str | None
    state: str  # "running", "succeeded", "failed", "cancelled"
    rows: int
    fraction: float  # share of the input file read
    elapsed_s: float
    error: str = ""

    @property
    def finished(self) -> bool:
        return self.state != "running"

    @property
    def estimated_total(self) -> int | None:
        """About how many tickets the file holds, judged on the share read so far."""
        if self.fraction <= 0 or not self.rows:
            return None
        return max(self.rows, round(self.rows / self.fraction))

    @property
    def seconds_left(self) -> float | None:
        if self.fraction <= 0 or not self.rows:
            return None
        return self.elapsed_s * (1 - self.fraction) / self.fraction


class _Job:
    def __init__(self, job_id: str, run_id: str, source_name: str, upload_id: str | None):
        self.job_id, self.run_id = job_id, run_id
        self.source_name, self.upload_id = source_name, upload_id
        self.state = "running"
        self.rows, self.fraction = 0, 0.0
        self.started = time.monotonic()
        self.ended: float | None = None
        self.error = ""
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def snapshot(self) -> ScoringSnapshot:
        with self.lock:
            end = self.ended if self.ended is not None else time.monotonic()
            return ScoringSnapshot(
                self.job_id,
                self.run_id,
                self.source_name,
                self.upload_id,
                self.state,
                self.rows,
                self.fraction,
                end - self.started,
                self.error,
            )


class _Stopped(Exception):
    """Raised inside the worker to unwind scoring when the job is cancelled."""


class ScoringRunner:
    """Starts scoring jobs in worker threads and keeps their snapshots (one per server)."""

    def __init__(self) -> None:
        self._jobs: dict[str, _Job] = {}
        self._lock = threading.Lock()

    def start(
        self,
        run: Run,
        predictor,
        source: str | os.PathLike,
        source_name: str,
        text_columns: Sequence[str],
        *,
        threshold: float | None,
        upload_id: str | None = None,
        encoding: str | None = None,
    ) -> str:
        """Start scoring ``source`` with the run's model; returns the job id."""
        folder = new_scored_folder(run, source_name)
        job = _Job(folder.name, run.id, source_name, upload_id)
        with self._lock:
            self._forget_old()
            self._jobs[job.job_id] = job
        work = {
            "predictor": predictor,
            "source": Path(source),
            "source_name": source_name,
            "text_columns": list(text_columns),
            "threshold": threshold,
            "upload_id": upload_id,
            "encoding": encoding,
        }
        threading.Thread(
            target=self._work, args=(job, folder, work), daemon=True, name="scoring"
        ).start()
        return job.job_id

    def snapshot(self, job_id: str) -> ScoringSnapshot | None:
        job = self._jobs.get(job_id)
        return job.snapshot() if job is not None else None

    def cancel(self, job_id: str) -> bool:
        """Ask the job to stop after its current chunk; False when it is unknown or done."""
        job = self._jobs.get(job_id)
        if job is None or job.state != "running":
            return False
        job.stop.set()
        return True

    def running(self, run_id: str) -> list[ScoringSnapshot]:
        """The run's jobs still going, oldest first."""
        with self._lock:
            jobs = [job for job in self._jobs.values() if job.run_id == run_id]
        snapshots = [job.snapshot() for job in jobs]
        return [s for s in snapshots if not s.finished]

    def _forget_old(self, keep: int = 100) -> None:
        """Keep the snapshots of the last ``keep`` finished jobs (the files stay on disk)."""
        finished = [key for key, job in self._jobs.items() if job.state != "running"]
        for key in finished[: max(0, len(finished) - keep)]:
            del self._jobs[key]

    def _work(self, job: _Job, folder: Path, work: dict) -> None:
        def progress(event: StreamProgress) -> None:
            with job.lock:
                job.rows, job.fraction = event.rows, event.fraction
            if job.stop.is_set():
                raise _Stopped

        try:
            score_into(folder, on_progress=progress, **work)
            state, error = "succeeded", ""
        except _Stopped:
            state = "cancelled"
            error = (
                f"Stopped at your request after {job.rows:,} tickets. Nothing was saved: "
                "label the file again to start over."
            )
        except TicketTuneError as exc:
            state, error = "failed", str(exc)
        except Exception as exc:
            state, error = "failed", f"Labelling stopped: {type(exc).__name__}: {exc}"
        with job.lock:
            job.state, job.error, job.ended = state, error, time.monotonic()
            job.fraction = 1.0 if state == "succeeded" else job.fraction
