"""Atomic writes: a crash or a full disk mid-write leaves the old content, never half of it."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import numpy as np
import pytest

from core import atomic


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith((".tmp", ".partial")))


def test_write_json_handles_numpy_and_replaces(tmp_path: Path) -> None:
    """JSON with numpy scalars/arrays is written, and a second write replaces the first."""
    target = tmp_path / "a.json"
    atomic.write_json(target, {"x": np.int64(3), "y": np.float32(0.5), "z": np.arange(2)})
    atomic.write_json(target, {"x": np.int64(4), "ok": np.bool_(True)})
    assert json.loads(target.read_text(encoding="utf-8")) == {"x": 4, "ok": True}
    assert _leftovers(tmp_path) == []


def test_write_bytes_round_trip_and_needs_the_folder(tmp_path: Path) -> None:
    atomic.write_bytes(tmp_path / "b.bin", b"\x00\x01")
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    with pytest.raises(FileNotFoundError):
        atomic.write_bytes(tmp_path / "gone" / "b.bin", b"x")
    assert not (tmp_path / "gone").exists()


@pytest.mark.parametrize("step", ["write", "fsync", "replace"])
def test_crash_mid_write_keeps_the_old_file(tmp_path: Path, monkeypatch, step: str) -> None:
    """Whichever step dies (a kill or a full disk), the old text survives and no temp remains."""
    target = tmp_path / "notes.txt"
    atomic.write_text(target, "old content")

    def fail(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    if step == "write":
        real_fdopen = os.fdopen

        class Failing:
            def __init__(self, *args, **kwargs):
                self.handle = real_fdopen(*args, **kwargs)

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.handle.close()

            def write(self, data):
                self.handle.write(data[: len(data) // 2])
                self.handle.flush()
                fail()

        monkeypatch.setattr(atomic.os, "fdopen", Failing)
    else:
        monkeypatch.setattr(atomic.os, step, fail)
    with pytest.raises(OSError) as info:
        atomic.write_text(target, "new content that never fits")
    monkeypatch.undo()

    assert info.value.errno == errno.ENOSPC
    assert target.read_text(encoding="utf-8") == "old content"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_unserialisable_json_never_touches_disk(tmp_path: Path) -> None:
    """A TypeError from json happens before any file is opened: nothing is changed."""
    target = tmp_path / "x.json"
    atomic.write_json(target, {"a": 1})
    with pytest.raises(TypeError):
        atomic.write_json(target, {"a": object()})
    assert json.loads(target.read_text(encoding="utf-8")) == {"a": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.json"]


def _fill(files: dict[str, str]):
    def fill(folder: Path) -> None:
        for name, text in files.items():
            (folder / name).write_text(text, encoding="utf-8")

    return fill


def test_replace_folder_swaps_the_whole_folder(tmp_path: Path) -> None:
    """The new folder replaces the old one entirely: no file of the old one is left over."""
    target = tmp_path / "model"
    atomic.replace_folder(target, _fill({"weights": "v1", "old-only": "x"}))
    atomic.replace_folder(target, _fill({"weights": "v2", "meta": "m"}))
    assert sorted(p.name for p in target.iterdir()) == ["meta", "weights"]
    assert (target / "weights").read_text(encoding="utf-8") == "v2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_replace_folder_crash_while_filling_keeps_the_old_folder(tmp_path: Path) -> None:
    """A failure half-way through writing the new folder leaves the old one as it was."""
    target = tmp_path / "model"
    atomic.replace_folder(target, _fill({"weights": "v1"}))

    def half_then_crash(folder: Path) -> None:
        (folder / "weights").write_text("v2 half", encoding="utf-8")
        raise KeyboardInterrupt("simulated kill")

    with pytest.raises(KeyboardInterrupt):
        atomic.replace_folder(target, half_then_crash)
    assert sorted(p.name for p in target.iterdir()) == ["weights"]
    assert (target / "weights").read_text(encoding="utf-8") == "v1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_replace_folder_clears_a_stale_staging_folder(tmp_path: Path) -> None:
    """A staging folder left by an earlier crash does not leak into the new folder."""
    (tmp_path / "model.partial").mkdir()
    (tmp_path / "model.partial" / "stale").write_text("old", encoding="utf-8")
    atomic.replace_folder(tmp_path / "model", _fill({"weights": "v1"}))
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == ["weights"]
    assert _leftovers(tmp_path) == []
