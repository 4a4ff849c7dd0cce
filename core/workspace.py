"""What the browser app must keep across a page refresh: uploaded files and label-scheme drafts.

A refresh starts a new Streamlit session, so nothing in session state survives it. The app keeps
the id of the current upload in the URL (``?data=<id>``) and finds the file and the analyst's
half-finished label setup here, and the text encoding the analyst chose for the file ("encoding"
in meta.json; absent or null: detect it). Layout::

    <workspace>/uploads/<upload id>/data        the uploaded bytes, as uploaded
    <workspace>/uploads/<upload id>/meta.json   {"filename", "size_bytes", "saved_at", "encoding"}
    <workspace>/uploads/<upload id>/draft.json  column choices and label edits (any JSON dict)

The workspace lives in ``$TICKETTUNE_WORKSPACE_DIR`` if set, else in ``<runs dir>/_workspace``;
that name is not a run id, so the runs list never shows it.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from core import atomic
from core.errors import DataError
from core.runs import default_runs_dir, utc_now_iso

WORKSPACE_ENV = "TICKETTUNE_WORKSPACE_DIR"
WORKSPACE_FOLDER = "_workspace"
DATA_FILE = "data"
META_FILE = "meta.json"
DRAFT_FILE = "draft.json"
KEEP_UPLOADS = 30

_UPLOAD_ID_RE = re.compile(r"^[0-9a-f]{16}$")


def default_workspace_dir() -> Path:
    """``$TICKETTUNE_WORKSPACE_DIR`` if set, else ``<runs dir>/_workspace``."""
    env = os.environ.get(WORKSPACE_ENV)
    if env:
        return Path(env).expanduser()
    return default_runs_dir() / WORKSPACE_FOLDER


def is_upload_id(value: object) -> bool:
    return isinstance(value, str) and bool(_UPLOAD_ID_RE.fullmatch(value))


class Workspace:
    """Uploads and drafts under one folder. Cheap to create; every call goes to disk."""

    def __init__(self, root: str | os.PathLike | None = None, *, keep: int = KEEP_UPLOADS):
        self.root = Path(root) if root is not None else default_workspace_dir()
        self.keep = keep

    def _folder(self, upload_id: str) -> Path:
        if not is_upload_id(upload_id):
            raise DataError(f"'{upload_id}' is not a valid upload id. Upload the file again.")
        return self.root / "uploads" / upload_id

    def save_upload(self, data: bytes, filename: str) -> str:
        """Store an uploaded file; the id is a hash of name and content (same file, same id)."""
        name = _safe_filename(filename)
        digest = hashlib.sha256(name.encode("utf-8") + b"\0")
        digest.update(data)  # no joined copy of a large upload
        upload_id = digest.hexdigest()[:16]
        folder = self._folder(upload_id)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            if not (folder / DATA_FILE).is_file():
                atomic.write_bytes(folder / DATA_FILE, data)
            meta = {"filename": name, "size_bytes": len(data), "saved_at": utc_now_iso()}
            meta["encoding"] = _read_json(folder / META_FILE).get("encoding")
            atomic.write_json(folder / META_FILE, meta)
        except OSError as exc:
            shutil.rmtree(folder, ignore_errors=True)
            full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
            why = "the server's disk is full" if full else f"the server could not write it ({exc})"
            raise DataError(
                f"The file was not saved: {why}. Free some disk space (old runs can be deleted "
                "on the Runs page) and upload it again."
            ) from exc
        self.prune(keep_id=upload_id)
        return upload_id

    def folder(self, upload_id: str) -> Path:
        """The upload's folder, where what belongs to it (label decisions, audits) is kept."""
        return self._folder(upload_id)

    def data_path(self, upload_id: str) -> Path:
        """Where the upload's bytes are, to stream them (DataError if they are gone)."""
        path = self._folder(upload_id) / DATA_FILE
        if not path.is_file():
            raise DataError("The uploaded file is no longer on the server. Upload it again.")
        return path

    def load_upload(self, upload_id: str) -> tuple[bytes, str]:
        """The bytes and file name of an upload; DataError if it is gone."""
        folder = self._folder(upload_id)
        try:
            data = (folder / DATA_FILE).read_bytes()
        except OSError:
            raise DataError(
                "The uploaded file is no longer on the server (it may have been cleaned up). "
                "Upload it again."
            ) from None
        meta = _read_json(folder / META_FILE)
        return data, str(meta.get("filename") or "upload.csv")

    def save_encoding(self, upload_id: str, encoding: str | None) -> None:
        """Remember the text encoding the analyst chose for this upload (None: detect it)."""
        folder = self._folder(upload_id)
        meta = _read_json(folder / META_FILE)
        if not meta:
            raise DataError("The uploaded file is no longer on the server. Upload it again.")
        atomic.write_json(folder / META_FILE, {**meta, "encoding": encoding or None})

    def load_encoding(self, upload_id: str) -> str | None:
        """The text encoding the analyst chose for this upload, or None (detect it)."""
        if not is_upload_id(upload_id):
            return None
        encoding = _read_json(self._folder(upload_id) / META_FILE).get("encoding")
        return encoding if isinstance(encoding, str) and encoding else None

    def has_upload(self, upload_id: str) -> bool:
        return is_upload_id(upload_id) and (self._folder(upload_id) / DATA_FILE).is_file()

    def save_draft(self, upload_id: str, draft: dict[str, Any]) -> None:
        """Store the analyst's choices for this upload (replaces the previous draft)."""
        folder = self._folder(upload_id)
        if not folder.is_dir():
            raise DataError("The uploaded file is no longer on the server. Upload it again.")
        atomic.write_json(folder / DRAFT_FILE, dict(draft))

    def load_draft(self, upload_id: str) -> dict[str, Any] | None:
        """The saved draft, or None if there is none (or it cannot be read)."""
        if not is_upload_id(upload_id):
            return None
        draft = _read_json(self._folder(upload_id) / DRAFT_FILE)
        return draft or None

    def delete_upload(self, upload_id: str) -> None:
        shutil.rmtree(self._folder(upload_id), ignore_errors=True)

    def prune(self, keep_id: str | None = None) -> None:
        """Keep only the ``keep`` most recently saved uploads (and ``keep_id``)."""
        uploads = self.root / "uploads"
        folders = [p for p in uploads.iterdir() if p.is_dir()] if uploads.is_dir() else []
        folders.sort(key=_mtime, reverse=True)
        for folder in folders[self.keep :]:
            if folder.name != keep_id:
                shutil.rmtree(folder, ignore_errors=True)


def _mtime(path: Path) -> float:
    try:
        return (path / META_FILE).stat().st_mtime
    except OSError:
        return 0.0


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _safe_filename(filename: str | None) -> str:
    """The last path part of an uploaded name, without control characters."""
    name = os.path.basename(str(filename or "").replace("\\", "/")).strip()
    name = "".join(ch for ch in name if ch.isprintable())
    return name[:200] or "upload.csv"
