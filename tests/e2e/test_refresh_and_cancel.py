"""A training survives a browser refresh, and Cancel stops it, in a real browser.

Full fine-tuning with 20 epochs and no early stopping keeps the job busy long enough to watch
it, refresh the tab, see the same job go on, and cancel it.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
expect = sync_api.expect

RUN_NAME = "e2e refresh and cancel"
FINE_TUNING = "Fine-tuning"
EPOCHS = 20  # far more than the test waits for: it is cancelled long before the end
CANCEL_WITHIN_MS = 15_000  # "stops after the current step", on 2 busy CPU cores
REACH_FINE_TUNING_MS = 300_000  # baseline + loading + reading every ticket once first
PROGRESS_WAIT_S = 120
PROGRESS = re.compile(r"^(?P<stage>.+?) · (?P<percent>\d{1,3})%")


def _progress(job) -> tuple[str, int, str]:
    """(stage, percent, text) of the job panel's progress bar, e.g. ('Fine-tuning', 12, …)."""
    text = job.get_by_test_id("stProgress").inner_text().strip()
    match = PROGRESS.match(text)
    assert match, f"unexpected progress text {text!r}"
    return match["stage"], int(match["percent"]), text


#: True once the job panel's progress bar shows ``stage`` beyond ``percent``.
PROGRESS_BEYOND_JS = r"""([stage, percent]) => {
    const bar = document.querySelector('.st-key-train_job [data-testid="stProgress"]');
    const match = bar && bar.innerText.trim().match(/^(.+?) · (\d{1,3})%/);
    return Boolean(match) && match[1] === stage && Number(match[2]) > percent;
}"""


def _wait_for_progress_beyond(job, percent: int, timeout_s: float) -> tuple[str, int, str]:
    """Wait (in the browser, on the bar's text) until fine-tuning is beyond ``percent``."""
    try:
        job.page.wait_for_function(
            PROGRESS_BEYOND_JS, arg=[FINE_TUNING, percent], timeout=timeout_s * 1000
        )
    except sync_api.TimeoutError:
        pytest.fail(f"no progress beyond {percent}% in {timeout_s:.0f} s: {_progress(job)[2]!r}")
    return _progress(job)


def _status(runs_dir: Path, run_id: str) -> dict:
    return json.loads((runs_dir / run_id / "status.json").read_text(encoding="utf-8"))


def test_training_survives_a_refresh_and_can_be_cancelled(app_server, tab, ui):
    ui.open(tab, f"{app_server.url}/data", "1 · Your tickets")
    found = tab.get_by_text("What TicketTune found")
    ui.click_until(tab, tab.get_by_role("button", name="Use the sample tickets"), found.is_visible)
    found.wait_for(timeout=90_000)
    ui.settle(tab)
    label_column = "Label column (what the model learns to predict)"
    assert tab.get_by_role("combobox", name=label_column, exact=True).input_value() == "category"

    tab.get_by_role("link", name="Next: 2 Train").click()
    ui.wait_for_title(tab, "2 · Train a model")
    method = tab.get_by_role("radiogroup", name="Method")
    full = method.get_by_role("radio", name="Full fine-tuning", exact=True)
    if not full.is_checked():
        with ui.rerun(tab):
            method.get_by_test_id("stRadioOption").filter(has_text="Full fine-tuning").click()
    assert full.is_checked()
    tab.get_by_test_id("stExpander").filter(has_text="Advanced settings").locator("summary").click()
    for label, value in (
        ("Epochs (passes over the tickets)", str(EPOCHS)),
        ("Stop after this many checks without improvement (0 = never)", "0"),
    ):
        ui.enter(tab, tab.get_by_label(label, exact=True), value)
    ui.enter(tab, tab.get_by_label("Name of this run"), RUN_NAME)

    job = tab.locator(".st-key-train_job")
    ui.click_until(tab, tab.get_by_role("button", name="Start training"), lambda: job.count() > 0)
    job.get_by_role("heading", name=RUN_NAME).wait_for(timeout=90_000)
    tab.wait_for_url(re.compile(r"[?&]run="))
    run_id = ui.query_param(tab, "run")
    expect(job.get_by_test_id("stProgress")).to_contain_text(
        f"{FINE_TUNING} · ", timeout=REACH_FINE_TUNING_MS
    )
    _, started_at, _ = _wait_for_progress_beyond(job, 0, PROGRESS_WAIT_S)
    ui.screenshot(tab, "07-train-running")
    _, before, before_text = _progress(job)
    assert before >= started_at

    tab.reload()
    job.get_by_role("heading", name=RUN_NAME).wait_for(timeout=90_000)
    assert ui.query_param(tab, "run") == run_id, tab.url
    stage, after, after_text = _progress(job)
    assert stage == FINE_TUNING and after >= before, (before_text, after_text)
    expect(job.get_by_role("button", name="Cancel training")).to_be_visible()
    badge = tab.locator(".st-key-job_badge")
    expect(badge).to_contain_text(f"Training {RUN_NAME}")
    _wait_for_progress_beyond(job, after, PROGRESS_WAIT_S)
    assert _status(app_server.runs_dir, run_id)["state"] == "running"

    clicked = time.monotonic()
    job.get_by_role("button", name="Cancel training").click()
    cancelled = job.get_by_test_id("stAlertContentWarning")
    expect(cancelled).to_contain_text("Cancelled by you.", timeout=CANCEL_WITHIN_MS)
    took = time.monotonic() - clicked
    assert took <= CANCEL_WITHIN_MS / 1000, took
    ui.settle(tab)
    expect(job.get_by_role("button", name="Cancel training")).to_have_count(0)
    expect(job.get_by_test_id("stProgress")).to_have_count(0)
    expect(badge).to_have_count(0, timeout=10_000)
    assert _status(app_server.runs_dir, run_id)["state"] == "cancelled"
    ui.screenshot(tab, "08-train-cancelled")

    ui.go(tab, "Runs", "Runs")
    row = tab.locator(".st-key-runs_table tr").filter(has_text=RUN_NAME)
    expect(row).to_contain_text("cancelled")
    ui.assert_no_app_error(tab)
    ui.screenshot(tab, "09-runs-cancelled")
