"""Run storage: one folder per training run, every file written atomically.

A run folder holds ``status.json`` (state machine + display name) and whatever the
pipeline stores next to it (config.json, scheme.json, metrics.json, predictions.csv, the
model). Every write goes through :mod:`core.atomic`, so a crash or a full disk never leaves a
half-written file behind: readers see either the old or the new content.
"""

from __future__ import annotations

import datetime as dt
import errno
import io
import json
import os
import re
import shutil
import socket
import threading
import unicodedata
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import psutil

from core import atomic
from core.errors import ConfigError, RunNotFoundError

if TYPE_CHECKING:  # pandas is loaded by the frame methods only: `python -m core runs` is fast
    import pandas as pd

RUN_STATES = ("queued", "running", "succeeded", "failed", "cancelled", "interrupted")
FINISHED_STATES = ("succeeded", "failed", "cancelled", "interrupted")
ACTIVE_STATES = ("queued", "running")
#: What the analyst sees for each state, on every page (Home, Runs, the job views).
STATE_LABELS: dict[str, str] = {
    "queued": "waiting",
    "running": "training…",
    "succeeded": "finished",
    "failed": "failed",
    "cancelled": "cancelled",
    "interrupted": "interrupted",
}

RUNS_DIR_ENV = "TICKETTUNE_RUNS_DIR"
STATUS_FILE = "status.json"
CHECKPOINT_DIR = "checkpoint"
THRESHOLD_FILE = "threshold.json"
INTERRUPTED_REASON = (
    "The app stopped while this run was in progress. Start it again from the Train page."
)
UNREADABLE_REASON = "unreadable run folder"
#: Status field: the run stopped early but its best validation check was saved as a model.
USABLE_MODEL_FIELD = "usable_model"

_SLUG_MAX = 40
_RUN_ID_RE = re.compile(r"^\d{8}-\d{6}-[a-z0-9](?:[a-z0-9-]{0,60}[a-z0-9])?$")
_STATUS_LOCK = threading.RLock()
_MISSING: Any = object()
_LIVE_RUNS: set[Path] = set()


def default_runs_dir() -> Path:
    """``$TICKETTUNE_RUNS_DIR`` if set, else ``<repo root>/runs``."""
    env = os.environ.get(RUNS_DIR_ENV)
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parent.parent / "runs"


def utc_now_iso() -> str:
    """Current UTC time as ISO 8601 with milliseconds (sortable, parseable)."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


def state_label(state: str) -> str:
    """The analyst's name for a run state (see STATE_LABELS)."""
    return STATE_LABELS.get(state, state)


# ------------------------------------------------------------------------------- run ids


def slugify(name: str | None) -> str:
    """Lowercase ascii letters/digits/dashes, at most 40 characters, ``"run"`` if empty."""
    text = unicodedata.normalize("NFKD", name or "").encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    slug = slug[:_SLUG_MAX].rstrip("-")
    return slug or "run"


def validate_run_id(run_id: str) -> str:
    """Return ``run_id`` if it is a well-formed id; RunNotFoundError otherwise.

    Only the strict pattern is accepted, so an id can never point outside the runs root.
    """
    if not isinstance(run_id, str) or not _RUN_ID_RE.fullmatch(run_id):
        raise RunNotFoundError(f"{run_id!r} is not a valid run id.")
    return run_id


def _timestamp_from_id(run_id: str) -> str | None:
    try:
        stamp = dt.datetime.strptime(run_id[:15], "%Y%m%d-%H%M%S")
    except ValueError:
        return None
    return stamp.replace(tzinfo=dt.timezone.utc).isoformat(timespec="milliseconds")


def _relative_file(name: str) -> PurePosixPath:
    """A file name inside a run folder: relative, no ``..``, may contain sub-folders."""
    rel = PurePosixPath(str(name).replace("\\", "/"))
    if not rel.parts or rel.is_absolute() or any(p in ("", ".", "..") for p in rel.parts):
        raise ValueError(f"{name!r} is not a valid file name inside a run folder.")
    return rel


# ----------------------------------------------------------------------------- summaries


@dataclass(frozen=True)
class RunSummary:
    """One line of the runs table: status plus the headline numbers, if any."""

    run_id: str
    name: str
    state: str
    created_at: str | None
    finished_at: str | None
    path: Path
    method: str | None = None
    model: str | None = None
    label_column: str | None = None
    accuracy: float | None = None
    macro_f1: float | None = None
    baseline_macro_f1: float | None = None
    quick_macro_f1: float | None = None
    reason: str | None = None
    #: The folder cannot be read as a run (broken or missing status.json, unknown state).
    damaged: bool = False
    #: A cancelled/interrupted run whose best validation check was saved as a usable model.
    usable_model: bool = False
    #: Validation macro-F1 and epoch of that best check, when known.
    best_validation_macro_f1: float | None = None
    best_epoch: float | None = None
    #: A resumable checkpoint of the unfinished training is in the run folder.
    resumable: bool = False

    @property
    def stopped_early_note(self) -> str | None:
        """ "stopped early — best model from epoch 2 (validation macro-F1 0.888)", or None."""
        if not self.usable_model or self.state == "succeeded":
            return None
        where = f" from epoch {self.best_epoch:g}" if self.best_epoch is not None else ""
        score = (
            f" (validation macro-F1 {self.best_validation_macro_f1:.3f})"
            if self.best_validation_macro_f1 is not None
            else ""
        )
        return f"stopped early — best model{where}{score}"


def _metric(metrics: dict, part: str, key: str) -> float | None:
    section = metrics.get(part)
    value = section.get(key) if isinstance(section, dict) else None
    return float(value) if isinstance(value, (int, float)) else None


def _dict_or_empty(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _text_or(value: Any, default: str | None) -> str | None:
    return str(value) if isinstance(value, (str, int, float)) and str(value) else default


def _number(value: Any) -> float | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    return float(value) if ok else None


def _damage_detail(exc: RunNotFoundError) -> str:
    text = str(exc)
    if "has no status.json" in text:
        return "status.json is missing"
    if "not a JSON object" in text:
        return "status.json is not a JSON object"
    return "status.json is not valid JSON"


# ----------------------------------------------------------------------------------- run


class Run:
    """A handle on one run folder. Cheap to create; every read goes to disk."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.id = self.path.name

    def __repr__(self) -> str:
        return f"Run({self.id!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Run) and other.path == self.path

    def __hash__(self) -> int:
        return hash(self.path)

    @property
    def model_dir(self) -> Path:
        return self.path / "model"

    def file(self, name: str) -> Path:
        """Path of a file inside this run (validated: cannot escape the folder)."""
        return self.path.joinpath(*_relative_file(name).parts)

    def _target(self, name: str) -> Path:
        """Where to write ``name``: sub-folders are created, the run folder itself is not."""
        target = self.file(name)
        if not self.path.is_dir():
            raise RunNotFoundError(f"Run {self.id} no longer exists (was it deleted?).")
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def exists(self, name: str) -> bool:
        return self.file(name).is_file()

    def write_text(self, name: str, text: str) -> None:
        atomic.write_text(self._target(name), text)

    def write_json(self, name: str, obj: Any) -> None:
        atomic.write_json(self._target(name), obj)

    def read_text(self, name: str, default: str | None = None) -> str | None:
        try:
            return self.file(name).read_text(encoding="utf-8")
        except (FileNotFoundError, NotADirectoryError):
            return default

    def read_json(self, name: str, default: Any = _MISSING) -> Any:
        """Parsed JSON; ``default`` if the file is missing or unreadable.

        Without a default, a missing or broken file raises RunNotFoundError with a clear message.
        """
        try:
            text = self.file(name).read_text(encoding="utf-8")
            return json.loads(text)
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            if default is not _MISSING:
                return default
            if isinstance(exc, FileNotFoundError):
                raise RunNotFoundError(f"Run {self.id} has no {name}.") from exc
            raise RunNotFoundError(f"{name} in run {self.id} cannot be read ({exc}).") from exc

    def write_frame(self, name: str, df: pd.DataFrame) -> None:
        """CSV, utf-8, no index, written atomically."""
        buffer = io.StringIO()
        df.to_csv(buffer, index=False)
        self.write_text(name, buffer.getvalue())

    def read_frame(self, name: str, **read_csv_kwargs: Any) -> pd.DataFrame | None:
        """The CSV as a DataFrame, or None if it does not exist.

        Only empty cells count as missing, so texts such as "NA" or "None" survive a
        round trip. Extra keyword arguments go to ``pd.read_csv`` (e.g. ``dtype``).
        """
        path = self.file(name)
        if not path.is_file():
            return None
        options: dict[str, Any] = {"keep_default_na": False, "na_values": [""]}
        options.update(read_csv_kwargs)
        import pandas as pd

        return pd.read_csv(path, encoding="utf-8", **options)

    def automation_threshold(self) -> float | None:
        """The saved "act on its own from this sureness" threshold (0–1), or None if none saved.

        One threshold per run, chosen on the Review page; the try-it box, file scoring, the CLI,
        the model export and the scoring service all read it through here.
        """
        saved = self.read_json(THRESHOLD_FILE, default=None)
        value = saved.get("threshold") if isinstance(saved, dict) else None
        if isinstance(value, (int, float)) and 0.0 <= float(value) <= 1.0:
            return float(value)
        return None

    def automation_threshold_details(self) -> dict:
        """What was saved with the threshold (coverage and accuracy at it, when), or {}."""
        saved = self.read_json(THRESHOLD_FILE, default=None)
        return saved if isinstance(saved, dict) else {}

    def save_automation_threshold(self, value: float, details: dict | None = None) -> None:
        """Save the threshold (0–1) with what the Review page measured at it."""
        if not 0.0 <= float(value) <= 1.0:
            raise ConfigError(f"The threshold must be between 0 and 1, not {value}.")
        saved = {**(details or {}), "threshold": float(value), "saved_at": utc_now_iso()}
        self.write_json(THRESHOLD_FILE, saved)

    # What the pages show, one accessor per run file (no page reads a run file by name).

    def text_columns(self) -> list[str]:
        """The columns the model was trained to read, in order ([] when unknown)."""
        columns = _dict_or_empty(self.read_json("scheme.json", default={})).get("text_columns")
        return [str(c) for c in columns] if isinstance(columns, list) else []

    def train_settings(self) -> dict:
        """The run's training settings (config.json) as saved, or {}."""
        return _dict_or_empty(self.read_json("config.json", default={}))

    def metrics(self) -> dict:
        """Test scores of the model, the baseline and the quick model (metrics.json), or {}."""
        return _dict_or_empty(self.read_json("metrics.json", default={}))

    def history(self) -> dict:
        """Training curves: {"loss": [[step, loss], …], "eval": […]} (history.json), or {}."""
        return _dict_or_empty(self.read_json("history.json", default={}))

    def status(self) -> dict:
        """Contents of status.json (RunNotFoundError if missing or unreadable).

        A run recorded as queued/running whose owning process (pid + start time, this host)
        is gone reads as "interrupted", so every reader agrees without waiting for an app to
        start and recover it. The file itself is rewritten only by ``recover_interrupted``.
        """
        status = self.stored_status()
        if status.get("state") in ACTIVE_STATES and _owner_gone(status):
            status = {**status, "state": "interrupted", "reason": INTERRUPTED_REASON}
        return status

    def stored_status(self) -> dict:
        """status.json exactly as written (no liveness check); RunNotFoundError if unreadable."""
        status = self.read_json(STATUS_FILE)
        if not isinstance(status, dict):
            raise RunNotFoundError(f"status.json in run {self.id} is not a JSON object.")
        return status

    def has_checkpoint(self) -> bool:
        """Whether a resumable training checkpoint is saved in this run folder."""
        return (self.path / CHECKPOINT_DIR / "trainer_state.json").is_file()

    def set_status(self, state: str, **fields: Any) -> dict:
        """Merge ``fields`` into status.json and move to ``state``.

        ``started_at`` is stamped when the run starts running, ``finished_at`` when it
        reaches a finished state. Returns the new status.
        """
        if state not in RUN_STATES:
            raise ValueError(f"Unknown run state {state!r}; expected one of {RUN_STATES}.")
        with _STATUS_LOCK:
            status = self.read_json(STATUS_FILE, default={})
            status = dict(status) if isinstance(status, dict) else {}
            now = utc_now_iso()
            if state == "running" and status.get("state") != "running":
                status["started_at"] = now
            if state in FINISHED_STATES:
                status["finished_at"] = now
            else:
                status["finished_at"] = None
                status.update(_owner())
            status.update(fields)
            _drop_stale_start(status, fields)
            status["state"] = state
            self.write_json(STATUS_FILE, status)
            return status

    def summary(self) -> RunSummary:
        """Status plus config/scheme/metrics headlines; never raises for a broken folder."""
        try:
            status = self.status()
        except RunNotFoundError as exc:
            return self._unreadable_summary(_damage_detail(exc))
        config = _dict_or_empty(self.read_json("config.json", default={}))
        scheme = _dict_or_empty(self.read_json("scheme.json", default={}))
        metrics = _dict_or_empty(self.read_json("metrics.json", default={}))
        state = status.get("state")
        if state not in RUN_STATES:
            return self._unreadable_summary(f"status.json names an unknown state {state!r}")
        best = _dict_or_empty(status.get("best_model"))
        return RunSummary(
            run_id=self.id,
            name=_text_or(status.get("name"), self.id),
            state=state,
            created_at=_text_or(status.get("created_at"), _timestamp_from_id(self.id)),
            finished_at=_text_or(status.get("finished_at"), None),
            path=self.path,
            method=config.get("method"),
            model=config.get("model"),
            label_column=scheme.get("label_column"),
            accuracy=_metric(metrics, "model", "accuracy"),
            macro_f1=_metric(metrics, "model", "macro_f1"),
            baseline_macro_f1=_metric(metrics, "baseline", "macro_f1"),
            quick_macro_f1=_metric(metrics, "quick", "macro_f1"),
            reason=_text_or(status.get("reason"), None),
            usable_model=status.get(USABLE_MODEL_FIELD) is True,
            best_validation_macro_f1=_number(best.get("validation_macro_f1")),
            best_epoch=_number(best.get("epoch")),
            resumable=state in ("cancelled", "interrupted") and self.has_checkpoint(),
        )

    def _unreadable_summary(self, detail: str) -> RunSummary:
        return RunSummary(
            run_id=self.id,
            name=self.id,
            state="failed",
            created_at=_timestamp_from_id(self.id),
            finished_at=None,
            path=self.path,
            reason=f"{UNREADABLE_REASON}: {detail}",
            damaged=True,
        )


# ----------------------------------------------------------------------------- the store


class RunStore:
    """All runs under one root folder."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else default_runs_dir()
        self.root.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"RunStore({str(self.root)!r})"

    def create(self, name: str | None = None, **status_fields: Any) -> Run:
        """New run folder with status.json in state "queued"; ``name`` is the display name.

        The folder appears with its status.json already inside (written in a hidden staging
        folder, then renamed into place), so a reader listing runs at that moment never meets
        a run folder without a status.
        """
        display = (name or "").strip() or "Untitled run"
        now = dt.datetime.now(dt.timezone.utc)
        status = {
            "state": "queued",
            "name": display,
            "created_at": now.isoformat(timespec="microseconds"),
            "started_at": None,
            "finished_at": None,
            "reason": None,
            **_owner(),
        }
        status.update(status_fields)
        _drop_stale_start(status, status_fields)
        status["state"] = "queued"
        self.root.mkdir(parents=True, exist_ok=True)
        staging = self.root / f".new-{os.getpid()}-{threading.get_ident()}-{now:%H%M%S%f}"
        staging.mkdir()
        try:
            Run(staging).write_json(STATUS_FILE, status)
            return Run(self._move_into_free_id(staging, f"{now:%Y%m%d-%H%M%S}-{slugify(name)}"))
        finally:
            shutil.rmtree(staging, ignore_errors=True)  # gone already unless the move failed

    def _move_into_free_id(self, staging: Path, base: str) -> Path:
        """Rename ``staging`` to the first free id: a rename onto a run folder (never empty,
        it holds status.json) fails, which makes the rename the atomic "is this id free"."""
        suffix = 1
        while True:
            path = self.root / (base if suffix == 1 else f"{base}-{suffix}")
            try:
                if not path.exists():
                    staging.rename(path)
                    return path
            except OSError as exc:  # taken between the check and the rename
                if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY) and not path.exists():
                    raise
            suffix += 1

    def path_for(self, run_id: str) -> Path:
        return self.root / validate_run_id(run_id)

    def get(self, run_id: str) -> Run:
        path = self.path_for(run_id)
        if not path.is_dir():
            raise RunNotFoundError(
                f"Run {run_id} does not exist in {self.root}. It may have been deleted."
            )
        return Run(path)

    def exists(self, run_id: str) -> bool:
        try:
            return self.path_for(run_id).is_dir()
        except RunNotFoundError:
            return False

    def runs(self) -> list[Run]:
        """Every run folder (valid id, is a directory), unordered."""
        try:
            entries = list(self.root.iterdir())
        except FileNotFoundError:
            return []
        return [Run(p) for p in entries if _RUN_ID_RE.fullmatch(p.name) and p.is_dir()]

    def list(self) -> list[RunSummary]:
        """All runs, newest first. Broken folders show as failed "unreadable run folder"."""
        summaries = [run.summary() for run in self.runs()]
        summaries.sort(key=lambda s: (s.created_at or "", s.run_id), reverse=True)
        return summaries

    def rename(self, run_id: str, name: str) -> None:
        """Change the display name only; the id and folder stay."""
        display = (name or "").strip()
        if not display:
            raise ConfigError("A run name cannot be empty.")
        run = self.get(run_id)
        with _STATUS_LOCK:
            status = run.stored_status()
            status["name"] = display
            run.write_json(STATUS_FILE, status)

    def delete(self, run_id: str) -> None:
        """Remove the run folder.

        The folder is first renamed to a hidden name, so a half-finished delete never shows
        up in the listing as a broken run.
        """
        run = self.get(run_id)
        trash = self.root / f".deleting-{run.id}-{os.getpid()}-{threading.get_ident()}"
        os.replace(run.path, trash)
        shutil.rmtree(trash, ignore_errors=True)

    def recover_interrupted(self) -> list[str]:
        """Mark runs left queued/running by a process that died as "interrupted".

        Runs still owned by a live job in this process, or by another live process on this
        machine (e.g. the CLI next to the app), are left alone.
        """
        self._sweep_leftovers()
        recovered = []
        for run in self.runs():
            try:
                status = run.stored_status()
            except RunNotFoundError:
                continue
            if status.get("state") in ACTIVE_STATES and not _owner_alive(run, status):
                run.set_status("interrupted", reason=INTERRUPTED_REASON)
                recovered.append(run.id)
        return sorted(recovered)

    def _sweep_leftovers(self) -> None:
        """Remove hidden staging (``.new-…``) and half-deleted (``.deleting-…``) folders whose
        process is gone: a process killed between ``create``'s write and rename, or during a
        delete, leaves one behind. They are never listed; this only gives back the disk."""
        try:
            entries = list(self.root.iterdir())
        except FileNotFoundError:
            return
        for path in entries:
            pid = _leftover_pid(path.name)
            if pid is None or pid == os.getpid() or _process_started(pid) is not None:
                continue
            shutil.rmtree(path, ignore_errors=True)


def _leftover_pid(name: str) -> int | None:
    """The pid in a staging or trash folder name (see ``create`` and ``delete``), else None."""
    parts = name.split("-")
    if name.startswith(".new-") and len(parts) >= 4:
        field = parts[1]
    elif name.startswith(".deleting-") and len(parts) >= 4:
        field = parts[-2]
    else:
        return None
    return int(field) if field.isdigit() else None


# ----------------------------------------------------------------------- run ownership


def _process_started(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except (psutil.Error, OSError):
        return None


_OWN_START = _process_started(os.getpid())


def _owner() -> dict[str, Any]:
    """Who works on a run: pid, host and the process's start time (guards against pid reuse)."""
    return {"pid": os.getpid(), "host": socket.gethostname(), "pid_started": _OWN_START}


def _drop_stale_start(status: dict, fields: dict) -> None:
    """An owner pid given without its start time must not inherit this process's."""
    if "pid" in fields and "pid_started" not in fields:
        status.pop("pid_started", None)


def _owner_gone(status: dict) -> bool:
    """True only when the recorded owner is another process on this host that no longer runs.

    Runs of this process are judged by its job manager (``recover_interrupted``); runs of
    another host cannot be checked from here and are taken at their word.
    """
    pid, host = status.get("pid"), status.get("host")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    if host != socket.gethostname() or pid == os.getpid():
        return False
    started = _process_started(pid)
    if started is None:
        return True
    recorded = status.get("pid_started")  # a different start time: the pid was reused
    return isinstance(recorded, (int, float)) and abs(started - float(recorded)) > 1.0


def mark_live(run: Run, live: bool = True) -> None:
    """Register (or release) a run as being worked on by this process right now."""
    with _STATUS_LOCK:
        if live:
            _LIVE_RUNS.add(run.path.resolve())
        else:
            _LIVE_RUNS.discard(run.path.resolve())


def _owner_alive(run: Run, status: dict) -> bool:
    """Whether an active run still has a live owner (this process's jobs or another process)."""
    pid, host = status.get("pid"), status.get("host")
    if not isinstance(pid, int) or pid <= 0 or pid == os.getpid() or host != socket.gethostname():
        with _STATUS_LOCK:
            return run.path.resolve() in _LIVE_RUNS
    return not _owner_gone(status)
