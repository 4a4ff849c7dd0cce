"""The Streamlit app driven through AppTest: upload, label edits, training, review, prediction.

Every test gets its own runs folder (and so its own workspace) and a fresh ``st.cache_resource``;
training uses the tiny random BERT so a run takes seconds.
"""

from __future__ import annotations

import io
import random
import shutil
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import streamlit as st
import streamlit.config as st_config
from helpers import TOPICS
from streamlit.testing.v1 import AppTest

from core.config import TrainConfig
from core.evaluation import Evaluation
from core.jobs import JobManager
from core.pipeline import TrainingRequest, execute
from core.runs import RunStore
from core.schema import LabelScheme
from core.scored_files import FIRST_ROWS, list_scored, scored_folder
from core.workspace import Workspace
from ui.safe_text import md
from ui.state import shutdown_all

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
TIMEOUT = 60

TOPICS_4 = {
    **TOPICS,
    "hardware": (
        ["printer", "laptop", "monitor", "keyboard", "docking station", "mouse"],
        ["My {w} is broken", "The {w} will not turn on", "Need a new {w}", "{w} makes noise"],
    ),
}


def ticket_frame(n_per_label: int = 25, seed: int = 1) -> pd.DataFrame:
    rng = random.Random(seed)
    rows = []
    for label, (words, templates) in TOPICS_4.items():
        for _ in range(n_per_label):
            word = rng.choice(words)
            body = rng.choice(templates).format(w=word) + f" (ref {rng.randint(100, 999)})"
            rows.append(
                {
                    "subject": f"About {word}",
                    "body": body,
                    "category": label,
                    "team": rng.choice(["north", "south"]),
                }
            )
    rng.shuffle(rows)
    return pd.DataFrame(rows)


def csv_bytes(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode("utf-8")


@pytest.fixture(autouse=True)
def isolated_app(tmp_path, monkeypatch):
    monkeypatch.setenv("TICKETTUNE_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.delenv("TICKETTUNE_WORKSPACE_DIR", raising=False)
    st.cache_resource.clear()
    st.cache_data.clear()
    yield tmp_path / "runs"
    shutdown_all()


@pytest.fixture(scope="module")
def trained_runs(tmp_path_factory, tiny_model_dir) -> Path:
    """A runs folder holding one finished run of the tiny model (trained once per module)."""
    root = tmp_path_factory.mktemp("trained-runs")
    manager = JobManager(RunStore(root), execute)
    frame = ticket_frame()
    scheme = LabelScheme(("subject", "body"), "category")
    config = TrainConfig(model=str(tiny_model_dir), method="full", epochs=1, batch_size=16)
    request = TrainingRequest(frame, scheme, config, source_name="tickets.csv")
    run_id = manager.submit(request, name="tiny", status_fields=request.describe())
    snapshot = manager.wait(run_id, timeout=240)
    manager.shutdown()
    assert snapshot.state == "succeeded", snapshot.reason
    return root


@pytest.fixture
def with_trained_run(trained_runs, isolated_app) -> str:
    shutil.copytree(trained_runs, isolated_app, dirs_exist_ok=True)
    return next(s.run_id for s in RunStore(isolated_app).list() if s.state == "succeeded")


def open_page(page: str, **query) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update(query)
    at.run()
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def upload(at: AppTest, frame_or_bytes, name: str = "tickets.csv") -> AppTest:
    data = frame_or_bytes if isinstance(frame_or_bytes, bytes) else csv_bytes(frame_or_bytes)
    at.file_uploader(key="data_upload").upload(name, data, "text/csv")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def table_in(at: AppTest, key: str) -> pd.DataFrame:
    """The table the app shows in the container with this key (see ui.widgets.show_table)."""
    return at.get_by_key(key).dataframe[0].value


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def no_errors(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


# --------------------------------------------------------------------------------- pages


@pytest.mark.parametrize(
    "page",
    [
        "pages/home.py",
        "pages/data.py",
        "pages/train.py",
        "pages/review.py",
        "pages/predict.py",
        "pages/runs.py",
    ],
)
def test_every_page_opens_without_data(page):
    at = open_page(page)
    no_errors(at)


def test_upload_guesses_columns_and_shows_the_report():
    at = upload(open_page("pages/data.py"), ticket_frame())
    no_errors(at)
    assert at.selectbox(key="data_label_column").value == "category"
    assert "body" in at.multiselect(key="data_text_columns").value
    assert metric(at, "Tickets read") == "100"
    assert metric(at, "Labels") == "4"
    assert at.query_params["data"]


def test_a_windows_1251_file_says_its_encoding_and_another_can_be_picked():
    """A Russian export in Windows-1251 reads as Russian and says so; the analyst can pick
    another encoding, and the choice survives a refresh."""
    russian = {"billing": "оплата", "login": "вход", "shipping": "доставка", "hardware": "железо"}
    names = {"subject": "тема", "body": "описание", "category": "категория", "team": "команда"}
    frame = ticket_frame().rename(columns=names)
    frame["категория"] = frame["категория"].map(russian)
    frame["описание"] += ". Срочно, пожалуйста!"
    at = upload(open_page("pages/data.py"), frame.to_csv(index=False).encode("cp1251"))
    no_errors(at)
    assert "Read as **Cyrillic (Windows-1251)**, detected" in " ".join(c.value for c in at.caption)
    assert "категория" in at.selectbox(key="data_label_column").options
    upload_id = at.query_params["data"]
    at.selectbox(key=f"data_encoding_{upload_id}").set_value("cp1252").run()
    assert not at.exception
    captions = " ".join(c.value for c in at.caption)
    assert "Read as **Western European (Windows-1252)**, as you chose" in captions
    assert "категория" not in at.selectbox(key="data_label_column").options

    refreshed = open_page("pages/data.py", data=upload_id)  # a new session, as after a refresh
    picker = refreshed.selectbox(key=f"data_encoding_{upload_id}")
    assert picker.value == "cp1252"
    picker.set_value("detect").run()
    no_errors(refreshed)
    assert "категория" in refreshed.selectbox(key="data_label_column").options
    assert Workspace().load_encoding(upload_id) is None


def test_label_rename_merge_and_drop_survive_a_refresh():
    at = upload(open_page("pages/data.py"), ticket_frame())
    at.multiselect(key="data_text_columns").set_value(["subject", "body"]).run()
    editor_key = at.session_state["data_labels_key"]
    labels = list(at.data_editor(key=editor_key).value["label"])
    row = {label: i for i, label in enumerate(labels)}
    at.session_state[editor_key] = {
        "edited_rows": {
            row["billing"]: {"rename to": "money"},
            row["shipping"]: {"rename to": "money"},  # same new name: merged
            row["login"]: {"drop": True},
        },
        "added_rows": [],
        "deleted_rows": [],
    }
    at.run()
    no_errors(at)
    assert metric(at, "Labels") == "2"
    assert metric(at, "Tickets used") == "75"
    upload_id = at.query_params["data"]
    draft = Workspace().load_draft(upload_id)
    assert draft["rename"] == {"billing": "money", "shipping": "money"}
    assert draft["drop"] == ["login"]
    assert draft["text_columns"] == ["subject", "body"]

    refreshed = open_page("pages/data.py", data=upload_id)  # a new session, as after a refresh
    no_errors(refreshed)
    assert refreshed.multiselect(key="data_text_columns").value == ["subject", "body"]
    assert metric(refreshed, "Labels") == "2"
    base = refreshed.data_editor(key=refreshed.session_state["data_labels_key"]).value
    assert set(base.loc[base["rename to"] == "money", "label"]) == {"billing", "shipping"}


def edit_labels(at: AppTest, edits: dict[str, dict]) -> None:
    """Type into the label editor: {label: {"rename to": …} or {"drop": True}}."""
    editor_key = at.session_state["data_labels_key"]
    labels = list(at.data_editor(key=editor_key).value["label"])
    rows = {labels.index(label): change for label, change in edits.items()}
    at.session_state[editor_key] = {"edited_rows": rows, "added_rows": [], "deleted_rows": []}
    at.run()


def test_label_edits_survive_switching_the_label_column():
    at = upload(open_page("pages/data.py"), ticket_frame())
    edit_labels(
        at,
        {
            "billing": {"rename to": "payments"},
            "shipping": {"rename to": "access"},
            "login": {"rename to": "access"},  # merged with shipping
        },
    )
    assert metric(at, "Labels") == "3"
    at.selectbox(key="data_label_column").set_value("team").run()
    assert metric(at, "Labels") == "2"  # team has its own labels, untouched
    at.selectbox(key="data_label_column").set_value("category").run()
    no_errors(at)
    assert metric(at, "Labels") == "3"
    edits = {"billing": "payments", "login": "access", "shipping": "access"}
    assert Workspace().load_draft(at.query_params["data"])["rename"] == edits

    at.selectbox(key="data_label_column").set_value("team").run()
    refreshed = open_page("pages/data.py", data=at.query_params["data"])  # saved with team
    refreshed.selectbox(key="data_label_column").set_value("category").run()
    no_errors(refreshed)
    assert metric(refreshed, "Labels") == "3"


def test_a_small_separate_test_file_is_accepted_as_in_training():
    """Three tickets per label in the test file: fewer than the minimum per label, which only
    decides what the model learns (python -m core train --test-data accepts the same file)."""
    at = upload(open_page("pages/data.py"), ticket_frame())
    at.radio(key="data_split_mode").set_value("file").run()
    test_file = ticket_frame(3, seed=9)[ticket_frame(3, seed=9)["category"] != "hardware"]
    assert len(test_file) == 9
    at.file_uploader(key="data_test_upload").upload("test.csv", csv_bytes(test_file), "text/csv")
    at.run()
    no_errors(at)
    assert metric(at, "Held back for the test") == "9"
    at.switch_page("pages/train.py").run()
    no_errors(at)
    assert at.button(key="train_start")


def test_rare_labels_can_be_merged_into_other():
    frame = ticket_frame()
    frame.loc[:2, "category"] = "warranty"  # three tickets: below the minimum of 5
    at = upload(open_page("pages/data.py"), frame)
    at.radio(key="data_rare_policy").set_value("other").run()
    at.text_input(key="data_other_label").set_value("misc").run()
    no_errors(at)
    assert metric(at, "Labels") == "5"
    assert any(md("merged into 'misc'") in w.value for w in at.warning)


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("garbage.csv", bytes(range(256)) * 20, "binary"),
        ("header-only.csv", b"subject,body,category\n", "no tickets"),
        ("picture.xlsx", b"\x89PNG\r\n\x1a\n" + bytes(100), "damaged"),
    ],
    ids=["garbage", "header-only", "not-excel"],
)
def test_bad_files_show_a_plain_error(name, data, message):
    at = upload(open_page("pages/data.py"), data, name)
    assert not at.exception
    errors = " ".join(e.value for e in at.error)
    assert message in errors.lower()
    assert "Traceback" not in errors
    assert "data" not in at.query_params  # a bad file does not become the current data


def test_a_label_column_with_one_label_says_what_to_do():
    frame = ticket_frame().assign(category="billing")
    at = upload(open_page("pages/data.py"), frame)
    at.selectbox(key="data_label_column").set_value("category").run()
    assert not at.exception
    errors = " ".join(e.value for e in at.error)
    assert md("Only one label ('billing')") in errors
    assert "pick another label column" in errors


def test_training_from_the_app_and_watching_after_refresh(tiny_model_dir):
    at = upload(open_page("pages/data.py"), ticket_frame())
    at.switch_page("pages/train.py").run()
    at.radio(key="train_model").set_value(at.radio(key="train_model").options[1]).run()
    at.text_input(key="train_model_path").set_value(str(tiny_model_dir)).run()
    at.radio(key="train_method").set_value("full").run()
    at.number_input(key="train_epochs").set_value(1.0).run()
    at.text_input(key="train_name").set_value("my first model").run()
    no_errors(at)
    assert "Estimated time" in at.info[0].value
    at.button(key="train_start").click().run()
    no_errors(at)
    run_id = at.query_params["run"]
    from ui.state import get_jobs

    assert get_jobs().wait(run_id, timeout=240).state == "succeeded"
    at.run()
    no_errors(at)
    assert any("Finished" in s.value for s in at.success)

    refreshed = open_page("pages/train.py", run=run_id)
    assert any("Finished" in s.value for s in refreshed.success)
    assert RunStore().get(run_id).status()["name"] == "my first model"


def test_the_train_form_starts_at_the_training_defaults():
    at = upload(open_page("pages/data.py"), ticket_frame())
    at.switch_page("pages/train.py").run()
    no_errors(at)
    defaults = TrainConfig()
    assert at.radio(key="train_method").value == defaults.method
    form = {
        "train_epochs": defaults.epochs,
        "train_lr": defaults.learning_rate,
        "train_batch_size": defaults.batch_size,
        "train_weight_decay": defaults.weight_decay,
        "train_patience": defaults.early_stopping_patience,
        "train_time_budget": defaults.time_budget_minutes,
        "train_seed": defaults.seed,
        "train_max_length": defaults.max_length,
    }
    assert {key: at.number_input(key=key).value for key in form} == form
    assert at.checkbox(key="train_class_weighting").value == defaults.class_weighting


def test_cancel_a_queued_job(tiny_model_dir):
    from ui.state import get_jobs

    gate = threading.Event()
    at = upload(open_page("pages/data.py"), ticket_frame())
    jobs = get_jobs()
    jobs.train_fn = lambda run, request, progress, cancel: gate.wait(30) or {}
    blocker = jobs.submit(object(), name="blocker")
    waiting = jobs.submit(object(), name="waiting")
    deadline = time.monotonic() + 10
    while jobs.snapshot(blocker).state != "running" and time.monotonic() < deadline:
        time.sleep(0.02)
    at.switch_page("pages/train.py")
    at.query_params["run"] = waiting
    at.run()
    assert any("queue" in i.value for i in at.info)
    badge = at.get_by_key("job_badge")  # the sidebar shows the running job and the queue
    assert "Training **blocker**" in badge.get("progress")[0].text
    assert "1 more waiting" in badge.get("caption")[0].value
    at.button(key="train_cancel").click().run()
    assert jobs.snapshot(waiting).state == "cancelled"
    gate.set()
    jobs.wait(blocker, timeout=30)


def test_review_lists_the_tickets_of_a_confusion_cell(with_trained_run):
    at = open_page("pages/review.py")
    no_errors(at)
    assert metric(at, "Accuracy").endswith("%")
    evaluation = Evaluation.load(RunStore().get(with_trained_run))
    true, predicted = evaluation.labels[0], evaluation.labels[1]
    at.selectbox(key="review_true").set_value(true)
    at.selectbox(key="review_pred").set_value(predicted).run()
    shown = table_in(at, "review_cell_tickets")
    assert len(shown) == len(evaluation.tickets_for_cell(true, predicted))
    assert f"labelled *{true}*" in " ".join(m.value for m in at.markdown)

    at.selectbox(key="review_pred").set_value(true).run()  # the diagonal: right answers
    diagonal = table_in(at, "review_cell_tickets")
    assert len(diagonal) == int(evaluation.confusion[0, 0]) > 0


def test_review_click_on_the_chart_presets_the_cell(with_trained_run):
    at = open_page("pages/review.py")
    labels = Evaluation.load(RunStore().get(with_trained_run)).labels
    at.session_state["review_confusion"] = {
        "selection": {"points": [{"customdata": [labels[2], labels[1]]}]}
    }
    at.run()
    no_errors(at)
    assert at.selectbox(key="review_true").value == labels[2]
    assert at.selectbox(key="review_pred").value == labels[1]


def test_review_threshold_is_saved_for_scoring(with_trained_run):
    at = open_page("pages/review.py")
    at.slider(key="review_threshold").set_value(60).run()
    assert any("Automate" in m.value and "go to a person" in m.value for m in at.markdown)
    at.button(key="review_save_threshold").click().run()
    no_errors(at)
    saved = RunStore().get(with_trained_run).read_json("threshold.json")
    assert saved["threshold"] == pytest.approx(0.6)


def test_try_it_shows_label_percentages_and_escaped_words(with_trained_run):
    at = open_page("pages/predict.py")
    at.text_area(key="predict_text").set_value("My printer <b>is</b> broken <script>x</script>")
    at.button(key="predict_go").click().run()
    no_errors(at)
    label = at.get_by_key("predict_label").markdown[0].value
    assert any(f">{name}</div>" in label for name in ("billing", "login", "shipping", "hardware"))
    assert not any("read only the first" in i.value for i in at.info)  # a short ticket
    assert metric(at, "How sure the model is").endswith("%")
    html = next(m.value for m in at.markdown if "line-height" in m.value)
    assert "&lt;script&gt;" in html and "<script>" not in html


def test_try_it_says_how_much_of_a_long_ticket_the_model_read(with_trained_run):
    at = open_page("pages/predict.py")
    at.text_area(key="predict_text").set_value(" ".join(["My invoice is wrong"] * 100))
    at.button(key="predict_go").click().run()
    no_errors(at)
    [note] = [i.value for i in at.info if "read only the first" in i.value]
    assert "of its 400 words" in note


def test_batch_scoring_gives_a_table_to_download(with_trained_run):
    RunStore().get(with_trained_run).write_json("threshold.json", {"threshold": 0.5})
    at = open_page("pages/predict.py")
    new = ticket_frame(5, seed=7).drop(columns=["category"])
    at.file_uploader(key="predict_upload").upload("new.csv", csv_bytes(new), "text/csv")
    at.run()
    assert any("reads **subject** + **body**" in c.value for c in at.caption)
    at.button(key="predict_score").click().run()
    no_errors(at)
    scored = table_in(at, "predict_results")
    assert len(scored) == 20
    assert {"predicted_label", "confidence", "needs_review"} <= set(scored.columns)
    assert at.download_button(key="predict_download")
    assert at.download_button(key="predict_download_model")


@pytest.fixture
def media_managers(monkeypatch) -> list:
    """The media file manager of each AppTest run, so a test can fetch a download as the
    browser does (a deferred download runs its callable only when fetched)."""
    import streamlit.testing.v1.app_test as app_test
    from streamlit.runtime.media_file_manager import MediaFileManager

    made: list = []

    class Recorded(MediaFileManager):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(app_test, "MediaFileManager", Recorded)
    return made


def downloaded(button, managers: list) -> bytes:
    """What clicking a download button of the last AppTest run hands the browser."""
    proto, manager = button.proto, managers[-1]
    if proto.HasField("deferred_file_id"):
        url = manager.execute_deferred(proto.deferred_file_id)
    else:
        url = proto.url
    return manager._storage.get_file(url.rsplit("/", 1)[-1]).content


def scored_csv(data: bytes) -> pd.DataFrame:
    assert data.startswith(b"\xef\xbb\xbf")  # UTF-8 with BOM: Excel reads accents right
    return pd.read_csv(io.BytesIO(data), encoding="utf-8-sig", dtype=str, keep_default_na=False)


def test_batch_scoring_streams_into_the_run_and_the_download_holds_every_row(
    with_trained_run, media_managers
):
    """More tickets than one chunk: scored by the streaming path into a file of the run; the
    page shows the first rows, the counts and the download, which holds every scored row."""
    run = RunStore().get(with_trained_run)
    run.save_automation_threshold(0.5)
    new = ticket_frame(300, seed=7).drop(columns=["category"])  # 1,200 tickets
    new.insert(0, "ticket_id", [f"N-{i:04d}" for i in range(len(new))])
    new.loc[5, "subject"] = "=cmd() Café"  # a formula-like cell and an accent
    at = open_page("pages/predict.py")
    at.file_uploader(key="predict_upload").upload("new.csv", csv_bytes(new), "text/csv")
    at.run()
    at.button(key="predict_score").click().run()
    no_errors(at)
    files = list_scored(run)
    assert [f.rows for f in files] == [1200] and files[0].folder.parent == scored_folder(run)
    shown = table_in(at, "predict_results")
    assert len(shown) == FIRST_ROWS
    assert shown["ticket_id"].tolist() == new["ticket_id"].head(FIRST_ROWS).tolist()
    assert any(f"The first {FIRST_ROWS} of 1,200 tickets" in c.value for c in at.caption)
    review = files[0].needs_review
    assert any(f"Labelled 1,200 tickets. {review:,} are marked" in s.value for s in at.success)
    assert at.get_by_key("predict_label_counts")

    scored = scored_csv(downloaded(at.download_button(key="predict_download"), media_managers))
    assert scored["ticket_id"].tolist() == new["ticket_id"].tolist()
    assert scored.loc[5, "subject"] == "'=cmd() Café"  # safe to open in Excel
    assert set(scored["predicted_label"]) <= set(TOPICS_4)
    assert (scored["needs_review"] == "True").sum() == review
    confidence = scored["confidence"].astype(float)
    assert ((confidence < 0.5) == (scored["needs_review"] == "True")).all()

    # A reload (a new session): the scored file is still listed, with its download.
    again = open_page("pages/predict.py")
    button = again.download_button(key=f"predict_file_{files[0].id}")
    assert len(scored_csv(downloaded(button, media_managers))) == 1200


def test_a_file_that_breaks_halfway_is_a_plain_message_and_leaves_no_scored_file(
    with_trained_run,
):
    rows = ["subject,body"] + [f"About login {i},Cannot log in {i}" for i in range(4000)]
    rows[3500] = "About x,Cannot log in,surplus value"  # past the rows the page checks first
    at = open_page("pages/predict.py")
    data = ("\n".join(rows) + "\n").encode()
    at.file_uploader(key="predict_upload").upload("broken.csv", data, "text/csv")
    at.run()
    no_errors(at)  # the start of the file is fine
    at.button(key="predict_score").click().run()
    assert not at.exception
    message = " ".join(e.value for e in at.error)
    assert "line 3501 has 3 values but the first row has 2" in message, message
    assert list_scored(RunStore().get(with_trained_run)) == []
    assert not [p for p in scored_folder(RunStore().get(with_trained_run)).iterdir()]


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("new.csv", b"subject,body\n", "no tickets"),
        ("new.csv", b"\x89PNG\r\n\x1a\n\x00\x00", "PNG image"),
        ("new.xlsx", b"\x89PNG\r\n\x1a\n" + bytes(100), "damaged"),
        ("new.jsonl", b'{"subject": "a"}\n[1, 2]\n', "Line 2 of"),
    ],
)
def test_a_bad_file_to_label_is_a_plain_message(with_trained_run, name, data, message):
    at = open_page("pages/predict.py")
    at.file_uploader(key="predict_upload").upload(name, data, "text/csv")
    at.run()
    assert not at.exception
    assert any(message in e.value for e in at.error), [e.value for e in at.error]
    assert not [b for b in at.button if b.key == "predict_score"]


def test_scoring_other_columns_is_an_explicit_visible_choice(with_trained_run):
    at = open_page("pages/predict.py")
    frame = ticket_frame(5, seed=7)
    new = pd.DataFrame({"id": range(len(frame)), "text": frame["subject"] + " " + frame["body"]})
    at.file_uploader(key="predict_upload").upload("new.csv", csv_bytes(new), "text/csv")
    at.run()
    assert not at.exception
    message = " ".join(e.value for e in at.error)
    assert "no **subject** + **body** column" in message
    assert at.button(key="predict_score").disabled  # nothing is scored on a guess

    at.checkbox(key="predict_other_columns").check().run()
    at.multiselect(key="predict_text_columns").set_value(["text"]).run()
    assert any("trained on **subject** + **body**" in w.value for w in at.warning)
    at.button(key="predict_score").click().run()
    assert len(table_in(at, "predict_results")) == 20


def test_runs_page_renames_and_deletes(with_trained_run):
    at = open_page("pages/runs.py")
    no_errors(at)
    at.text_input(key="runs_new_name").set_value("Category model v1")
    at.button(key="runs_rename").click().run()
    assert RunStore().get(with_trained_run).status()["name"] == "Category model v1"
    assert any("Renamed" in s.value for s in at.success)
    assert at.button(key="runs_delete").disabled
    at.checkbox(key="runs_confirm_delete").check().run()
    at.button(key="runs_delete").click().run()
    no_errors(at)
    assert RunStore().list() == []
    assert any("No runs yet" in i.value for i in at.info)


def test_an_unexpected_error_is_a_plain_message():
    def app():
        from ui.widgets import run_page

        def body():
            raise KeyError("secret internals")

        run_page(body)

    at = AppTest.from_function(app).run()
    assert not at.exception
    assert "Something went wrong" in at.error[0].value
    assert "secret internals" not in at.error[0].value


def test_try_with_sample_data_preselects_the_columns():
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.button(key="home_sample").click().run()
    no_errors(at)
    assert at.multiselect(key="data_text_columns").value == ["subject", "body"]
    assert at.selectbox(key="data_label_column").value == "category"
    assert int(metric(at, "Labels")) >= 5
    assert any("different label" in w.value for w in at.warning)  # conflicting duplicates
    assert table_in(at, "data_conflicts").shape[0] >= 1


# ------------------------------------------------- i8-runs: run states, stale picker, try-it
# (issue #8, bugs 4 and 8; kept apart from the other blocks of this file)


def _add_older_run(root: Path, run_id: str, name: str) -> str:
    """A second finished run: a copy of ``run_id`` made to look one day older."""
    older_id = "20000101-000000-older"
    shutil.copytree(root / run_id, root / older_id)
    run = RunStore(root).get(older_id)
    run.write_json("status.json", {**run.status(), "name": name, "created_at": "2000-01-01"})
    return older_id


def test_home_and_runs_name_run_states_alike(with_trained_run):
    """Bug 8: Home said "succeeded" where Runs said "finished"; both show core's label."""
    from core.runs import state_label

    home = open_page("pages/home.py")
    runs = open_page("pages/runs.py")
    no_errors(home)
    no_errors(runs)
    expected = state_label("succeeded")
    assert table_in(home, "home_runs")["state"].tolist() == [expected]
    assert table_in(runs, "runs_table")["state"].tolist() == [expected]


def test_after_a_delete_the_picker_and_the_panel_agree(with_trained_run, isolated_app):
    """Bug 8: after deleting a run the picker still listed it while rename/delete already
    targeted another run; now the picker, name box and delete box all name the same run."""
    older = _add_older_run(isolated_app, with_trained_run, "Older model")
    at = open_page("pages/runs.py")
    assert len(at.selectbox(key="runs_pick").options) == 2
    at.selectbox(key="runs_pick").set_value(older).run()
    assert "Older model" in at.checkbox(key="runs_confirm_delete").label
    at.checkbox(key="runs_confirm_delete").check().run()
    at.button(key="runs_delete").click().run()
    no_errors(at)
    assert not RunStore().exists(older)
    picker = at.selectbox(key="runs_pick")
    assert picker.value == with_trained_run
    assert len(picker.options) == 1
    # The browser keeps showing its own choice unless the app sends the new one along.
    assert picker.proto.set_value and picker.proto.raw_value == picker.options[0]
    remaining = RunStore().get(with_trained_run).status()["name"]
    assert at.text_input(key="runs_new_name").value == remaining
    confirm = at.checkbox(key="runs_confirm_delete")
    assert remaining in confirm.label and "Older model" not in confirm.label
    assert confirm.value is False


def test_try_it_flags_a_guess_below_the_threshold(with_trained_run):
    """Bug 4: the try-it box says when a ticket would go to a person, using the saved threshold."""
    from core.inference import Predictor

    text = "My printer is broken"
    run = RunStore().get(with_trained_run)
    sure = Predictor.load(run.path).predict([text])[0].confidence
    run.save_automation_threshold(min(1.0, sure + 0.05))
    at = open_page("pages/predict.py")
    at.text_area(key="predict_text").set_value(text)
    at.button(key="predict_go").click().run()
    no_errors(at)
    flags = [w.value for w in at.warning if "would go to a person" in w.value]
    assert flags and f"only {sure:.0%} sure" in flags[0]

    run.save_automation_threshold(max(0.0, sure - 0.05))
    at.run()
    assert not [w.value for w in at.warning if "would go to a person" in w.value]


def test_the_shipped_config_turns_the_file_watcher_off(monkeypatch):
    """A watcher over a venv inside the repo floods the log and keeps a core busy when idle."""
    shipped = ROOT / ".streamlit" / "config.toml"
    monkeypatch.chdir(ROOT)  # streamlit reads .streamlit/config.toml from the working folder
    try:
        st_config.get_config_options(force_reparse=True)
        assert st_config.get_option("server.fileWatcherType") == "none"
        assert Path(st_config.get_where_defined("server.fileWatcherType")) == shipped
        assert st_config.get_option("server.runOnSave") is False
    finally:
        monkeypatch.undo()
        st_config.get_config_options(force_reparse=True)


# ---------------------------------------- i12-faults: damaged folders, stopped-early, resume
# (issue #12; kept apart from the other blocks of this file)


def _damaged_copies(root: Path, good_id: str) -> dict[str, str]:
    """Hand-edited and corrupted copies of a finished run; returns {run id: what is wrong}."""
    store = RunStore(root)
    damaged = {}
    for n, (what, edit) in enumerate(
        {
            "broken status JSON": lambda run: run.write_text("status.json", "{half"),
            "no status": lambda run: run.file("status.json").unlink(),
            "unknown state": lambda run: run.write_json("status.json", {"state": "exploded"}),
            "metrics of the wrong type": lambda run: run.write_json("metrics.json", [1, "x"]),
            "garbage model": lambda run: run.file("model/model.safetensors").write_bytes(b"\0" * 9),
            "config is a string": lambda run: run.write_json("config.json", "full"),
        }.items()
    ):
        run_id = f"2001010{n}-000000-damaged-{n}"
        shutil.copytree(root / good_id, root / run_id)
        edit(store.get(run_id))
        damaged[run_id] = what
    return damaged


def test_damaged_run_folders_never_break_home_runs_review_or_use(with_trained_run, isolated_app):
    damaged = _damaged_copies(isolated_app, with_trained_run)
    for page in ("pages/home.py", "pages/runs.py", "pages/review.py", "pages/predict.py"):
        at = open_page(page)
        assert not at.exception, (page, [e.value for e in at.exception])
    runs = table_in(open_page("pages/runs.py"), "runs_table")
    assert len(runs) == 1 + len(damaged)
    why = runs["why it stopped"].tolist()
    assert sum(w.startswith("damaged — unreadable run folder: status.json") for w in why) == 3
    predict = open_page("pages/predict.py")
    garbage = next(i for i, w in damaged.items() if w == "garbage model")
    predict.selectbox(key="predict_run").set_value(garbage).run()
    assert not predict.exception, [e.value for e in predict.exception]


def test_stopped_early_run_is_marked_offered_to_resume_and_usable(with_trained_run, isolated_app):
    run = RunStore(isolated_app).get(with_trained_run)
    run.set_status(
        "cancelled",
        reason="Cancelled by you.",
        usable_model=True,
        best_model={"epoch": 2, "validation_macro_f1": 0.8876},
    )
    (run.path / "checkpoint").mkdir()
    (run.path / "checkpoint" / "trainer_state.json").write_text("{}", encoding="utf-8")
    note = "stopped early — best model from epoch 2 (validation macro-F1 0.888)"
    at = open_page("pages/runs.py")
    no_errors(at)
    assert note in table_in(at, "runs_table")["why it stopped"][0]
    assert "can be resumed" in table_in(at, "runs_table")["why it stopped"][0]
    assert any(note in i.value for i in at.info)
    use = open_page("pages/predict.py")
    assert any(note in o for o in use.selectbox(key="predict_run").options)
    at.button(key="resume_runs").click().run()
    assert not at.exception, [e.value for e in at.exception]
    from ui.state import get_jobs

    assert get_jobs().snapshot(with_trained_run).run_id == with_trained_run
    assert any("resume" in m.lower() for _, m in get_jobs().snapshot(with_trained_run).events)


def test_review_says_when_a_run_kept_the_quick_model(tiny_model_dir, isolated_app):
    """A learning rate that wrecks fine-tuning: the run keeps the quick model and the Review
    page says so, with both validation scores."""
    manager = JobManager(RunStore(isolated_app), execute)
    request = TrainingRequest(
        ticket_frame(),
        LabelScheme(("subject", "body"), "category"),
        TrainConfig(model=str(tiny_model_dir), method="full", epochs=1, batch_size=8,
                    learning_rate=0.5, early_stopping_patience=0),
        source_name="tickets.csv",
    )  # fmt: skip
    run_id = manager.submit(request, name="wrecked", status_fields=request.describe())
    snapshot = manager.wait(run_id, timeout=240)
    manager.shutdown()
    assert snapshot.state == "succeeded", snapshot.reason
    assert snapshot.result["kept_quick"], snapshot.result
    at = open_page("pages/review.py")
    no_errors(at)
    notes = " ".join(i.value for i in at.info)
    assert "keeps the quick model" in notes and "validation macro-F1: quick" in notes


# ------------------------------------------------ issue 12: whose job it is (shared use)


def _gated_jobs(gate: threading.Event):
    """The app's job manager with a train function that runs until ``gate`` is set."""
    from ui.state import get_jobs

    jobs = get_jobs()
    jobs.train_fn = lambda run, request, progress, cancel: gate.wait(30) or {}
    return jobs


def _wait_running(jobs, run_id: str) -> None:
    deadline = time.monotonic() + 10
    while jobs.snapshot(run_id).state != "running" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert jobs.snapshot(run_id).state == "running"


def _texts(at: AppTest) -> str:
    parts = [e.value for e in (*at.info, *at.caption, *at.markdown, *at.sidebar.caption)]
    return "\n".join(str(p) for p in parts)


def test_another_analysts_job_is_only_mentioned_never_shown_or_cancellable():
    """Before: a session with no run of its own showed the running job of anyone, with its
    name, progress and a Cancel button (and so did a shared ?run= link)."""
    from core.auth import job_owner, new_session_id

    gate = threading.Event()
    jobs = _gated_jobs(gate)
    theirs = jobs.submit(object(), name="bens secret run", owner=job_owner(None, new_session_id()))
    try:
        _wait_running(jobs, theirs)
        for query in ({}, {"run": theirs}):
            at = open_page("pages/train.py", **query)
            no_errors(at)
            shown = _texts(at)
            assert "Another analyst's training is running — yours will start when it ends." in shown
            assert "bens secret run" not in shown
            assert "Another analyst's training is running." in shown  # the sidebar
            assert not [b for b in at.button if b.key == "train_cancel"]
            assert "Watch it" not in [p.label for p in at.get("page_link")]
        assert jobs.snapshot(theirs).state == "running"
    finally:
        gate.set()
        jobs.wait(theirs, timeout=30)


def test_own_job_is_found_again_from_the_url_and_queued_behind_anothers(tiny_model_dir):
    """The tab's owner id lives in ?session=: a fresh session with that URL (a refresh, or a
    session that lost its state) shows its own job — not the one running — and may cancel
    only its own."""
    from core.auth import job_owner, new_session_id

    gate = threading.Event()
    at = open_page("pages/train.py")
    session = at.query_params["session"]
    jobs = _gated_jobs(gate)
    theirs = jobs.submit(object(), name="bens run", owner=job_owner(None, new_session_id()))
    also_theirs = jobs.submit(object(), name="carls run", owner=job_owner(None, new_session_id()))
    mine = jobs.submit(object(), name="my run", owner=job_owner(None, session))
    try:
        _wait_running(jobs, theirs)
        refreshed = open_page("pages/train.py", session=session)
        no_errors(refreshed)
        panel = refreshed.get_by_key("train_job")
        assert panel.markdown[0].value == "#### my run"
        assert refreshed.query_params["run"] == mine
        info = " ".join(i.value for i in panel.info)
        assert "Another analyst's training is running — yours is 2nd in the queue." in info
        assert "bens run" not in _texts(refreshed) and "carls run" not in _texts(refreshed)
        badge = refreshed.get_by_key("job_badge")
        assert "Your training **my run** is waiting" in badge.caption[0].value
        assert "1 more waiting in the queue" in _texts(refreshed)
        assert "Watch it" in [p.label for p in refreshed.get("page_link")]

        refreshed.button(key="train_cancel").click().run()
        assert jobs.snapshot(mine).state == "cancelled"
        assert jobs.snapshot(theirs).state == "running"
        assert jobs.snapshot(also_theirs).state == "queued"
    finally:
        gate.set()
        jobs.wait(also_theirs, timeout=30)


def test_start_shows_the_new_job_in_the_same_run(tiny_model_dir):
    """Start queues the job and the page run that handled the click shows it (no second
    script run): with another analyst's job running, the tab shows its own queued job."""
    from core.auth import job_owner, new_session_id

    gate = threading.Event()
    at = upload(open_page("pages/data.py"), ticket_frame())
    at.switch_page("pages/train.py").run()
    jobs = _gated_jobs(gate)
    theirs = jobs.submit(object(), name="bens run", owner=job_owner(None, new_session_id()))
    try:
        _wait_running(jobs, theirs)
        at.text_input(key="train_name").set_value("mine").run()
        at.button(key="train_start").click().run()
        no_errors(at)
        run_id = at.query_params["run"]
        assert jobs.snapshot(run_id).owner == job_owner(None, at.query_params["session"])
        panel = at.get_by_key("train_job")
        assert panel.markdown[0].value == "#### mine"
        assert "yours will start when it ends" in " ".join(i.value for i in panel.info)
        assert "bens run" not in _texts(at)
    finally:
        gate.set()
        jobs.wait(theirs, timeout=30)


def test_try_it_answers_while_another_analysts_training_runs(with_trained_run, tiny_model_dir):
    """A real fine-tuning job of someone else on the app's worker; the Use page of a finished
    run labels a ticket meanwhile, and the job is still training when the answer is shown."""
    from core.auth import job_owner, new_session_id
    from ui.state import get_jobs

    jobs = get_jobs()
    scheme = LabelScheme(("subject", "body"), "category")
    config = TrainConfig(
        model=str(tiny_model_dir),
        method="full",
        epochs=100,
        batch_size=8,
        early_stopping_patience=0,  # never stops on its own: it trains until cancelled
    )
    request = TrainingRequest(ticket_frame(), scheme, config, source_name="tickets.csv")
    busy = jobs.submit(request, name="long run", owner=job_owner(None, new_session_id()))
    try:
        deadline = time.monotonic() + 240
        while jobs.snapshot(busy).stage != "training":
            assert time.monotonic() < deadline and not jobs.snapshot(busy).finished
            time.sleep(0.05)
        at = open_page("pages/predict.py", run=with_trained_run)
        at.text_area(key="predict_text").set_value("My parcel never arrived")
        asked = time.monotonic()
        at.button(key="predict_go").click().run()
        answered = time.monotonic()
        no_errors(at)
        label = at.get_by_key("predict_label").markdown[0].value
        assert any(f">{name}</div>" in label for name in TOPICS_4)
        assert any("Words that drove the decision" in m.value for m in at.markdown)
        assert jobs.snapshot(busy).state == "running"  # answered while it trained
        assert answered - asked < 30, answered - asked
        assert "Another analyst's training is running." in _texts(at)
    finally:
        jobs.cancel(busy)
        jobs.wait(busy, timeout=60)


def test_a_page_runs_only_after_the_engine_warm_up_import(monkeypatch):
    """app.py waits for the warm-up thread before running a page: a page that imported
    transformers while the warm-up did failed with "cannot import name 'AutoConfig'"."""
    import threading

    from ui import state

    release, order = threading.Event(), []
    warm_up = threading.Thread(target=lambda: (release.wait(10), order.append("warm-up done")))
    monkeypatch.setattr(state, "_WARM_UPS", [warm_up])
    warm_up.start()
    threading.Timer(0.3, release.set).start()
    state.wait_for_engine_warm_up()
    order.append("page runs")
    assert order == ["warm-up done", "page runs"]
