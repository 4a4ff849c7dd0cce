"""Building on a finished run in a real browser, with the built-in model.

A quick model of six of the sample's labels is trained beforehand (through the pipeline, in
the app's runs folder). In the browser: Runs page → Retrain with new tickets (the seventh
label is new) → watched on the Train page → its Review page says what was forgotten and names
the new label; Runs page → Make a faster copy of this model, with the sample's unlabelled
tickets → its Review page says how much faster it is and how much macro-F1 it keeps; the Runs
page shows the family. Full-page screenshots go to test-artifacts/screenshots/.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pandas as pd
import pytest

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
expect = sync_api.expect

from core.config import TrainConfig  # noqa: E402
from core.pipeline import TrainingRequest, execute  # noqa: E402
from core.runs import RunStore  # noqa: E402
from core.schema import LabelScheme  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "assets" / "sample_tickets.csv"
UNLABELLED = ROOT / "assets" / "sample_new_tickets.csv"
TEACHER = "e2e toolbox"
NEW_LABEL = "feature_request"
PER_LABEL = 20  # small: the machine is small and busy
TRAIN_TIMEOUT_MS = 600_000
PAGE_TIMEOUT_MS = 90_000
PERCENT = r"\d+\.\d%"


@pytest.fixture(scope="module")
def teacher(app_server, tmp_path_factory) -> tuple[str, Path, Path]:
    """A quick model of the sample's first 20 tickets of every label but one, in the app's runs
    folder (one epoch, which its faster copy inherits); a file of new tickets: 6 more of each
    of those labels and 20 of the last; and 20 of the sample's unlabelled tickets."""
    sample = pd.read_csv(SAMPLE, dtype=str, keep_default_na=False)
    order = sample.groupby("category").cumcount()
    known = sample["category"] != NEW_LABEL
    first = sample[known & (order < PER_LABEL)].reset_index(drop=True)
    later = known & (order >= PER_LABEL) & (order < PER_LABEL + 6)
    folder = tmp_path_factory.mktemp("toolbox")
    new_path, unlabelled_path = folder / "new_tickets.csv", folder / "unlabelled_tickets.csv"
    sample[later | (~known & (order < 20))].to_csv(new_path, index=False)
    unlabelled = pd.read_csv(UNLABELLED, dtype=str, keep_default_na=False)
    unlabelled.head(20).to_csv(unlabelled_path, index=False)
    request = TrainingRequest(
        table=first,
        scheme=LabelScheme(("subject", "body"), "category"),
        config=TrainConfig(method="quick", epochs=1),
        source_name="first_tickets.csv",
    )
    run = RunStore(app_server.runs_dir).create(TEACHER, **request.describe())
    result = execute(run, request, lambda event: None, threading.Event())
    run.set_status("succeeded", result=result)
    return run.id, new_path, unlabelled_path


def _wait_finished(tab, ui) -> str:
    ui.wait_for_title(tab, "2 · Train a model")
    job = tab.locator(".st-key-train_job")
    job.wait_for(timeout=PAGE_TIMEOUT_MS)
    outcome = job.get_by_text(re.compile(r"^Finished in")).or_(
        job.get_by_test_id("stAlertContentError")
    )
    outcome.first.wait_for(timeout=TRAIN_TIMEOUT_MS)
    ui.settle(tab)
    message = job.get_by_test_id("stAlert").first.inner_text()
    assert "Finished in" in message, message
    return ui.query_param(tab, "run")


def _review(tab, ui) -> None:
    tab.locator(".st-key-train_job").get_by_role("link", name="Review the results").click()
    ui.wait_for_title(tab, "3 · Review the model")


def _metrics(box) -> dict[str, str]:
    labels = box.get_by_test_id("stMetricLabel").all_inner_texts()
    values = box.get_by_test_id("stMetricValue").all_inner_texts()
    return dict(zip((t.strip() for t in labels), (v.strip() for v in values), strict=True))


def test_retrain_with_new_tickets_and_make_a_faster_copy(app_server, tab, ui, teacher):
    teacher_id, new_tickets, unlabelled = teacher

    # 1. retrain with new tickets, from the Runs page
    ui.open(tab, f"{app_server.url}/runs?run={teacher_id}", "Runs")
    tab.get_by_role("heading", name="Build on this run").scroll_into_view_if_needed()
    ui.upload(tab, new_tickets, uploader_label="New labelled tickets")
    preview = tab.get_by_text(re.compile("New labels it will learn"))
    preview.wait_for(timeout=PAGE_TIMEOUT_MS)
    ui.settle(tab)
    expect(preview).to_contain_text(NEW_LABEL)
    ui.screenshot(tab, "20-runs-retrain-with-new-tickets")
    job = tab.locator(".st-key-train_job")
    ui.click_until(tab, tab.get_by_role("button", name="Start retraining"), lambda: job.count() > 0)
    child_id = _wait_finished(tab, ui)
    assert child_id != teacher_id
    _review(tab, ui)
    box = tab.locator(".st-key-review_forgetting")
    box.scroll_into_view_if_needed()
    expect(box).to_contain_text("Did it forget what it knew?")
    values = _metrics(box)
    earlier = values["Earlier test tickets: macro-F1 before → after"]
    assert re.fullmatch(rf"{PERCENT} → {PERCENT}", earlier), values
    assert re.fullmatch(PERCENT, values["New test tickets: macro-F1"]), values
    assert values["New labels"] == "1"
    expect(box).to_contain_text(f"Retrained from {TEACHER} with new tickets.")
    expect(box).to_contain_text(f"which the earlier model did not know: {NEW_LABEL}")
    ui.screenshot(tab, "21-review-retrained-forgetting")

    # 2. make a faster copy of the first model, with extra unlabelled tickets
    ui.open(tab, f"{app_server.url}/runs?run={teacher_id}", "Runs")
    expect(tab.get_by_text(re.compile(r"^Built on it: "))).to_contain_text(
        f"{TEACHER} · retrained (retrained)"
    )
    tab.get_by_role("tab", name="Make a faster copy of this model").click()
    ui.upload(tab, unlabelled, uploader_label="Extra tickets without labels")
    extra = tab.get_by_text("The copy also learns from 20 extra tickets of this file.")
    extra.wait_for(timeout=PAGE_TIMEOUT_MS)
    ui.settle(tab)
    ui.screenshot(tab, "22-runs-make-a-faster-copy")
    copying = tab.get_by_role("button", name="Make the faster copy")
    ui.click_until(tab, copying, lambda: job.count() > 0)
    copy_id = _wait_finished(tab, ui)
    assert copy_id not in (teacher_id, child_id)
    _review(tab, ui)
    box = tab.locator(".st-key-review_speed")
    box.scroll_into_view_if_needed()
    values = _metrics(box)
    assert re.fullmatch(r"\d+\.\d× as fast", values["Scoring speed"]), values
    assert re.fullmatch(PERCENT, values["Macro-F1 kept"]), values
    assert re.fullmatch(rf"{PERCENT} → {PERCENT}", values["Macro-F1: original → copy"]), values
    expect(box).to_contain_text(f"A faster copy of {TEACHER}: it keeps 3 of its 6 layers.")
    expect(box).to_contain_text(re.compile(r"\d+ tickets a second against \d+ for the original"))
    ui.screenshot(tab, "23-review-faster-copy")

    # 3. the family on the Runs page
    ui.go(tab, "Runs", "Runs")
    expect(tab.get_by_text(re.compile(r"^This run is a faster copy of "))).to_contain_text(TEACHER)
    ui.screenshot(tab, "24-runs-family")
    ui.assert_no_app_error(tab)
