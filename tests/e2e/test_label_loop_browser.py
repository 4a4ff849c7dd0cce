"""The review → fix the labels → retrain loop in a real browser, with the built-in model.

Train the quick model on the sample tickets → open a confused pair and preview the merge →
check every label in the background, correct two suspicious labels and leave one ticket out →
score a file and label three tickets the model was unsure about → apply the changes and
retrain → the comparison shows both runs and the deltas; the downloaded corrected table holds
the corrections. Full-page screenshots of each new view go to test-artifacts/screenshots/.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
expect = sync_api.expect

from core.decisions import (  # noqa: E402  # noqa: E402
    SOURCE_ROW,
    SOURCE_UPLOAD,
    Correction,
    DecisionStore,
    Exclusion,
    NewTicket,
)
from core.runs import Run  # noqa: E402
from core.tables import read_table  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "assets" / "sample_tickets.csv"
NEW_TICKETS = ROOT / "assets" / "sample_new_tickets.csv"
RUN_NAME = "e2e label loop"
SMALL_NAME = "small_tickets.csv"
PER_LABEL = 25
TRAIN_TIMEOUT_MS = 360_000
AUDIT_TIMEOUT_MS = 360_000
PAGE_TIMEOUT_MS = 90_000
TICKETS = '[class*="st-key-audit_ticket_"]'


def _small_files(folder: Path) -> tuple[Path, Path]:
    """25 tickets per label of the sample, some mislabelled, and 20 new tickets (the machine
    is small and busy)."""
    sample = pd.read_csv(SAMPLE, dtype=str, keep_default_na=False)
    small = sample[sample.groupby("category").cumcount() < PER_LABEL].reset_index(drop=True)
    # Every 6th ticket gets the next label over: wrong labels to find, and mix-ups to see.
    labels = sorted(small["category"].unique())
    flipped = small.index % 6 == 5
    small.loc[flipped, "category"] = [
        labels[(labels.index(v) + 1) % len(labels)] for v in small.loc[flipped, "category"]
    ]
    new = pd.read_csv(NEW_TICKETS, dtype=str, keep_default_na=False).head(20)
    paths = folder / SMALL_NAME, folder / "new_tickets.csv"
    small.to_csv(paths[0], index=False)
    new.to_csv(paths[1], index=False)
    return paths


def _train_quick(tab, ui, data: Path) -> str:
    ui.go(tab, "1 Data", "1 · Your tickets")
    ui.upload(tab, data, uploader_label="Upload your labelled tickets")
    tab.get_by_text("What TicketTune found").wait_for(timeout=PAGE_TIMEOUT_MS)
    ui.settle(tab)
    tab.get_by_role("link", name="Next: 2 Train").click()
    ui.wait_for_title(tab, "2 · Train a model")
    method = tab.get_by_role("radiogroup", name="Method")
    method.get_by_test_id("stRadioOption").filter(has_text=re.compile("^Quick")).click()
    expect(method.get_by_role("radio", name="Quick", exact=True)).to_be_checked()
    ui.settle(tab)
    ui.enter(tab, tab.get_by_label("Name of this run"), RUN_NAME)
    job = tab.locator(".st-key-train_job")
    ui.click_until(tab, tab.get_by_role("button", name="Start training"), lambda: job.count() > 0)
    return _wait_finished(tab, ui)


def _wait_finished(tab, ui) -> str:
    job = tab.locator(".st-key-train_job")
    job.wait_for(timeout=PAGE_TIMEOUT_MS)
    tab.wait_for_url(re.compile(r"[?&]run="))
    outcome = job.get_by_text(re.compile(r"^Finished in")).or_(
        job.get_by_test_id("stAlertContentError")
    )
    outcome.first.wait_for(timeout=TRAIN_TIMEOUT_MS)
    ui.settle(tab)
    message = job.get_by_test_id("stAlert").first.inner_text()
    assert "Finished in" in message, message
    return ui.query_param(tab, "run")


def _click_radio(tab, ui, box, option: str) -> None:
    with ui.rerun(tab):
        box.get_by_test_id("stRadioOption").filter(has_text=option).click()
    expect(box.get_by_role("radio", name=option, exact=True)).to_be_checked()


def test_the_label_loop(app_server, tab, ui, tmp_path):
    data, new_tickets = _small_files(tmp_path)
    ui.open(tab, app_server.url, "TicketTune")
    run_id = _train_quick(tab, ui, data)
    upload_id = Run(app_server.runs_dir / run_id).status()["upload_id"]
    store = DecisionStore(app_server.workspace_dir / "uploads" / upload_id)

    # 1. a confused pair and the merge what-if
    tab.get_by_role("link", name="Review the results").click()
    ui.wait_for_title(tab, "3 · Review the model")
    tab.get_by_role("heading", name="Labels the model mixes up").scroll_into_view_if_needed()
    expect(tab.locator(".st-key-pairs_table [data-testid='stDataFrame']")).to_be_visible()
    pair = tab.get_by_role("combobox", name="Look at a pair", exact=True).input_value()
    a, b = re.match(r"^(.+) ↔ (.+) \(\d+\)$", pair).groups()
    merge = tab.locator(".st-key-pairs_merge")
    expect(merge).to_contain_text(f"What if we merge {a} and {b}?")
    values = merge.get_by_test_id("stMetricValue").all_inner_texts()
    assert len(values) == 2 and all(re.fullmatch(r"[\d.]+%", v) for v in values), values
    assert merge.get_by_text(re.compile(r"^Accuracy after \(now [\d.]+%\)$")).is_visible()
    ids = tab.locator(".st-key-pairs_tickets table thead").text_content()
    assert "row in file" in ids and "ticket_id" in ids, ids
    ui.screenshot(tab, "10-review-confused-pairs")

    # 2. suspicious labels: two corrections and one exclusion
    start = tab.get_by_role("button", name=re.compile(r"^Check every label"))
    start.scroll_into_view_if_needed()
    ui.change(tab, start.click, lambda: not start.is_visible())  # the check has started
    done = tab.locator(".st-key-audit_record").or_(tab.get_by_test_id("stAlertContentError"))
    done.first.wait_for(timeout=AUDIT_TIMEOUT_MS)
    ui.settle(tab)
    errors = tab.get_by_test_id("stAlertContentError")
    assert errors.count() == 0, errors.first.inner_text()
    tickets = tab.locator(TICKETS)
    rows = [int(c.rsplit("_", 1)[1]) for c in _key_classes(tickets, "audit_ticket_")]
    first, second, third = rows[:3]
    _click_radio(tab, ui, tab.locator(f".st-key-audit_action_{first}"), "change the label")
    _click_radio(tab, ui, tab.locator(f".st-key-audit_action_{second}"), "change the label")
    _click_radio(tab, ui, tab.locator(f".st-key-audit_action_{third}"), "leave it out")
    ui.screenshot(tab, "11-review-suspicious-labels")
    with ui.rerun(tab):
        tab.get_by_role("button", name="Record 3 decisions").click()
    saved = store.load().decisions
    corrections = {d.row: d.new_label for d in saved if isinstance(d, Correction)}
    assert set(corrections) == {first, second}
    assert [d.row for d in saved if isinstance(d, Exclusion)] == [third]
    expect(tab.locator(f".st-key-audit_ticket_{first}")).to_have_count(0)

    # 3. label three uncertain tickets of a scored file
    Run(app_server.runs_dir / run_id).save_automation_threshold(0.99)
    ui.go(tab, "4 Use the model", "4 · Use the model")
    ui.upload(tab, new_tickets, uploader_label="New tickets")
    tab.get_by_role("button", name="Label the file").wait_for(timeout=PAGE_TIMEOUT_MS)
    ui.settle(tab)
    unsure = tab.get_by_role("heading", name="Label the tickets the model was unsure about")
    stop = tab.get_by_role("button", name="Stop labelling")
    label_file = tab.get_by_role("button", name="Label the file")
    ui.click_until(tab, label_file, lambda: unsure.is_visible() or stop.is_visible())
    unsure.wait_for(timeout=TRAIN_TIMEOUT_MS)
    ui.settle(tab)
    boxes = tab.locator('[class*="st-key-unsure_add_"]')
    for index in range(3):
        with ui.rerun(tab):
            boxes.nth(index).get_by_text("add", exact=True).click()
    ui.screenshot(tab, "12-use-label-uncertain")
    with ui.rerun(tab):
        tab.get_by_role("button", name="Add 3 labelled tickets to the training data").click()
    new = [d for d in store.load().decisions if isinstance(d, NewTicket)]
    assert len(new) == 3

    # 4. pending changes, the corrected table, apply and retrain
    ui.go(tab, "3 Review", "3 · Review the model")
    pending = tab.locator(".st-key-loop_pending")
    pending.scroll_into_view_if_needed()
    expect(pending.get_by_role("button", name="Undo")).to_have_count(6)
    with tab.expect_download(timeout=60_000) as download_info:
        tab.get_by_role("button", name="Download the corrected table (CSV)").click()
    path = tmp_path / download_info.value.suggested_filename
    download_info.value.save_as(path)
    table = pd.read_csv(path, encoding="utf-8-sig", dtype=str, keep_default_na=False)
    original = read_table(data)
    from_file = table[table[SOURCE_UPLOAD] == SMALL_NAME]
    by_row = dict(zip(from_file[SOURCE_ROW].astype(int), from_file["category"], strict=True))
    assert all(by_row[row] == label for row, label in corrections.items())
    assert third not in by_row and len(from_file) == len(original) - 1
    assert len(table) == len(original) - 1 + 3
    ui.screenshot(tab, "13-review-pending-changes")
    watch = tab.get_by_role("link", name="Watch it on 2 Train")
    ui.click_until(
        tab, tab.get_by_role("button", name="Apply 6 changes and retrain"), watch.is_visible
    )
    watch.click()
    ui.wait_for_title(tab, "2 · Train a model")
    child = _wait_finished(tab, ui)
    assert child != run_id

    # 5. the comparison: both runs, overall and per-label deltas
    ui.go(tab, "3 Review", "3 · Review the model")
    compare = tab.get_by_role("combobox", name="Compare this run with", exact=True)
    assert (
        compare.input_value().startswith(RUN_NAME)
        and "the run it came from" in compare.input_value()
    )
    overall = tab.locator(".st-key-compare_overall").get_by_test_id("stMetricValue")
    values = overall.all_inner_texts()
    assert len(values) == 3 and all(re.fullmatch(r"[\d.]+% → [\d.]+%", v) for v in values)
    expect(tab.locator(".st-key-compare_per_label [data-testid='stDataFrame']")).to_be_visible()
    ui.screenshot(tab, "14-review-compare-runs")
    ui.assert_no_app_error(tab)


def _key_classes(locator, prefix: str) -> list[str]:
    classes = locator.evaluate_all("els => els.map(e => e.className)")
    return [re.search(rf"st-key-({prefix}\d+)", c).group(1) for c in classes]
