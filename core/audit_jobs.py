"""The label audit as a background job: one worker thread per upload, snapshots to poll, and the
result cached on disk beside the upload so a refresh (or a restart) keeps it.

The worker never touches the UI; a page polls :meth:`AuditRunner.snapshot`. Cache layout::

    <upload folder>/audit/tickets.csv            every ticket, most suspicious first
    <upload folder>/audit/near_duplicates.csv    leakage and conflicting labels (kind column)
    <upload folder>/audit/meta.json              {"key", "folds", "id_columns", "finished_at"}

``key`` identifies what was audited (the label setup and the run); a different key is a
different audit.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from core import atomic
from core.audit import AuditConfig, AuditResult, audit_labels, choose_folds, embed_texts
from core.errors import TicketTuneError
from core.near_duplicates import NearDuplicateReport, find_near_duplicates
from core.progress import ProgressEvent
from core.runs import utc_now_iso
from core.schema import PreparedData
from core.split import DataSplit

AUDIT_FOLDER = "audit"
_EMBED_SHARE = 0.8  # of the progress bar: embedding is most of the work


@dataclass(frozen=True)
class AuditSnapshot:
    state: str  # "running", "succeeded", "failed"
    fraction: float
    message: str
    elapsed_s: float
    estimate_s: float
    error: str = ""

    @property
    def finished(self) -> bool:
        return self.state != "running"


@dataclass
class CachedAudit:
    result: AuditResult
    near_duplicates: NearDuplicateReport | None


def audit_key(prepared: PreparedData, run_id: str = "") -> str:
    """What identifies an audit: the label setup, the tickets' labels and the run."""
    digest = hashlib.sha256()
    digest.update(json.dumps(prepared.scheme.to_dict(), sort_keys=True).encode())
    digest.update(pd.util.hash_pandas_object(prepared.frame[["text", "label"]]).values.tobytes())
    digest.update(run_id.encode())
    return digest.hexdigest()[:16]


def check_auditable(prepared: PreparedData, config: AuditConfig | None = None) -> None:
    """DataError before any slow work: one label only, or a label with a single ticket."""
    folds = (config or AuditConfig()).folds
    choose_folds(prepared.frame["label"].astype(str).tolist(), folds)


def load_cached(folder: str | Path, key: str) -> CachedAudit | None:
    """The cached audit for ``key``, or None."""
    base = Path(folder) / AUDIT_FOLDER
    try:
        meta = json.loads((base / "meta.json").read_text(encoding="utf-8"))
        if meta.get("key") != key:
            return None
        tickets = pd.read_csv(base / "tickets.csv", dtype={"given_label": str})
    except (OSError, ValueError):
        return None
    ids = tuple(meta.get("id_columns", ()))
    for column in (*ids, "given_label", "suggested_label", "text"):
        if column in tickets:
            tickets[column] = tickets[column].fillna("").astype(str)
    result = AuditResult(tickets, int(meta.get("folds", 0)), ids)
    return CachedAudit(result, _load_near(base, meta))


def _load_near(base: Path, meta: dict) -> NearDuplicateReport | None:
    path = base / "near_duplicates.csv"
    if not path.is_file():
        return None
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    if "kind" not in frame:
        return None
    parts = {k: frame[frame["kind"] == k].drop(columns="kind") for k in ("leakage", "conflict")}
    for part in parts.values():
        if "similarity" in part:
            part["similarity"] = pd.to_numeric(part["similarity"])
    return NearDuplicateReport(
        parts["leakage"].reset_index(drop=True),
        parts["conflict"].reset_index(drop=True),
        float(meta.get("threshold", 0.95)),
    )


def _save(folder: Path, key: str, result: AuditResult, near: NearDuplicateReport | None) -> None:
    base = folder / AUDIT_FOLDER
    base.mkdir(parents=True, exist_ok=True)
    atomic.write_text(base / "tickets.csv", result.tickets.to_csv(index=False))
    meta = {
        "key": key,
        "folds": result.folds,
        "id_columns": list(result.id_columns),
        "finished_at": utc_now_iso(),
    }
    if near is not None:
        both = pd.concat(
            [near.leakage.assign(kind="leakage"), near.conflicts.assign(kind="conflict")],
            ignore_index=True,
        )
        atomic.write_text(base / "near_duplicates.csv", both.to_csv(index=False))
        meta["threshold"] = near.threshold
    atomic.write_json(base / "meta.json", meta)


class _Job:
    def __init__(self, estimate_s: float):
        self.state = "running"
        self.fraction = 0.0
        self.message = "Starting…"
        self.started = time.monotonic()
        self.ended: float | None = None
        self.estimate_s = estimate_s
        self.error = ""
        self.lock = threading.Lock()


class AuditRunner:
    """Runs audits in worker threads (one per key at a time) and keeps their snapshots."""

    def __init__(self) -> None:
        self._jobs: dict[str, _Job] = {}
        self._lock = threading.Lock()

    def start(
        self,
        key: str,
        folder: str | Path,
        prepared: PreparedData,
        *,
        split: DataSplit | None = None,
        config: AuditConfig | None = None,
        estimate_s: float = 60.0,
    ) -> None:
        """Start the audit unless one for ``key`` is already running."""
        with self._lock:
            job = self._jobs.get(key)
            if job is not None and job.state == "running":
                return
            job = self._jobs[key] = _Job(estimate_s)
        args = (job, key, Path(folder), prepared, split, config or AuditConfig())
        threading.Thread(target=self._work, args=args, daemon=True, name="audit").start()

    def snapshot(self, key: str) -> AuditSnapshot | None:
        job = self._jobs.get(key)
        if job is None:
            return None
        with job.lock:
            end = job.ended if job.ended is not None else time.monotonic()
            return AuditSnapshot(
                job.state, job.fraction, job.message, end - job.started, job.estimate_s, job.error
            )

    def forget(self, key: str) -> None:
        with self._lock:
            self._jobs.pop(key, None)

    def _work(self, job, key, folder, prepared, split, config) -> None:
        def progress(event: ProgressEvent) -> None:
            with job.lock:
                if event.total_steps:
                    share = event.step / event.total_steps
                    if event.stage == "embedding":
                        job.fraction = _EMBED_SHARE * share
                    elif event.stage == "fitting":
                        job.fraction = _EMBED_SHARE + (1 - _EMBED_SHARE) * share
                if event.message:
                    job.message = event.message

        try:
            texts = prepared.frame["text"].astype(str).tolist()
            embeddings = embed_texts(texts, config.model, progress=progress)
            result = audit_labels(prepared, config, embeddings=embeddings, progress=progress)
            near = _near_duplicates(split, prepared, embeddings, config.model)
            _save(folder, key, result, near)
            state, error = "succeeded", ""
        except TicketTuneError as exc:
            state, error = "failed", str(exc)
        except Exception as exc:
            state, error = "failed", f"The check stopped: {type(exc).__name__}: {exc}"
        with job.lock:
            job.state, job.error, job.ended = state, error, time.monotonic()
            job.fraction = 1.0 if state == "succeeded" else job.fraction


def _near_duplicates(split, prepared, embeddings, model) -> NearDuplicateReport | None:
    """Near-copies in the run's split, reusing the audit's embeddings where rows match."""
    if split is None or split.train.empty:
        return None
    position = {int(r): i for i, r in enumerate(prepared.frame["row"])}
    same_text = dict(zip(prepared.frame["row"].astype(int), prepared.frame["text"], strict=True))
    parts = {}
    for name, frame in (("train", split.train), ("test", split.test)):
        rows = frame["row"].astype(int).tolist() if "row" in frame else []
        known = rows and all(position.get(r) is not None for r in rows)
        if not known or any(same_text[r] != t for r, t in zip(rows, frame["text"], strict=True)):
            return find_near_duplicates(split, model=model)
        parts[name] = embeddings[[position[r] for r in rows]]
    return find_near_duplicates(split, embeddings=parts)
