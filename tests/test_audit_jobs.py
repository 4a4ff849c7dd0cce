"""The label audit as a background job: progress to poll, the result cached beside the upload,
near-duplicates from the run's split, and bad input failing before any slow work."""

from __future__ import annotations

import time

import pandas as pd
import pytest
from helpers import topic_frame, topic_split

from core.audit import AuditConfig
from core.audit_jobs import AuditRunner, audit_key, check_auditable, load_cached
from core.errors import DataError
from core.schema import LabelScheme


def _prepared(frame: pd.DataFrame):
    table = frame.drop(columns="row").assign(ticket_id=[f"T-{i}" for i in range(len(frame))])
    return LabelScheme(("text",), "label", min_count=1).apply(table)


def _wait(runner: AuditRunner, key: str, timeout: float = 120):
    deadline = time.monotonic() + timeout
    seen = []
    while (snapshot := runner.snapshot(key)).state == "running":
        seen.append(snapshot.fraction)
        assert time.monotonic() < deadline, "the audit did not finish"
        time.sleep(0.05)
    return snapshot, seen


def test_the_audit_runs_in_a_thread_and_its_result_is_cached_on_disk(tmp_path, tiny_model_dir):
    prepared = _prepared(topic_frame(12))
    split = topic_split(12)
    runner = AuditRunner()
    key = audit_key(prepared, "run-1")
    config = AuditConfig(model=str(tiny_model_dir), folds=3)
    runner.start(key, tmp_path, prepared, split=split, config=config, estimate_s=5)
    snapshot, fractions = _wait(runner, key)
    assert snapshot.state == "succeeded", snapshot.error
    assert fractions == sorted(fractions) and snapshot.fraction == 1.0
    cached = load_cached(tmp_path, key)
    tickets = cached.result.tickets
    assert len(tickets) == len(prepared.frame) and cached.result.folds == 3
    assert {"row", "sheet_row", "ticket_id", "given_label", "suggested_label"} <= set(tickets)
    assert (tickets["sheet_row"] == tickets["row"] + 2).all()
    assert tickets["score"].is_monotonic_increasing
    assert cached.near_duplicates is not None
    assert load_cached(tmp_path, audit_key(prepared, "another run")) is None


def test_a_changed_label_is_a_different_audit():
    frame = topic_frame(6)
    changed = frame.copy()
    changed.loc[0, "label"] = "hardware" if frame.loc[0, "label"] != "hardware" else "billing"
    assert audit_key(_prepared(frame)) != audit_key(_prepared(changed))


@pytest.mark.parametrize(
    ("labels", "message"),
    [(["billing"] * 6, "at least two labels"), (["billing"] * 5 + ["login"], "only one ticket")],
)
def test_files_that_cannot_be_audited_say_why_before_any_work(labels, message):
    frame = pd.DataFrame({"row": range(6), "text": [f"ticket {i}" for i in range(6)]})
    frame["label"] = labels
    with pytest.raises(DataError, match=message):
        check_auditable(_prepared(frame))


def test_a_failed_audit_is_a_snapshot_with_the_reason(tmp_path):
    frame = pd.DataFrame({"row": range(4), "text": ["a b", "c d", "e f", "g h"]})
    frame["label"] = ["x", "x", "y", "y"]
    runner = AuditRunner()
    runner.start("k", tmp_path, _prepared(frame), config=AuditConfig(model=str(tmp_path / "no")))
    snapshot, _ = _wait(runner, "k")
    assert snapshot.state == "failed" and snapshot.error
    assert load_cached(tmp_path, "k") is None
