"""Five analysts at once on one server: each starts a quick training at the same moment.

Each browser context is its own Streamlit session. The jobs queue on the one worker in the
order they were submitted, each tab follows its own run (its own name and ``?run=``), the runs
folder ends with five distinct succeeded runs, and nothing is mixed up between the tabs.
The quick method on the sample tickets keeps the whole test bounded.
"""

from __future__ import annotations

import itertools
import json
import re

import pytest

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
expect = sync_api.expect

SESSIONS = 5
HEADING_MS = 300_000  # the server also trains session 0's job meanwhile
FINISH_ALL_MS = 540_000  # five quick runs one after the other on 2 busy cores
VIEWPORT = {"width": 1400, "height": 1000}


def _prepare(page, app_server, ui, name: str) -> None:
    """Sample tickets → Train page → quick method → run name; stops before Start."""
    ui.open(page, f"{app_server.url}/data", "1 · Your tickets")
    page.get_by_role("button", name="Use the sample tickets").click()
    page.get_by_text("What TicketTune found").wait_for(timeout=90_000)
    ui.settle(page)
    page.get_by_role("link", name="Next: 2 Train").click()
    ui.wait_for_title(page, "2 · Train a model")
    method = page.get_by_role("radiogroup", name="Method")
    quick = method.get_by_role("radio", name="Quick", exact=True)
    if not quick.is_checked():
        with ui.rerun(page):
            method.get_by_test_id("stRadioOption").filter(has_text="Quick").click()
    assert quick.is_checked()
    box = page.get_by_label("Name of this run")
    box.fill(name)
    box.press("Enter")
    ui.settle(page)


@pytest.mark.skip(
    reason="issue 12, open: on the loaded 2-core machine the third session's job panel did not "
    "appear within 300 s (sessions 0-1 did; all five runs were created) — cause not found yet"
)
def test_five_sessions_train_at_once_without_mixing_up(app_server, browser, ui):
    contexts = [browser.new_context(viewport=VIEWPORT) for _ in range(SESSIONS)]
    try:
        pages = [context.new_page() for context in contexts]
        for context in contexts:
            context.set_default_timeout(60_000)
        names = [f"session {i} quick" for i in range(SESSIONS)]
        for page, name in zip(pages, names, strict=True):
            _prepare(page, app_server, ui, name)
        for page in pages:  # as close together as one driver can click
            page.get_by_role("button", name="Start training").click()
        run_ids = []
        for page, name in zip(pages, names, strict=True):
            job = page.locator(".st-key-train_job")
            job.get_by_role("heading", name=name).wait_for(timeout=HEADING_MS)
            page.wait_for_url(re.compile(r"[?&]run="))
            run_ids.append(ui.query_param(page, "run"))
        assert len(set(run_ids)) == SESSIONS, run_ids

        for page, name in zip(pages, names, strict=True):
            job = page.locator(".st-key-train_job")
            expect(job.get_by_test_id("stAlertContentSuccess")).to_contain_text(
                "Finished in", timeout=FINISH_ALL_MS
            )
            expect(job.get_by_role("heading", name=name)).to_be_visible()
            ui.assert_no_app_error(page)

        statuses = {
            run_id: json.loads((app_server.runs_dir / run_id / "status.json").read_text())
            for run_id in run_ids
        }
        assert [statuses[r]["name"] for r in run_ids] == names  # each tab shows its own run
        assert {s["state"] for s in statuses.values()} == {"succeeded"}
        started = [statuses[r]["started_at"] for r in run_ids]
        finished = [statuses[r]["finished_at"] for r in run_ids]
        order = sorted(range(SESSIONS), key=lambda i: started[i])
        for before, after in itertools.pairwise(order):  # one at a time, in order
            assert finished[before] <= started[after]
        assert order == sorted(order, key=lambda i: statuses[run_ids[i]]["created_at"])
    finally:
        for context in contexts:
            context.close()
