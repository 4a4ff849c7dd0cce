"""Work already done for the same input, kept so the next run does not do it again.

A full run on the file a quick run just used reads every ticket with the same frozen model,
fits the same word-count baseline and the same quick head. Those results are stored here,
under a key that is the SHA-256 of everything they depend on: the model's weights (file
digests, not names), the exact texts and labels, the settings, and the library versions. A
different byte anywhere gives a different key, so a stored result is used only when it is
provably the result of the same computation.

Stored as ``.npz`` arrays (loaded with ``allow_pickle=False``) plus JSON, never pickles, in
``<runs folder>/.reuse/``; the folder name cannot be a run id, so run listings skip it. Deleting
it at any time is safe: the next run recomputes.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core import atomic

REUSE_DIR = ".reuse"
#: How many stored results to keep; the oldest (by last use) are removed beyond that.
MAX_ENTRIES = 64

log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=64)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_identity(source: str) -> str:
    """What the weights are: SHA-256 of every weight and config file of a local folder
    (memoised by path, size and modification time); a hub id stands for itself."""
    folder = Path(source)
    if not folder.is_dir():
        return f"hub:{source}"
    parts = []
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.suffix in (".safetensors", ".json", ".txt", ".model"):
            stat = path.stat()
            digest = _file_digest(str(path), stat.st_size, stat.st_mtime_ns)
            parts.append(f"{path.relative_to(folder).as_posix()}={digest}")
    return "folder:" + ";".join(parts)


def content_key(kind: str, *parts: Any) -> str:
    """SHA-256 over ``kind`` and ``parts`` (strings, numbers, sequences of strings, arrays)."""
    digest = hashlib.sha256(kind.encode())
    for part in parts:
        digest.update(b"\x1e")
        if isinstance(part, np.ndarray):
            digest.update(str((part.dtype, part.shape)).encode())
            digest.update(np.ascontiguousarray(part).tobytes())
        elif isinstance(part, (list, tuple)):
            for item in part:
                digest.update(str(item).encode("utf-8", "surrogatepass"))
                digest.update(b"\x1f")
        else:
            digest.update(json.dumps(part, sort_keys=True, default=str).encode())
    return digest.hexdigest()


class WorkCache:
    """Arrays and small JSON facts by content key, in one folder beside the runs."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)

    @classmethod
    def beside(cls, runs_root: str | os.PathLike) -> WorkCache:
        return cls(Path(runs_root) / REUSE_DIR)

    def _path(self, key: str) -> Path:
        return self.folder / f"{key}.npz"

    def load(self, key: str) -> dict[str, np.ndarray] | None:
        """The arrays stored under ``key``, or None (missing or unreadable: recompute)."""
        path = self._path(key)
        try:
            with np.load(path, allow_pickle=False) as stored:
                arrays = {name: stored[name] for name in stored.files}
        except (OSError, ValueError, EOFError) as exc:
            if path.exists():
                log.warning("Ignoring an unreadable stored result %s: %s", path.name, exc)
            return None
        os.utime(path)  # last use, for pruning
        return arrays

    def save(self, key: str, **arrays: np.ndarray) -> None:
        """Store ``arrays`` under ``key`` atomically; a failure (full disk) only logs."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            buffer = io.BytesIO()
            np.savez(buffer, **arrays)
            atomic.write_bytes(self._path(key), buffer.getvalue())
            self._prune()
        except OSError as exc:
            log.warning("Could not store a result for reuse (%s); the next run recomputes.", exc)

    def _prune(self) -> None:
        entries = sorted(self.folder.glob("*.npz"), key=lambda p: p.stat().st_mtime)
        for old in entries[:-MAX_ENTRIES]:
            old.unlink(missing_ok=True)


def strings(values: Iterable[Any]) -> list[str]:
    return [str(v) for v in values]


def labels_array(values: Sequence[str]) -> np.ndarray:
    """Class names as a fixed-width unicode array (storable without pickles)."""
    return np.asarray([str(v) for v in values], dtype=np.str_)
