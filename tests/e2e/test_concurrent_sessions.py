"""Five analysts at once on one server, each starting a training at the same moment.

Each browser context is its own Streamlit session (its own ``?session=`` owner id). The jobs
queue on the one worker in the order they were submitted, each tab shows its own run — never
another tab's name or progress —, a queued tab is told it waits for another analyst's
training, and the runs folder ends with five distinct succeeded runs, one after the other.
The tiny random BERT on 120 tickets and the quick method keep the whole test short. (The
try-it box answering while a job trains is an AppTest, tests/test_pages.py: in the browser,
with these five sessions on 2 loaded cores, it once gave no answer within 60 s.)

What this test caught (issue 12), twice. First, the stall: with five tabs polling, a tab's live
panel stopped redrawing ("Running for 0 s" five minutes later), a reloaded page stayed empty for
minutes and websockets were dropped. py-spy showed the cause: Streamlit's default full garbage
collection after every script run (fragment reruns included) walked the ~530,000 objects of
torch and transformers, 0.5 s each time with the GIL held, more than the whole GIL for five
tabs. The shipped config turns it off (runner.postScriptGC) and the server's warm-up freezes
the libraries' objects (gc.freeze): each live panel now follows its own job to the end.
Second, the Train page queued the job and then called ``st.rerun()``; under load, a tab whose
previous run had drawn polling fragments (another analyst's running job, the sidebar badge)
kept showing that previous page — another tab's job and no ``?run=`` — while the server ran
the new one. The page now shows the new job in the same script run, and a tab only ever shows
its own job.
"""

from __future__ import annotations

import itertools
import json
import re
import time

import pytest

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
expect = sync_api.expect

SESSIONS = 5
VIEWPORT = {"width": 1400, "height": 1000}
HEADING_MS = 120_000  # each tab's own job panel, right after Start
FINISH_ALL_MS = 300_000  # five tiny trainings one after the other on 2 busy cores
OTHERS_NOTE = "Another analyst's training is running — yours"
STATE_ATTRIBUTES = ("data-test-script-state", "data-test-connection-state")


def _tickets_csv(tmp_path):
    from tests.helpers import topic_frame

    path = tmp_path / "team_tickets.csv"
    table = topic_frame(40).drop(columns="row").rename(columns={"text": "ticket", "label": "team"})
    table.to_csv(path, index=False)
    return path


def _prepare(page, app_server, ui, tickets, model_dir, name: str) -> None:
    """Upload the tickets → Train page → the tiny model → run name; stops before Start."""
    ui.open(page, f"{app_server.url}/data", "1 · Your tickets")
    ui.upload(page, tickets, uploader_label="Upload your labelled tickets")
    page.get_by_text("What TicketTune found").wait_for(timeout=90_000)
    ui.settle(page)
    page.get_by_role("link", name="Next: 2 Train").click()
    ui.wait_for_title(page, "2 · Train a model")
    other = page.get_by_role("radiogroup", name="Model").get_by_test_id("stRadioOption")
    other = other.filter(has_text="Another model")
    path = page.get_by_label("Hugging Face model id or local folder")
    ui.change(page, other.click, lambda: path.is_visible())
    ui.enter(page, path, str(model_dir))
    quick = page.get_by_role("radiogroup", name="Method").get_by_test_id("stRadioOption")
    quick = quick.filter(has_text="Quick").first  # quick jobs: the test is about isolation
    ui.change(page, quick.click, lambda: quick.locator("input").is_checked())
    box = page.get_by_label("Name of this run")
    ui.enter(page, box, name)


def _dump(ui, tabs, app_server) -> None:
    """What every tab shows and what the runs folder holds, for a failure's diagnosis."""
    folder = ui.screenshots
    folder.mkdir(parents=True, exist_ok=True)
    for k, tab in enumerate(tabs):
        tab.screenshot(path=str(folder / f"sessions-tab{k}.png"), full_page=True)
        app = tab.get_by_test_id("stApp")
        if not app.count():  # a tab not opened yet
            continue
        states = {a: app.get_attribute(a, timeout=1000) for a in STATE_ATTRIBUTES}
        (folder / f"sessions-tab{k}.txt").write_text(
            f"url: {tab.url}\n{states}\n\n{app.inner_text(timeout=1000)}", encoding="utf-8"
        )
    statuses = {
        p.name: p.joinpath("status.json").read_text(encoding="utf-8")
        for p in app_server.runs_dir.iterdir()
        if p.joinpath("status.json").is_file()
    }
    (folder / "sessions-runs.json").write_text(json.dumps(statuses, indent=1), encoding="utf-8")


def _status(app_server, run_id: str) -> dict:
    return json.loads((app_server.runs_dir / run_id / "status.json").read_text(encoding="utf-8"))


def _app_text(page) -> str:
    return page.get_by_test_id("stApp").inner_text()


def test_five_sessions_train_at_once_without_mixing_up(
    app_server, browser, ui, tiny_model_dir, tmp_path
):
    tickets = _tickets_csv(tmp_path)
    contexts = [browser.new_context(viewport=VIEWPORT) for _ in range(SESSIONS)]
    try:
        for context in contexts:
            context.set_default_timeout(60_000)
        tabs = [context.new_page() for context in contexts]
        names = [f"analyst {i} run" for i in range(SESSIONS)]
        for page, name in zip(tabs, names, strict=True):
            try:
                _prepare(page, app_server, ui, tickets, tiny_model_dir, name)
            except Exception:
                _dump(ui, tabs, app_server)
                raise
        owners = [ui.query_param(page, "session") for page in tabs]
        assert all(owners) and len(set(owners)) == SESSIONS, owners

        for page in tabs:  # as close together as one driver can click
            page.get_by_role("button", name="Start training").click()

        # Looked at from the last tab to the first: on a warm server a tiny job takes a second
        # or two, so the last-submitted tab is the one sure to be still waiting in the queue.
        run_ids, first_sight = [""] * SESSIONS, [""] * SESSIONS
        for i in reversed(range(SESSIONS)):
            page, name = tabs[i], names[i]
            page.bring_to_front()
            job = page.locator(".st-key-train_job")
            try:
                job.get_by_role("heading", name=name).wait_for(timeout=HEADING_MS)
            except Exception:
                _dump(ui, tabs, app_server)
                raise
            page.wait_for_url(re.compile(r"[?&]run="))
            run_ids[i] = ui.query_param(page, "run")
            first_sight[i] = job.inner_text()
            others = [n for j, n in enumerate(names) if j != i]
            shown = _app_text(page)
            assert not [n for n in others if n in shown], f"tab {i} shows another tab's run"
        assert len(set(run_ids)) == SESSIONS, run_ids
        # A queued tab is told that it waits for another analyst's training (and where it is).
        waiting = [t for t in first_sight if OTHERS_NOTE in t]
        if not waiting:
            _dump(ui, tabs, app_server)
        assert waiting, first_sight
        for text in waiting:
            assert re.search(
                rf"{OTHERS_NOTE} (will start when it ends|is \d+\w\w in the queue)", text
            )

        # All five jobs end (the registry says so). Each tab's live panel has followed its own
        # job to the end without a refresh; a refresh then shows the same finished run.
        deadline = time.monotonic() + FINISH_ALL_MS / 1000
        while time.monotonic() < deadline:
            states = [_status(app_server, run_id).get("state") for run_id in run_ids]
            if all(state in ("succeeded", "failed", "cancelled") for state in states):
                break
            time.sleep(2)
        for i, (page, name) in enumerate(zip(tabs, names, strict=True)):
            page.bring_to_front()  # the analyst looks at their tab
            for refreshed in (False, True):
                if refreshed:
                    page.reload()
                job = page.locator(".st-key-train_job")
                try:
                    expect(job.get_by_test_id("stAlertContentSuccess")).to_contain_text(
                        "Finished in", timeout=HEADING_MS
                    )
                except AssertionError:
                    _dump(ui, tabs, app_server)
                    raise
                expect(job.get_by_role("heading", name=name)).to_be_visible()
            assert ui.query_param(page, "run") == run_ids[i]
            shown = _app_text(page)
            assert not [n for j, n in enumerate(names) if j != i and n in shown]
            ui.assert_no_app_error(page)

        statuses = [_status(app_server, run_id) for run_id in run_ids]
        assert [s["name"] for s in statuses] == names  # each tab followed its own run
        assert [s["state"] for s in statuses] == ["succeeded"] * SESSIONS
        assert [s["job_owner"] for s in statuses] == [f"session:{o}" for o in owners]
        order = sorted(range(SESSIONS), key=lambda i: statuses[i]["started_at"])
        assert order == sorted(range(SESSIONS), key=lambda i: statuses[i]["created_at"])  # FIFO
        for before, after in itertools.pairwise(order):  # one at a time
            assert statuses[before]["finished_at"] <= statuses[after]["started_at"]
    finally:
        for context in contexts:
            context.close()
