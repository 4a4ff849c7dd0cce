"""Untrusted content: ticket text, labels, column, file and run names never become live markdown
or HTML in the app, and every spreadsheet download is safe from formula injection."""

from __future__ import annotations

import html
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
import streamlit as st
from helpers import topic_frame
from markdown_it import MarkdownIt
from streamlit.testing.v1 import AppTest

from core.config import TrainConfig
from core.jobs import JobManager
from core.pipeline import TrainingRequest, execute
from core.runs import RunStore
from core.schema import LabelScheme
from core.scoring import spreadsheet_safe
from ui.safe_text import md
from ui.state import shutdown_all

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")

SCRIPT = "<script>alert(1)</script>"
IMG_HTML = "<img src=x onerror=alert(1)>"
LINK = "[click](http://evil)"
IMAGE = "![x](http://evil/x.png)"
LATEX = "$x^2$"
LONG = "W" * 20_000
PAYLOADS = [SCRIPT, IMG_HTML, LINK, IMAGE, LATEX, ":red[alarm] :material/delete: :smile:"]
PAYLOADS += ["# heading\n    code\n> quote", "**bold** _it_ `code` ~~gone~~ | a | b |", "&lt;b&gt;"]


# ------------------------------------------------------------------------- the escaping helper


@pytest.mark.parametrize("payload", PAYLOADS)
def test_escaped_text_renders_as_that_text_and_nothing_else(payload):
    """A real CommonMark renderer turns md(payload) into one paragraph of the literal text."""
    rendered = MarkdownIt("commonmark").enable("table").enable("strikethrough").render(md(payload))
    flat = " ".join(payload.split())
    expected = html.escape(flat, quote=False).replace('"', "&quot;")
    assert rendered == f"<p>{expected}</p>\n"


@pytest.mark.parametrize("payload", [LINK, IMAGE, LATEX, ":red[x]", ":smile:", SCRIPT])
def test_every_markdown_trigger_character_is_backslash_escaped(payload):
    escaped = md(payload)
    for char in "[]()!$:<>":
        assert escaped.count(char) == escaped.count("\\" + char)


def test_a_very_long_name_is_cut():
    assert len(md(LONG)) < 5_100 and md(LONG).endswith("…")


# ------------------------------------------------------------------------- the app


@pytest.fixture(autouse=True)
def isolated_app(tmp_path, monkeypatch):
    monkeypatch.setenv("TICKETTUNE_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.delenv("TICKETTUNE_WORKSPACE_DIR", raising=False)
    st.cache_resource.clear()
    st.cache_data.clear()
    yield tmp_path / "runs"
    shutdown_all()


EVIL_LABELS = {"billing": IMG_HTML, "login": LINK, "shipping": LATEX + " " + IMAGE}
EVIL_TEXT_COLUMN = "ticket " + SCRIPT
EVIL_LABEL_COLUMN = "category " + LINK
EVIL_RUN_NAME = IMAGE + " " + SCRIPT


def evil_frame() -> pd.DataFrame:
    frame = topic_frame(20).drop(columns="row")
    frame["label"] = frame["label"].map(EVIL_LABELS)
    return frame.rename(columns={"text": EVIL_TEXT_COLUMN, "label": EVIL_LABEL_COLUMN})


@pytest.fixture(scope="module")
def evil_runs(tmp_path_factory, tiny_model_dir) -> Path:
    """A runs folder with one finished run whose labels, columns and name are all payloads."""
    root = tmp_path_factory.mktemp("evil-runs")
    manager = JobManager(RunStore(root), execute)
    scheme = LabelScheme((EVIL_TEXT_COLUMN,), EVIL_LABEL_COLUMN)
    config = TrainConfig(model=str(tiny_model_dir), method="full", epochs=1, batch_size=16)
    request = TrainingRequest(evil_frame(), scheme, config, source_name=LINK + ".csv")
    run_id = manager.submit(request, name=EVIL_RUN_NAME, status_fields=request.describe())
    snapshot = manager.wait(run_id, timeout=240)
    manager.shutdown()
    assert snapshot.state == "succeeded", snapshot.reason
    return root


def markdown_texts(at: AppTest) -> list[str]:
    """Every string the app hands to Streamlit's markdown renderer on this run."""
    texts = [
        e.value
        for kind in ("markdown", "caption", "error", "warning", "success", "info")
        for e in getattr(at, kind)
    ]
    texts += [c.label for c in at.checkbox] + [b.label for b in at.button]
    return texts


def assert_all_escaped(at: AppTest, payloads: list[str]) -> None:
    assert not at.exception, [e.value for e in at.exception]
    texts = markdown_texts(at)
    joined = "\n".join(texts)
    for payload in payloads:
        assert payload not in joined, f"raw {payload!r} reaches markdown"
    for live in (r"(?<!\\)<(script|img)", r"(?<!\\)\]\(http", r"(?<!\\)\$x"):
        assert not re.search(live, joined), f"unescaped {live!r} reaches markdown"


def open_page(page: str, **query) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update(query)
    at.run()
    at.switch_page(page).run()
    return at


def test_data_page_escapes_file_name_columns_and_labels():
    at = open_page("pages/data.py")
    data = evil_frame().to_csv(index=False).encode()
    name = f"{IMG_HTML}{LATEX}.csv"
    at.file_uploader(key="data_upload").upload(name, data, "text/csv").run()
    assert_all_escaped(at, [IMG_HTML, LATEX, name])
    assert any(md(name) in c.value for c in at.caption)


def test_a_bad_file_with_a_hostile_name_gives_an_escaped_error():
    at = open_page("pages/data.py")
    name = f"[click](javascript:alert(1)){LATEX}.csv"  # no "/": an upload name has no folders
    at.file_uploader(key="data_upload").upload(name, b"subject,body\n", "text/csv").run()
    assert_all_escaped(at, [name, "](javascript"])
    assert any(md(name) in e.value for e in at.error)


def test_train_page_escapes_the_label_column_and_file_name():
    at = open_page("pages/data.py")
    at.file_uploader(key="data_upload").upload(
        "[a](javascript:alert(1)).csv", evil_frame().to_csv(index=False).encode(), "text/csv"
    ).run()
    at.selectbox(key="data_label_column").set_value(EVIL_LABEL_COLUMN).run()
    at.multiselect(key="data_text_columns").set_value([EVIL_TEXT_COLUMN]).run()
    at.switch_page("pages/train.py").run()
    assert_all_escaped(at, [LINK, SCRIPT])
    assert any(md(EVIL_LABEL_COLUMN) in m.value for m in at.markdown)


def test_review_runs_and_train_pages_escape_labels_and_run_names(evil_runs, isolated_app):
    shutil.copytree(evil_runs, isolated_app, dirs_exist_ok=True)
    run_id = RunStore(isolated_app).latest().run_id
    at = open_page("pages/review.py")
    assert_all_escaped(at, [IMG_HTML, LINK, LATEX, IMAGE])
    assert any("labelled *" + md(EVIL_LABELS["billing"])[:5] in m.value for m in at.markdown)

    at = open_page("pages/runs.py")
    assert_all_escaped(at, [EVIL_RUN_NAME, IMAGE, SCRIPT])
    assert any(md(EVIL_RUN_NAME) in c.label for c in at.checkbox)

    at = open_page("pages/train.py", run=run_id)
    assert_all_escaped(at, [EVIL_RUN_NAME, IMAGE, SCRIPT])
    assert any(m.value == f"#### {md(EVIL_RUN_NAME)}" for m in at.markdown)


def test_a_very_long_unbroken_run_name_is_shown_cut_and_escaped(evil_runs, isolated_app):
    shutil.copytree(evil_runs, isolated_app, dirs_exist_ok=True)
    store = RunStore(isolated_app)
    store.rename(store.latest().run_id, LONG)
    at = open_page("pages/runs.py")
    assert not at.exception
    assert all(len(c.label) < 6_000 for c in at.checkbox)


# ------------------------------------------------------------------------- downloads


def test_spreadsheet_safe_escapes_formula_column_names_and_cells():
    table = pd.DataFrame(
        [['=HYPERLINK("http://evil")', "+1", 3]], columns=["@SUM(A1)", "-cmd", "=label"]
    )
    safe = spreadsheet_safe(table)
    assert list(safe.columns) == ["'@SUM(A1)", "'-cmd", "'=label"]
    assert safe.iloc[0, 0] == '\'=HYPERLINK("http://evil")' and safe.iloc[0, 1] == "'+1"
    header = safe.to_csv(index=False).splitlines()[0]
    assert not any(part.startswith(("=", "+", "-", "@")) for part in header.split(","))


def test_spreadsheet_safe_handles_duplicate_column_names():
    """Regression: a table with two columns of the same name used to raise AttributeError."""
    table = pd.DataFrame([["=1", "=2"]], columns=["x", "x"])
    assert spreadsheet_safe(table).values.tolist() == [["'=1", "'=2"]]


def test_every_download_goes_through_spreadsheet_safe():
    """No page or ui module builds a CSV/Excel download of its own (only the model zip)."""
    offenders = []
    for path in [*ROOT.glob("pages/*.py"), *ROOT.glob("ui/*.py")]:
        source = path.read_text(encoding="utf-8")
        builds_file = ".to_csv(" in source or ".to_excel(" in source
        if builds_file and "spreadsheet_safe(table).to_csv" not in source:
            offenders.append(path.name)
        if "st.download_button(" in source and path.name not in ("widgets.py", "predict.py"):
            offenders.append(path.name)
    assert not offenders
