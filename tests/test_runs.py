"""Run storage: atomic writes, run ids, listing, rename/delete, crash recovery."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import psutil
import pytest

from core import atomic
from core import runs as runs_module
from core.errors import ConfigError, RunNotFoundError
from core.runs import (
    FINISHED_STATES,
    INTERRUPTED_REASON,
    RUN_STATES,
    STATE_LABELS,
    Run,
    RunStore,
    default_runs_dir,
    mark_live,
    slugify,
    validate_run_id,
)


@pytest.fixture
def store(tmp_path: Path) -> RunStore:
    return RunStore(tmp_path / "runs")


def _leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


# ------------------------------------------------------------------------ atomic writes


def test_crash_in_replace_keeps_old_file_and_no_temp(
    store: RunStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the process dies at os.replace, the old file is intact and no temp file remains."""
    run = store.create("Crash test")
    run.write_json("metrics.json", {"model": {"macro_f1": 0.5}})

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("simulated kill")

    monkeypatch.setattr(atomic.os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        run.write_json("metrics.json", {"model": {"macro_f1": 0.9}})
    monkeypatch.undo()

    assert run.read_json("metrics.json") == {"model": {"macro_f1": 0.5}}
    assert _leftovers(run.path) == []
    assert [s.macro_f1 for s in store.list()] == [0.5]


# ------------------------------------------------------------------------------ run ids


def test_default_runs_dir_env_and_repo_root(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The env var wins; otherwise runs/ sits next to the core package."""
    monkeypatch.setenv("TICKETTUNE_RUNS_DIR", str(tmp_path / "elsewhere"))
    assert default_runs_dir() == tmp_path / "elsewhere"
    monkeypatch.delenv("TICKETTUNE_RUNS_DIR")
    assert default_runs_dir() == Path(runs_module.__file__).resolve().parent.parent / "runs"


def test_slugify_rules() -> None:
    """Slugs are lowercase ascii/digits/dashes, at most 40 chars, "run" when empty."""
    assert slugify("Billing vs. Access — Ünïcode!") == "billing-vs-access-unicode"
    assert slugify(None) == slugify("") == slugify("!!!") == "run"
    assert len(slugify("x" * 100)) == 40
    assert slugify("../../etc/passwd") == "etc-passwd"


def test_run_ids_are_unique_and_valid(store: RunStore) -> None:
    """Same name in the same second gets -2, -3 suffixes; every id passes validation."""
    ids = [store.create("Same name").id for _ in range(3)]
    assert len(set(ids)) == 3
    for run_id in ids:
        assert validate_run_id(run_id) == run_id
        assert "same-name" in run_id
    assert any(i.endswith("-2") for i in ids) or len({i[:15] for i in ids}) > 1


@pytest.mark.parametrize(
    "bad", ["../etc", "a/b", "..", "", "20260101-120000-run/../../x", "20260101-120000-Run", "x"]
)
def test_path_traversal_rejected(store: RunStore, bad: str) -> None:
    """Ids with separators, "..", or not matching the pattern never reach the filesystem."""
    with pytest.raises(RunNotFoundError):
        validate_run_id(bad)
    with pytest.raises(RunNotFoundError):
        store.get(bad)
    with pytest.raises(RunNotFoundError):
        store.delete(bad)


def test_file_names_cannot_escape_run(store: RunStore) -> None:
    """write_*/read_* reject absolute paths and "..", but allow sub-folders."""
    run = store.create("files")
    for bad in ("../status.json", "/etc/passwd", "a/../../b"):
        with pytest.raises(ValueError):
            run.write_text(bad, "x")
    run.write_text("model/labels.txt", "a\nb")
    assert (run.model_dir / "labels.txt").read_text(encoding="utf-8") == "a\nb"


def test_get_unknown_run_has_clear_message(store: RunStore) -> None:
    """A well-formed but missing id raises RunNotFoundError naming the id."""
    with pytest.raises(RunNotFoundError, match="20200101-000000-missing"):
        store.get("20200101-000000-missing")


# ------------------------------------------------------------------------- run files


def test_status_lifecycle_stamps_times(store: RunStore) -> None:
    """create -> queued; running stamps started_at; a finished state stamps finished_at."""
    run = store.create("Life", method="quick")
    status = run.status()
    assert status["state"] == "queued" and status["name"] == "Life"
    assert status["method"] == "quick" and status["created_at"]
    assert run.set_status("running")["started_at"]
    done = run.set_status("succeeded", reason=None, result={"macro_f1": 0.8})
    assert done["finished_at"] and done["started_at"] and done["result"]["macro_f1"] == 0.8
    assert set(FINISHED_STATES) < set(RUN_STATES)
    with pytest.raises(ValueError):
        run.set_status("exploded")


def test_read_json_default_and_missing(store: RunStore) -> None:
    """read_json returns the default for missing/broken files, else a clear error."""
    run = store.create()
    assert run.read_json("nope.json", default=None) is None
    with pytest.raises(RunNotFoundError, match=r"nope\.json"):
        run.read_json("nope.json")
    run.write_text("broken.json", "{not json")
    assert run.read_json("broken.json", default={}) == {}
    with pytest.raises(RunNotFoundError):
        run.read_json("broken.json")
    assert run.read_text("nope.txt") is None


def test_frame_round_trip_keeps_na_like_texts(store: RunStore) -> None:
    """CSV round trip keeps unicode and texts such as "NA"/"None" (not read as missing)."""
    run = store.create()
    df = pd.DataFrame({"text": ["NA", "None", "Grüße, «ok»"], "n": [1, 2, 3]})
    run.write_frame("tickets.csv", df)
    back = run.read_frame("tickets.csv")
    assert back["text"].tolist() == ["NA", "None", "Grüße, «ok»"]
    assert back["n"].tolist() == [1, 2, 3]
    assert run.read_frame("missing.csv") is None


def test_summary_reads_config_scheme_metrics(store: RunStore) -> None:
    """The summary pulls method/model, label column and the three macro F1 numbers."""
    run = store.create("Full run")
    run.write_json("config.json", {"method": "lora", "model": "distilbert"})
    run.write_json("scheme.json", {"label_column": "Category"})
    run.write_json(
        "metrics.json",
        {"model": {"accuracy": 0.9, "macro_f1": 0.85}, "baseline": {"macro_f1": 0.7}},
    )
    s = run.summary()
    assert (s.method, s.model, s.label_column) == ("lora", "distilbert", "Category")
    assert (s.accuracy, s.macro_f1, s.baseline_macro_f1, s.quick_macro_f1) == (
        0.9,
        0.85,
        0.7,
        None,
    )


# ---------------------------------------------------------------------------- listing


def test_list_newest_first_and_tolerates_broken_folders(store: RunStore) -> None:
    """Broken/missing status.json shows as failed "unreadable run folder"; stray files ignored."""
    first = store.create("first")
    second = store.create("second")
    broken = store.create("broken")
    broken.write_text("status.json", "{truncated")
    empty = store.root / "20000101-000000-empty"
    empty.mkdir()
    (store.root / "notes.txt").write_text("not a run", encoding="utf-8")
    (store.root / "random-folder").mkdir()

    listing = store.list()
    by_id = {s.run_id: s for s in listing}
    assert set(by_id) == {first.id, second.id, broken.id, empty.name}
    assert by_id[broken.id].state == "failed"
    assert by_id[broken.id].reason == "unreadable run folder: status.json is not valid JSON"
    assert by_id[broken.id].damaged
    assert by_id[empty.name].state == "failed"
    assert by_id[empty.name].reason == "unreadable run folder: status.json is missing"
    ordered = [s.run_id for s in listing if s.run_id in (first.id, second.id)]
    assert ordered == [second.id, first.id]
    assert listing[-1].run_id == empty.name


def test_every_state_has_one_display_name() -> None:
    """Bug 8: Home said "succeeded" where Runs said "finished"; both now ask STATE_LABELS."""
    assert set(STATE_LABELS) == set(RUN_STATES)
    assert STATE_LABELS["succeeded"] == "finished"
    assert len(set(STATE_LABELS.values())) == len(STATE_LABELS)


def test_rename_changes_display_name_only(store: RunStore) -> None:
    """rename updates status.json "name"; id and folder stay the same."""
    run = store.create("Old name")
    store.rename(run.id, "  New name  ")
    assert store.get(run.id).status()["name"] == "New name"
    assert run.path.is_dir() and store.list()[0].name == "New name"
    with pytest.raises(ConfigError):
        store.rename(run.id, "   ")


def test_delete_removes_folder_and_writes_cannot_resurrect(store: RunStore) -> None:
    """delete removes the folder; a late write to it fails instead of re-creating it."""
    run = store.create("doomed")
    run.write_json("metrics.json", {})
    store.delete(run.id)
    assert not run.path.exists()
    assert store.list() == []
    with pytest.raises(RunNotFoundError):
        run.write_json("status.json", {"state": "running"})
    assert not run.path.exists()
    with pytest.raises(RunNotFoundError):
        store.delete(run.id)


def test_recover_interrupted_marks_active_runs(store: RunStore) -> None:
    """Runs left queued/running by a dead process become interrupted with a clear reason."""
    queued = store.create("q")
    running = store.create("r")
    running.set_status("running")
    done = store.create("d")
    done.set_status("succeeded")
    broken = store.create("b")
    broken.write_text("status.json", "")

    assert store.recover_interrupted() == sorted([queued.id, running.id])
    for run in (queued, running):
        status = Run(run.path).status()
        assert status["state"] == "interrupted"
        assert status["reason"] == INTERRUPTED_REASON
        assert status["finished_at"]
    assert done.status()["state"] == "succeeded"
    assert store.recover_interrupted() == []


def test_recover_leaves_runs_of_live_owners_alone(store: RunStore) -> None:
    """Active runs of a live process or a live job here stay; a dead owner's run is recovered."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    other_live = store.create("other process", pid=os.getppid())
    gone = store.create("dead process", pid=dead.pid)
    live_here = store.create("live job here")
    mark_live(live_here)
    try:
        assert store.recover_interrupted() == [gone.id]
    finally:
        mark_live(live_here, live=False)
    assert other_live.status()["state"] == "queued"
    assert live_here.status()["state"] == "queued"
    assert store.recover_interrupted() == [live_here.id]


def test_run_accessors_read_what_the_pipeline_wrote(tmp_path):
    run = RunStore(tmp_path).create("accessors")
    assert (run.text_columns(), run.metrics(), run.history(), run.train_settings()) == (
        [],
        {},
        {},
        {},
    )
    run.write_json("scheme.json", {"text_columns": ["subject", "body"], "label_column": "team"})
    run.write_json("config.json", {"method": "quick"})
    run.write_json("metrics.json", {"model": {"accuracy": 0.5}})
    run.write_json("history.json", {"loss": [[1, 0.9]]})
    assert run.text_columns() == ["subject", "body"]
    assert run.train_settings()["method"] == "quick"
    assert run.metrics()["model"]["accuracy"] == 0.5
    assert run.history()["loss"] == [[1, 0.9]]


# ------------------------------------------------------- issue 12: damaged runs, dead owners


@pytest.mark.parametrize(
    ("status_text", "detail"),
    [
        ('["a", "list"]', "status.json is not a JSON object"),
        ('{"state": "exploded", "name": "x"}', "status.json names an unknown state 'exploded'"),
        ('{"state": 7}', "status.json names an unknown state 7"),
        ("\xff\xfe garbage", "status.json is not valid JSON"),
    ],
)
def test_hand_edited_status_lists_as_damaged_with_reason(store, status_text, detail) -> None:
    intact = store.create("intact")
    intact.set_status("succeeded")
    bad = store.create("bad")
    bad.file("status.json").write_bytes(status_text.encode("latin-1"))
    by_id = {s.run_id: s for s in store.list()}
    assert by_id[bad.id].damaged and by_id[bad.id].reason == f"unreadable run folder: {detail}"
    assert by_id[intact.id].state == "succeeded" and not by_id[intact.id].damaged


def test_wrong_types_in_status_and_metrics_do_not_break_the_listing(store) -> None:
    run = store.create("odd")
    run.write_json(
        "status.json",
        {"state": "succeeded", "name": ["not", "text"], "created_at": 5, "reason": {"x": 1}},
    )
    run.write_json("metrics.json", {"model": {"accuracy": "high", "macro_f1": True}})
    run.write_json("config.json", ["not", "a", "dict"])
    (summary,) = store.list()
    assert summary.state == "succeeded" and summary.name == run.id
    assert summary.accuracy is None and summary.reason is None


def _dead_pid() -> int:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    return dead.pid


def test_run_of_a_dead_process_reads_interrupted_everywhere_without_recovery(store) -> None:
    """Issue 12: a run killed mid-training read "running" forever until an app restarted."""
    gone = store.create("killed", pid=_dead_pid())
    gone.set_status("running", pid=gone.stored_status()["pid"])
    assert gone.stored_status()["state"] == "running"
    assert gone.status()["state"] == "interrupted"
    assert gone.status()["reason"] == INTERRUPTED_REASON
    assert store.list()[0].state == "interrupted"
    assert store.recover_interrupted() == [gone.id]
    assert gone.stored_status()["state"] == "interrupted"


def test_reused_pid_does_not_keep_a_dead_run_alive(store) -> None:
    """The owner's pid now belongs to another live process (started later): interrupted."""
    parent = psutil.Process(os.getppid())
    run = store.create("reused", pid=parent.pid, pid_started=parent.create_time() - 1000.0)
    assert run.status()["state"] == "interrupted"
    same = store.create("same", pid=parent.pid, pid_started=parent.create_time())
    assert same.status()["state"] == "queued"
    other_host = store.create("elsewhere", pid=_dead_pid(), host="another-machine")
    assert other_host.status()["state"] == "queued"


def test_stopped_early_note_names_epoch_and_score(store) -> None:
    run = store.create("stopped")
    run.set_status(
        "cancelled", usable_model=True, best_model={"epoch": 2.0, "validation_macro_f1": 0.8876}
    )
    (summary,) = store.list()
    assert summary.usable_model
    assert summary.stopped_early_note == (
        "stopped early — best model from epoch 2 (validation macro-F1 0.888)"
    )


def test_owner_pid_given_without_start_time_is_judged_by_the_pid_alone(store) -> None:
    """A pid passed in must not inherit this process's start time (that read it as reused)."""
    oldest = min(psutil.process_iter(["create_time"]), key=lambda p: p.info["create_time"])
    run = store.create("long-lived owner", pid=oldest.pid)
    assert "pid_started" not in run.stored_status()
    assert run.status()["state"] == "queued"
    run.set_status("running", pid=oldest.pid)
    assert run.status()["state"] == "running"


def test_a_run_folder_never_appears_without_its_status(store: RunStore) -> None:
    """A reader polling the list while runs are created (the Runs page beside a CLI run)
    never meets a run folder without status.json — before, it could, and the CLI run's first
    poll raised "has no status.json" or listed the run as an unreadable folder."""
    import threading

    stop = threading.Event()
    missing: list[str] = []

    def reader() -> None:
        while not stop.is_set():
            missing.extend(r.id for r in store.runs() if not (r.path / "status.json").is_file())

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        created = [store.create("same name") for _ in range(60)]
    finally:
        stop.set()
        thread.join()
    assert missing == []
    assert len({run.id for run in created}) == 60
    assert sorted(p.name for p in store.root.iterdir()) == sorted(run.id for run in created)


def test_recover_sweeps_leftover_staging_and_trash_of_dead_processes(store: RunStore) -> None:
    """A process killed between ``create``'s write and rename (or during a delete) leaves a
    hidden folder behind; the next start removes it when its process is gone, and leaves the
    folders of live processes (this one, another) and the runs themselves alone."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run = store.create("kept")
    names = {
        "dead_new": f".new-{dead.pid}-140-074501123456",
        "dead_trash": f".deleting-20261207-074501-old-run-{dead.pid}-140",
        "own_new": f".new-{os.getpid()}-140-074501123456",
        "live_trash": f".deleting-20261207-074501-busy-{os.getppid()}-140",
        "not_ours": ".new-folder-of-someone-else",
    }
    for name in names.values():
        (store.root / name).mkdir()
        (store.root / name / "status.json").write_text("{}")
    store.recover_interrupted()
    left = {p.name for p in store.root.iterdir()}
    assert names["dead_new"] not in left and names["dead_trash"] not in left
    assert {names["own_new"], names["live_trash"], names["not_ours"], run.id} <= left
    assert [s.run_id for s in store.list()] == [run.id]
