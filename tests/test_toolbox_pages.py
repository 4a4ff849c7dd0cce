"""Building on a finished run in the app (AppTest): retrain it with new tickets, make a faster
copy of it, and the family of runs on the Runs page (also after the parent is deleted).

Runs train the tiny random BERT (seconds). Jobs start through the app's own job manager and
are watched on the Train page, like any training.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pandas as pd
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest
from test_pages import APP, TIMEOUT, csv_bytes, no_errors, table_in, ticket_frame

from core.config import TrainConfig
from core.continual import request_from_run
from core.jobs import JobManager
from core.lineage import origin_fields
from core.pipeline import TrainingRequest, execute
from core.runs import RunStore
from core.schema import LabelScheme
from ui.state import shutdown_all
from ui.widgets import fmt_pct

PARENT_NAME = "tiny"
ACCOUNT_WORDS = ["email address", "company name", "billing contact", "account owner"]


def new_tickets(n_per_label: int = 8, seed: int = 5) -> pd.DataFrame:
    """More tickets of the parent's labels plus a label it never saw ("account_change")."""
    rng = random.Random(seed)
    earlier = ticket_frame(n_per_label, seed=seed)
    rows = [
        {
            "subject": f"Change {word}",
            "body": f"Please change the {word} on our account (ref {rng.randint(100, 999)})",
            "category": "account_change",
            "team": rng.choice(["north", "south"]),
        }
        for word in (rng.choice(ACCOUNT_WORDS) for _ in range(3 * n_per_label))
    ]
    return pd.concat([earlier, pd.DataFrame(rows)], ignore_index=True).sample(
        frac=1, random_state=seed
    )


@pytest.fixture(scope="module")
def family_runs(tmp_path_factory, tiny_model_dir) -> Path:
    """A finished run of the tiny model, and one run retrained from it (quick, as the app
    starts it: with the parent's name recorded)."""
    root = tmp_path_factory.mktemp("toolbox-runs")
    manager = JobManager(RunStore(root), execute)
    scheme = LabelScheme(("subject", "body"), "category")
    config = TrainConfig(model=str(tiny_model_dir), method="full", epochs=1, batch_size=16)
    request = TrainingRequest(ticket_frame(), scheme, config, source_name="tickets.csv")
    parent_id = manager.submit(request, name=PARENT_NAME, status_fields=request.describe())
    assert manager.wait(parent_id, timeout=240).state == "succeeded"
    parent = RunStore(root).get(parent_id)
    child = request_from_run(parent, new_tickets(), source_name="new.csv", method="quick")
    fields = {**child.describe(), **origin_fields(parent)}
    child_id = manager.submit(child, name="tiny · retrained", status_fields=fields)
    snapshot = manager.wait(child_id, timeout=240)
    manager.shutdown()
    assert snapshot.state == "succeeded", snapshot.reason
    return root


@pytest.fixture
def app_dir(tmp_path, monkeypatch, family_runs):
    runs = tmp_path / "runs"
    shutil.copytree(family_runs, runs)
    monkeypatch.setenv("TICKETTUNE_RUNS_DIR", str(runs))
    monkeypatch.delenv("TICKETTUNE_WORKSPACE_DIR", raising=False)
    st.cache_resource.clear()
    st.cache_data.clear()
    yield runs
    shutdown_all()


def plain(markdown: str) -> str:
    """Markdown made literal by ui.safe_text.md, read back as the analyst sees it."""
    return markdown.replace("\\", "")


def _ids(runs: Path) -> tuple[str, str]:
    """(parent id, retrained child id)."""
    by_name = {s.name: s.run_id for s in RunStore(runs).list()}
    return by_name[PARENT_NAME], by_name["tiny · retrained"]


def _open(page: str, run_id: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["run"] = run_id
    at.run()
    at.switch_page(page).run()
    no_errors(at)
    return at


def _started_and_finished(at: AppTest, parent_id: str) -> str:
    """The run the click started (now the tab's run, shown on the Train page), once finished."""
    from ui.state import get_jobs

    no_errors(at)
    run_id = at.session_state["run_id"]
    assert run_id != parent_id
    assert any(t.value == "2 · Train a model" for t in at.title), "watched on the Train page"
    snapshot = get_jobs().wait(run_id, timeout=240)
    assert snapshot.state == "succeeded", snapshot.reason
    return run_id


def test_retrain_with_new_tickets_then_review_says_what_was_forgotten(app_dir):
    parent_id, _ = _ids(app_dir)
    at = _open("pages/runs.py", parent_id)
    assert any(s.value == "Build on this run" for s in at.subheader)
    at.file_uploader(key="retrain_upload").upload(
        "wrong.csv", csv_bytes(new_tickets().rename(columns={"body": "text"})), "text/csv"
    )
    at.run()
    errors = [e.value for e in at.error]
    assert any("same columns" in e and "'body'" in e for e in errors), errors
    assert not [b for b in at.button if b.key == "retrain_start"]

    at.file_uploader(key="retrain_upload").upload("new.csv", csv_bytes(new_tickets()), "text/csv")
    at.run()
    no_errors(at)
    preview = " ".join(m.value for m in at.markdown)
    assert "New labels it will learn: **account\\_change**" in preview, preview
    assert at.slider(key="retrain_replay").value == 50, "the default share comes from core"
    at.slider(key="retrain_replay").set_value(30).run()
    assert any("30 earlier tickets for every 100 new ones" in c.value for c in at.caption)
    at.button(key="retrain_start").click().run()
    child_id = _started_and_finished(at, parent_id)

    child = RunStore().get(child_id)
    assert child.train_settings()["replay_fraction"] == pytest.approx(0.3)
    assert child.status()["parent_name"] == PARENT_NAME
    review = _open("pages/review.py", child_id)
    box = review.get_by_key("review_forgetting")
    metrics = child.metrics()
    before = fmt_pct(metrics["parent_previous_test_macro_f1"])
    after = fmt_pct(metrics["previous_test"]["macro_f1"])
    values = {m.label: m.value for m in box.metric}
    assert values["Earlier test tickets: macro-F1 before → after"] == f"{before} → {after}"
    assert values["New test tickets: macro-F1"] == fmt_pct(metrics["new_test"]["macro_f1"])
    assert values["New labels"] == "1"
    words = box.markdown[0].value
    assert f"macro-F1 was {before} before and is " in words and after in words
    assert f"Retrained from **{PARENT_NAME}**" in words
    assert "did not know: **account\\_change**" in words


def test_make_a_faster_copy_then_review_says_how_much_faster_and_what_it_keeps(app_dir):
    parent_id, _ = _ids(app_dir)
    at = _open("pages/runs.py", parent_id)
    layers = at.selectbox(key="distill_layers")
    assert layers.options == ["1 of 2"] and layers.value == 1
    at.file_uploader(key="distill_upload").upload(
        "extra.csv", csv_bytes(pd.DataFrame({"title": ["where is my parcel"]})), "text/csv"
    )
    at.run()
    assert any("'subject'" in e.value for e in at.error), [e.value for e in at.error]
    extra = new_tickets().drop(columns="category")
    at.file_uploader(key="distill_upload").upload("extra.csv", csv_bytes(extra), "text/csv")
    at.run()
    no_errors(at)
    assert any(f"{len(extra):,} extra tickets" in c.value for c in at.caption)
    at.button(key="distill_start").click().run()
    copy_id = _started_and_finished(at, parent_id)

    copy, parent = RunStore().get(copy_id), RunStore().get(parent_id)
    assert copy.text_columns() == parent.text_columns() == ["subject", "body"]
    assert copy.summary().label_column == "category", "the copy reads files like its teacher"
    texts = {r.id: r.read_frame("split.csv", dtype=str) for r in (copy, parent)}
    assert sorted(texts[copy.id]["text"]) == sorted(texts[parent.id]["text"])
    facts = copy.metrics()["distillation"]
    assert facts["unlabelled_tickets"] == len(extra) and facts["student_layers"] == 1
    review = _open("pages/review.py", copy_id)
    box = review.get_by_key("review_speed")
    values = {m.label: m.value for m in box.metric}
    assert values["Scoring speed"] == f"{facts['speedup']:.1f}× as fast"
    assert values["Macro-F1 kept"] == fmt_pct(facts["macro_f1_kept"])
    teacher, student = fmt_pct(facts["teacher_macro_f1"]), fmt_pct(facts["student_macro_f1"])
    assert values["Macro-F1: original → copy"] == f"{teacher} → {student}"
    words = box.markdown[0].value
    assert f"A faster copy of **{PARENT_NAME}**: it keeps 1 of its 2 layers." in words
    assert f"{len(extra):,} extra tickets without labels" in words
    student, teacher = facts["student_tickets_per_second"], facts["teacher_tickets_per_second"]
    assert f"{student:,.0f} tickets a second against {teacher:,.0f} for the original" in words


def test_the_runs_page_shows_the_family_and_keeps_it_after_the_parent_is_deleted(app_dir):
    parent_id, child_id = _ids(app_dir)
    at = _open("pages/runs.py", parent_id)
    table = table_in(at, "runs_table").set_index("name")
    assert table.loc["tiny · retrained", "came from"] == f"retrained from {PARENT_NAME}"
    assert table.loc[PARENT_NAME, "built on it"] == "tiny · retrained (retrained)"
    assert any("Built on it: tiny · retrained (retrained)." in plain(c.value) for c in at.caption)

    at.checkbox(key="runs_confirm_delete").check().run()
    at.button(key="runs_delete").click().run()
    no_errors(at)
    table = table_in(at, "runs_table").set_index("name")
    assert list(table.index) == ["tiny · retrained"]
    assert table.loc["tiny · retrained", "came from"] == f"retrained from {PARENT_NAME} (deleted)"
    assert any(
        plain(c.value) == f"This run was retrained from {PARENT_NAME} (deleted)."
        for c in at.caption
    )
    review = _open("pages/review.py", child_id)
    words = review.get_by_key("review_forgetting").markdown[0].value
    assert f"Retrained from **{PARENT_NAME}** (since deleted)" in words
