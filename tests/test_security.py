"""Untrusted content: ticket text, labels, column, file and run names never become live markdown
or HTML in the app, and every spreadsheet download is safe from formula injection."""

from __future__ import annotations

import html
import json
import pickle
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
    run_id = RunStore(isolated_app).list()[0].run_id
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
    store.rename(store.list()[0].run_id, LONG)
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


# ------------------------------------------------------------------------- model files


class _Trap:
    """Unpickling this touches a marker file: proof that loading a pickle runs code."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _model_copy(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


@pytest.mark.parametrize("weights", ["pytorch_model.bin", "model.pt", "last.ckpt"])
def test_a_model_folder_with_only_pickle_weights_is_refused_unopened(
    tiny_model_dir, tmp_path, weights
):
    from core.errors import ConfigError
    from core.modeling import load_encoder

    folder = _model_copy(tiny_model_dir, tmp_path / "model")
    (folder / "model.safetensors").unlink()
    marker = tmp_path / "pickle-ran"
    (folder / weights).write_bytes(pickle.dumps(_Trap(marker)))
    with pytest.raises(ConfigError, match="safetensors") as caught:
        load_encoder(str(folder))
    assert weights in str(caught.value)
    assert not marker.exists()


def test_a_saved_run_whose_weights_became_pickle_is_refused(trained_run, tmp_path):
    from core.errors import ConfigError
    from core.modeling import load_classifier

    folder = _model_copy(trained_run.path / "model", tmp_path / "model")
    for weights in folder.glob("*.safetensors"):
        if weights.name != "head.safetensors":
            weights.unlink()
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps(_Trap(tmp_path / "ran")))
    with pytest.raises(ConfigError, match="safetensors"):
        load_classifier(folder)
    assert not (tmp_path / "ran").exists()


def _with_custom_code(folder: Path, model_type: str, marker: Path) -> None:
    config = json.loads((folder / "config.json").read_text())
    config["model_type"] = model_type
    config["auto_map"] = {"AutoConfig": "evil.EvilConfig", "AutoModel": "evil.EvilModel"}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "evil.py").write_text(f"import pathlib\npathlib.Path({str(marker)!r}).touch()\n")


def test_a_model_that_needs_its_own_code_is_refused(tiny_model_dir, tmp_path):
    from core.errors import ConfigError
    from core.modeling import load_encoder

    folder = _model_copy(tiny_model_dir, tmp_path / "model")
    _with_custom_code(folder, "evil-arch", tmp_path / "code-ran")
    with pytest.raises(ConfigError, match="its own Python code"):
        load_encoder(str(folder))
    assert not (tmp_path / "code-ran").exists()


def test_a_standard_model_that_also_names_custom_code_loads_without_running_it(
    tiny_model_dir, tmp_path
):
    from core.modeling import load_encoder

    folder = _model_copy(tiny_model_dir, tmp_path / "model")
    _with_custom_code(folder, "bert", tmp_path / "code-ran")
    encoder, _, _ = load_encoder(str(folder))
    assert type(encoder).__name__ == "BertModel"
    assert not (tmp_path / "code-ran").exists()


def test_the_embedded_weights_match_the_published_sha256_once_per_process(monkeypatch):
    from core import model_files
    from core.modeling import embedded_model_path, resolve_model_source

    hashed = []
    real = model_files._sha256
    monkeypatch.setattr(model_files, "_sha256", lambda path: hashed.append(path) or real(path))
    model_files._VERIFIED.clear()
    assert resolve_model_source("default") == str(embedded_model_path())
    resolve_model_source("default")
    model_files.verify_embedded_weights(embedded_model_path())
    assert len(hashed) == 1


def test_changed_embedded_weights_are_refused(tmp_path, monkeypatch):
    from core import modeling
    from core.errors import ConfigError

    folder = _model_copy(modeling.embedded_model_path(), tmp_path / "model")
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01  # one flipped bit in the last weight
    weights.write_bytes(bytes(data))
    monkeypatch.setattr(modeling, "embedded_model_path", lambda: folder)
    with pytest.raises(ConfigError, match="not the published all-MiniLM-L6-v2"):
        modeling.resolve_model_source("default")
    with pytest.raises(ConfigError, match="not the published"):
        modeling.load_encoder("default")


# ------------------------------------------------------------------------- names and folders

HOSTILE_IDS = ["../x", "../../etc/passwd", "/etc/passwd", "20260101-000000-a/../../x"]
HOSTILE_IDS += ["20260101-000000-a\x00", "20260101-000000-" + "a" * 5000, "", ".", "..", "~"]


@pytest.mark.parametrize("run_id", HOSTILE_IDS)
def test_a_run_id_cannot_leave_the_runs_folder(tmp_path, run_id):
    from core.errors import RunNotFoundError
    from core.runs import validate_run_id

    with pytest.raises(RunNotFoundError):
        validate_run_id(run_id)
    with pytest.raises(RunNotFoundError):
        RunStore(tmp_path).get(run_id)
    with pytest.raises(RunNotFoundError):
        RunStore(tmp_path).delete(run_id)


@pytest.mark.parametrize("name", ["../../escape", "/etc/passwd", "a\x00b", "é" * 5000, "..", "/"])
def test_a_run_name_stays_a_name(tmp_path, name):
    store = RunStore(tmp_path / "runs")
    run = store.create(name)
    assert run.path.parent == (tmp_path / "runs") and len(run.id) < 100
    assert run.status()["name"] == name.strip()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]


@pytest.mark.parametrize(
    "filename", ["../../../evil.csv", "/etc/passwd", "..\\..\\evil.csv", "a\x00b.csv", "x" * 5000]
)
def test_an_upload_name_cannot_leave_the_workspace(tmp_path, filename):
    from core.workspace import Workspace

    workspace = Workspace(tmp_path / "ws")
    upload_id = workspace.save_upload(b"text,label\nhi,a\n", filename)
    data, name = workspace.load_upload(upload_id)
    assert data == b"text,label\nhi,a\n"
    assert "/" not in name and "\\" not in name and "\x00" not in name and len(name) <= 200
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert all(p.is_relative_to(tmp_path / "ws" / "uploads" / upload_id) for p in files)


@pytest.mark.parametrize("upload_id", ["../../x", "/etc", "0123456789abcdef/..", "\x00" * 16])
def test_an_upload_id_cannot_leave_the_workspace(tmp_path, upload_id):
    from core.errors import DataError
    from core.workspace import Workspace

    workspace = Workspace(tmp_path / "ws")
    with pytest.raises(DataError, match="not a valid upload id"):
        workspace.load_upload(upload_id)
    assert workspace.load_draft(upload_id) is None and not workspace.has_upload(upload_id)


def test_the_upload_size_limit_is_enforced_with_a_message():
    from streamlit import config

    at = open_page("pages/data.py")
    config.set_option("server.maxUploadSize", 1)
    try:
        big = b"text,label\n" + b"a long ticket text,billing\n" * 50_000  # 1.3 MB
        at.file_uploader(key="data_upload").upload("big.csv", big, "text/csv").run()
    finally:
        config.set_option("server.maxUploadSize", 200)
    assert not at.exception
    assert any(md("over the 1.0 MB limit") in e.value for e in at.error)
    assert "data" not in at.query_params
