"""Atomic writes: readers see the old content or the new, never half of either.

A file is written to a temp file in the same folder, flushed and fsynced, then moved over the
target with ``os.replace``; the folder is fsynced so the rename itself survives a power cut. A
whole folder (a saved model) is filled in a staging folder next to the target and swapped in.
Every file TicketTune writes goes through here.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

STAGING_SUFFIX = ".partial"


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that readers never see a partial file.

    The folder must exist: a writer must not silently re-create a deleted run folder.
    """
    target = Path(path)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    fsync_dir(target.parent)


def write_text(path: str | os.PathLike, text: str) -> None:
    """UTF-8 text, written atomically."""
    write_bytes(path, text.encode("utf-8"))


def json_default(obj: Any) -> Any:
    """``json.dumps`` fallback for numpy scalars/arrays, paths, timestamps and sets.

    numpy is looked up, not imported: a numpy object exists only once numpy is loaded, and
    ``python -m core runs`` must not pay for loading it."""
    np = sys.modules.get("numpy")
    if np is not None and isinstance(obj, np.generic):
        return obj.item()
    if np is not None and isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, (dt.datetime, dt.date)):  # pandas' Timestamp is a datetime
        return obj.isoformat()
    if isinstance(obj, (set, frozenset)):
        return sorted(obj, key=str)
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def to_json_text(obj: Any) -> str:
    """Indented UTF-8 JSON with a final newline (numpy and friends allowed)."""
    return json.dumps(obj, indent=2, ensure_ascii=False, default=json_default) + "\n"


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Serialise first (so a bad object never touches the disk), then write atomically."""
    write_text(path, to_json_text(obj))


def fsync_dir(folder: str | os.PathLike) -> None:
    """Persist renames inside ``folder`` (best effort; not supported on every platform)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def replace_folder(target: str | os.PathLike, fill: Callable[[Path], None]) -> None:
    """Build a folder with ``fill(staging)`` and swap it in for ``target`` in one step.

    If ``fill`` fails, ``target`` is untouched and the staging folder is removed. The old
    folder is first moved aside (a rename), so at no moment does ``target`` hold a mix.
    """
    target = Path(target)
    staging = target.with_name(target.name + STAGING_SUFFIX)
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        fill(staging)
        for path in staging.rglob("*"):
            if path.is_file():
                with open(path, "rb") as handle:
                    os.fsync(handle.fileno())
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        os.replace(target, old)
    os.replace(staging, target)
    fsync_dir(target.parent)
    shutil.rmtree(old, ignore_errors=True)
