"""The workspace keeps uploads and label-scheme drafts so they survive a browser refresh."""

from __future__ import annotations

import errno

import pytest

import core.workspace as workspace_module
from core.errors import DataError
from core.runs import RunStore
from core.workspace import (
    WORKSPACE_ENV,
    Workspace,
    default_workspace_dir,
)


@pytest.fixture
def runs_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TICKETTUNE_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.delenv(WORKSPACE_ENV, raising=False)
    return tmp_path / "runs"


def test_upload_round_trip(runs_dir):
    data = b"subject,category\nPrinter broken,hardware\n"
    upload_id = Workspace().save_upload(data, "tickets.csv")
    assert Workspace().load_upload(upload_id) == (data, "tickets.csv")
    assert Workspace().save_upload(data, "tickets.csv") == upload_id  # same file, same id
    assert Workspace().save_upload(data, "other.csv") != upload_id


def test_draft_round_trip(runs_dir):
    upload_id = Workspace().save_upload(b"a,b\n1,2\n", "t.csv")
    assert Workspace().load_draft(upload_id) is None
    draft = {"text_columns": ["subject", "body"], "label_column": "category", "rename": {"a": "b"}}
    Workspace().save_draft(upload_id, draft)
    assert Workspace().load_draft(upload_id) == draft


def test_chosen_encoding_is_kept_with_the_upload(tmp_path):
    """The encoding an analyst picks survives a new session and the same file uploaded again;
    None means detect it."""
    workspace = Workspace(tmp_path)
    upload_id = workspace.save_upload("id,тема\n1,Принтер\n".encode("cp1251"), "t.csv")
    assert workspace.load_encoding(upload_id) is None
    workspace.save_encoding(upload_id, "cp1251")
    assert Workspace(tmp_path).load_encoding(upload_id) == "cp1251"
    workspace.save_upload("id,тема\n1,Принтер\n".encode("cp1251"), "t.csv")
    assert workspace.load_encoding(upload_id) == "cp1251"
    workspace.save_encoding(upload_id, None)
    assert workspace.load_encoding(upload_id) is None
    workspace.delete_upload(upload_id)
    with pytest.raises(DataError, match="Upload it again"):
        workspace.save_encoding(upload_id, "cp1251")


def test_workspace_is_beside_the_runs_and_not_listed(runs_dir):
    store = RunStore()
    Workspace().save_upload(b"a,b\n1,2\n", "t.csv")
    assert default_workspace_dir().is_relative_to(store.root)
    assert store.list() == []
    assert store.recover_interrupted() == []


def test_env_overrides_the_folder(tmp_path, monkeypatch):
    monkeypatch.setenv(WORKSPACE_ENV, str(tmp_path / "ws"))
    upload_id = Workspace().save_upload(b"x,y\n1,2\n", "../../evil/name.csv")
    assert (tmp_path / "ws" / "uploads" / upload_id).is_dir()
    assert Workspace().load_upload(upload_id)[1] == "name.csv"


@pytest.mark.parametrize("bad_id", ["../etc", "", "ABCDEF0123456789", "0" * 15, None])
def test_bad_or_missing_ids_give_a_plain_error(tmp_path, bad_id):
    workspace = Workspace(tmp_path)
    with pytest.raises(DataError):
        workspace.load_upload(bad_id)
    assert workspace.load_draft(bad_id) is None


def test_missing_upload_says_upload_again(tmp_path):
    with pytest.raises(DataError, match="Upload it again"):
        Workspace(tmp_path).load_upload("0123456789abcdef")


def test_prune_keeps_the_newest(tmp_path):
    workspace = Workspace(tmp_path, keep=2)
    ids = [workspace.save_upload(f"a,b\n{i},2\n".encode(), "t.csv") for i in range(4)]
    assert workspace.has_upload(ids[-1])
    kept = [i for i in ids if workspace.has_upload(i)]
    assert len(kept) == 2


def test_full_disk_on_upload_is_a_plain_error_and_leaves_nothing(tmp_path, monkeypatch):
    """A full disk while saving an upload says so in words, and no half-saved upload remains."""

    def no_space(path, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(workspace_module.atomic, "write_bytes", no_space)
    workspace = Workspace(tmp_path)
    with pytest.raises(DataError, match="disk is full"):
        workspace.save_upload(b"text,label\nhi,a\n", "tickets.csv")
    assert list((tmp_path / "uploads").iterdir()) == []
