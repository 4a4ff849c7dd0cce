"""The review → decide → retrain loop in the app (AppTest): confused pairs and the merge what-if,
the background label audit, pending changes with undo, apply and retrain, the comparison, and
labelling uncertain tickets on the Use page. Decisions must land on disk beside the upload.

Runs train the tiny random BERT (seconds); the upload is a real file in the app's workspace.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pandas as pd
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest
from test_pages import APP, TIMEOUT, csv_bytes, no_errors, ticket_frame

from core.config import TrainConfig
from core.decisions import Correction, DecisionStore, Exclusion, Merge, NewTicket
from core.jobs import JobManager
from core.label_loop import PARENT_FIELD, UPLOAD_FIELD, record
from core.pipeline import TrainingRequest, execute
from core.runs import Run, RunStore
from core.schema import LabelScheme
from core.workspace import Workspace, default_workspace_dir
from ui.state import shutdown_all

FILE_NAME = "tickets.csv"


def _frame() -> pd.DataFrame:
    frame = ticket_frame(n_per_label=20)
    frame.insert(0, "ticket_id", [f"T-{1000 + i}" for i in range(len(frame))])
    return frame


@pytest.fixture(scope="module")
def loop_runs(tmp_path_factory, tiny_model_dir) -> Path:
    """A runs folder with its workspace: one upload and one finished run that names it."""
    root = tmp_path_factory.mktemp("loop-runs")
    workspace = Workspace(root / "_workspace")
    frame = _frame()
    upload_id = workspace.save_upload(csv_bytes(frame), FILE_NAME)
    manager = JobManager(RunStore(root), execute)
    scheme = LabelScheme(("subject", "body"), "category")
    config = TrainConfig(model=str(tiny_model_dir), method="full", epochs=1, batch_size=16)
    request = TrainingRequest(frame, scheme, config, source_name=FILE_NAME)
    fields = {**request.describe(), UPLOAD_FIELD: upload_id}
    run_id = manager.submit(request, name="tiny loop", status_fields=fields)
    snapshot = manager.wait(run_id, timeout=240)
    manager.shutdown()
    assert snapshot.state == "succeeded", snapshot.reason
    return root


@pytest.fixture
def app_dir(tmp_path, monkeypatch, loop_runs):
    runs = tmp_path / "runs"
    shutil.copytree(loop_runs, runs)
    monkeypatch.setenv("TICKETTUNE_RUNS_DIR", str(runs))
    monkeypatch.delenv("TICKETTUNE_WORKSPACE_DIR", raising=False)
    st.cache_resource.clear()
    st.cache_data.clear()
    yield runs
    shutdown_all()


def _run_id(runs: Path) -> str:
    return next(s.run_id for s in RunStore(runs).list() if s.state == "succeeded")


def _upload_folder(run_id: str) -> Path:
    run = RunStore().get(run_id)
    return Workspace(default_workspace_dir()).folder(run.status()[UPLOAD_FIELD])


def _review(run_id: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["run"] = run_id
    at.run()
    at.switch_page("pages/review.py").run()
    no_errors(at)
    return at


def _store(run_id: str) -> DecisionStore:
    return DecisionStore(_upload_folder(run_id))


def test_a_confused_pair_previews_the_merge_and_records_it_then_undo(app_dir):
    run_id = _run_id(app_dir)
    at = _review(run_id)
    assert any(s.value == "Labels the model mixes up" for s in at.subheader)
    pairs = at.get_by_key("pairs_table").dataframe[0].value
    assert list(pairs.columns[:3]) == ["label A", "label B", "mix-ups"] and len(pairs)
    tickets = at.get_by_key("pairs_tickets").dataframe[0].value
    assert {"sheet_row", "ticket_id", "text"} <= set(tickets.columns)
    merge_box = at.get_by_key("pairs_merge")
    labels = [m.label for m in merge_box.metric]
    assert len(labels) == 2 and labels[0].startswith("Accuracy after (now ")
    at.button(key="pairs_merge_go").click().run()
    no_errors(at)
    saved = _store(run_id).load()
    merge = saved.decisions[0]
    assert isinstance(merge, Merge) and set(merge.labels) == {
        pairs.iloc[0]["label A"],
        pairs.iloc[0]["label B"],
    }
    assert "Merge labels" in at.get_by_key("loop_pending").markdown[0].value
    undo = next(b for b in at.button if b.key and b.key.startswith("loop_undo_"))
    undo.click().run()
    no_errors(at)
    assert _store(run_id).load().decisions == () and _store(run_id).versions() == [1, 2]


def test_the_label_audit_runs_in_the_background_and_records_decisions(app_dir):
    run_id = _run_id(app_dir)
    at = _review(run_id)
    at.button(key="audit_start").click().run()
    deadline = time.monotonic() + 120
    while not any(k.startswith("audit_action_") for k in _keys(at)):
        assert time.monotonic() < deadline, "the audit did not finish"
        time.sleep(0.5)
        at.run()
        no_errors(at)
    checked = at.get_by_key("audit_all").dataframe[0].value
    assert list(checked.columns[:3]) == ["sheet_row", "ticket_id", "text"]
    assert len(checked) == len(_frame())
    rows = sorted(int(k.rsplit("_", 1)[1]) for k in _keys(at) if k.startswith("audit_action_"))
    first, second, third = rows[:3]
    at.radio(key=f"audit_action_{first}").set_value("change the label")
    at.radio(key=f"audit_action_{second}").set_value("change the label").run()
    at.selectbox(key=f"audit_label_{second}").set_value("billing")
    at.radio(key=f"audit_action_{third}").set_value("leave it out").run()
    at.button(key="audit_record").click().run()
    no_errors(at)
    decisions = _store(run_id).load().decisions
    corrections = [d for d in decisions if isinstance(d, Correction)]
    assert {d.row for d in corrections} == {first, second}
    assert next(d for d in corrections if d.row == second).new_label == "billing"
    assert [d.row for d in decisions if isinstance(d, Exclusion)] == [third]
    assert f"audit_action_{first}" not in _keys(at)  # decided tickets leave the list
    # a fresh session (a refresh) finds the cached audit without running it again
    again = _review(run_id)
    assert any(k.startswith("audit_action_") for k in _keys(again))
    assert "audit_start" not in _keys(again)


def _keys(at: AppTest) -> set[str]:
    return {w.key for w in at.radio} | {b.key for b in at.button if b.key}


def test_apply_and_retrain_starts_a_child_run_that_compares_with_its_parent(app_dir):
    run_id = _run_id(app_dir)
    folder = _upload_folder(run_id)
    at = _review(run_id)  # creates nothing yet
    from core.label_loop import current_decisions, run_scheme

    run = RunStore().get(run_id)
    base = current_decisions(folder, run_scheme(run), run.status()[UPLOAD_FIELD])
    record(folder, base, Correction(row=0, new_label="billing"), Exclusion(row=1))
    at = _review(run_id)
    assert at.button(key="loop_apply").label == "Apply 2 changes and retrain"
    at.button(key="loop_apply").click().run()
    no_errors(at)
    child = next(s.run_id for s in RunStore().list() if s.run_id != run_id)
    from ui.state import get_jobs

    assert get_jobs().wait(child, timeout=240).state == "succeeded"
    status = Run(RunStore().path_for(child)).status()
    assert status[PARENT_FIELD] == run_id and status["decisions_version"] == 1
    at = _review(child)
    assert at.selectbox(key="compare_with").value == run_id
    overall = [m.value for m in at.get_by_key("compare_overall").metric]
    assert len(overall) == 3 and all("→" in v for v in overall)
    per_label = at.get_by_key("compare_per_label").dataframe[0].value
    assert {"f1_before", "f1_after", "f1_delta"} <= set(per_label.columns)


def test_a_decision_that_no_longer_fits_is_a_plain_message_and_nothing_is_lost(app_dir):
    run_id = _run_id(app_dir)
    folder = _upload_folder(run_id)
    from core.label_loop import current_decisions, run_scheme

    run = RunStore().get(run_id)
    base = current_decisions(folder, run_scheme(run), run.status()[UPLOAD_FIELD])
    merge = Merge(("billing", "login"), "money")
    record(folder, base, merge, Correction(row=3, new_label="billing"))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["run"] = run_id
    at.run()
    at.switch_page("pages/review.py").run()
    assert not at.exception
    assert any("cannot be applied" in e.value and "'billing'" in e.value for e in at.error)
    assert "loop_apply" not in {b.key for b in at.button}
    assert len(DecisionStore(folder).load().decisions) == 2


def test_uncertain_tickets_are_labelled_on_the_use_page_and_added(app_dir):
    run_id = _run_id(app_dir)
    RunStore().get(run_id).save_automation_threshold(0.99)
    new = _frame().drop(columns=["category"]).head(8)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["run"] = run_id
    at.run()
    at.switch_page("pages/predict.py").run()
    at.file_uploader(key="predict_upload").upload("new.csv", csv_bytes(new), "text/csv")
    at.run()
    at.button(key="predict_score").click().run()
    no_errors(at)
    boxes = [c for c in at.checkbox if c.key and c.key.startswith("unsure_add_")]
    assert len(boxes) == 8
    guess = at.selectbox(key="unsure_label_0").value
    for box in boxes[:3]:
        box.check()
    at.selectbox(key="unsure_label_1").set_value("hardware")
    at.run()
    assert at.button(key="unsure_add").label == "Add 3 labelled tickets to the training data"
    at.button(key="unsure_add").click().run()
    no_errors(at)
    added = [d for d in _store(run_id).load().decisions if isinstance(d, NewTicket)]
    assert [(d.row, d.label) for d in added][:2] == [(0, guess), (1, "hardware")]
    assert len(added) == 3 and added[0].texts["body"] == new.iloc[0]["body"]
    workspace = Workspace(default_workspace_dir())
    assert workspace.load_upload(added[0].upload)[1] == "new.csv"
    left = {c.key for c in at.checkbox if c.key and c.key.startswith("unsure_add_")}
    assert len(left) == 5


def test_the_data_page_says_label_changes_are_saved_for_the_file(app_dir):
    run_id = _run_id(app_dir)
    folder = _upload_folder(run_id)
    from core.label_loop import current_decisions, run_scheme

    run = RunStore().get(run_id)
    upload_id = run.status()[UPLOAD_FIELD]
    record(folder, current_decisions(folder, run_scheme(run), upload_id), Exclusion(row=2))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["data"] = upload_id
    at.run()
    at.switch_page("pages/data.py").run()
    no_errors(at)
    assert any("1 change to the labels of this file is saved" in i.value for i in at.info)
