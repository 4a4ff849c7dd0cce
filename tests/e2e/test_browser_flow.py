"""The analyst's main flow in a real browser, with the built-in model and no network.

Upload the sample tickets → check the columns and the data report → train the quick model →
read the metrics and drill into a confusion-matrix cell → try a ticket → label a file and
download it → a full-page screenshot of every page. The steps share one browser tab and one
trained run; a step that needs something an earlier step failed to produce is skipped.
"""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path

import pandas as pd
import pytest

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
expect = sync_api.expect

from core.evaluation import Evaluation  # noqa: E402
from core.runs import Run  # noqa: E402 (after the importorskip)
from core.scored_files import scored_folder  # noqa: E402
from core.tables import read_table  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "assets" / "sample_tickets.csv"
NEW_TICKETS = ROOT / "assets" / "sample_new_tickets.csv"

RUN_NAME = "e2e main flow"
TEXT_COLUMNS_LABEL = "Text columns (what the model reads, in this order)"
LABEL_COLUMN_LABEL = "Label column (what the model learns to predict)"
TEXT_COLUMNS = ["subject", "body"]
LABEL_COLUMN = "category"
TRY_IT_TEXT = (
    "Charged twice this month. My card was billed two times for the same invoice, "
    "please refund one of the payments."
)
TRAIN_TIMEOUT_MS = 360_000  # the quick method on the sample: ~20-60 s on 2 busy cores
PAGE_TIMEOUT_MS = 90_000
PERCENT = re.compile(r"^\d{1,3}(\.\d)?%$")


@pytest.fixture(scope="module")
def flow() -> dict:
    """What the steps hand on to each other (upload id, run id, labels…)."""
    return {}


@pytest.fixture(scope="module")
def sample_table() -> pd.DataFrame:
    return read_table(SAMPLE)


def need(flow: dict, *keys: str) -> None:
    missing = [key for key in keys if key not in flow]
    if missing:
        pytest.skip(f"an earlier step of the flow did not produce {', '.join(missing)}")


def fmt_pct(value: float) -> str:
    return f"{value * 100:.1f}%"


def test_home_page(app_server, tab, ui, flow):
    ui.open(tab, app_server.url, "TicketTune")
    assert tab.get_by_role("heading", name="TicketTune", exact=True).is_visible()
    nav = tab.get_by_test_id("stSidebarNav").get_by_role("link")
    titles = [re.sub(r"^\S+\s+", "", text.strip()) for text in nav.all_inner_texts()]
    assert titles == ["Home", "1 Data", "2 Train", "3 Review", "4 Use the model", "Runs"]
    for step in ("1 Data", "2 Train", "3 Review", "4 Use the model"):
        assert tab.get_by_test_id("stMain").get_by_role("link", name=step).is_visible()
    assert tab.get_by_role("button", name="Try with sample data").is_enabled()
    if not any(app_server.runs_dir.glob("*/status.json")):
        assert tab.get_by_text("No runs yet.").is_visible()
    ui.assert_no_app_error(tab)
    flow["home"] = True


def test_data_upload_columns_and_report(app_server, tab, ui, flow, sample_table):
    need(flow, "home")
    ui.go(tab, "1 Data", "1 · Your tickets")
    tab.get_by_text("Upload a spreadsheet with one ticket per row").wait_for()

    ui.upload(tab, SAMPLE, uploader_label="Upload your labelled tickets")
    tab.get_by_text("What TicketTune found").wait_for(timeout=PAGE_TIMEOUT_MS)
    ui.settle(tab)
    upload_id = ui.query_param(tab, "data")
    assert upload_id and re.fullmatch(r"[0-9a-f]{16}", upload_id), tab.url
    rows, columns = len(sample_table), len(sample_table.columns)
    assert tab.get_by_text(f"sample_tickets.csv: {rows:,} rows, {columns} columns").is_visible()

    # The app preselects subject + body and category for this file: check what is shown.
    assert ui.multiselect_values(tab, TEXT_COLUMNS_LABEL) == TEXT_COLUMNS
    label_box = tab.get_by_role("combobox", name=LABEL_COLUMN_LABEL, exact=True)
    assert label_box.input_value() == LABEL_COLUMN

    # Drive the widgets: the report follows the text columns (tickets get shorter without
    # the body), and choosing them again restores it.
    lengths = tab.get_by_text(re.compile(r"^Half the tickets have up to \d+ words"))
    with_body = lengths.inner_text()
    ui.set_multiselect(tab, TEXT_COLUMNS_LABEL, ["subject"])
    subject_only = lengths.inner_text()
    assert _median_words(subject_only) < _median_words(with_body), (with_body, subject_only)
    ui.set_multiselect(tab, TEXT_COLUMNS_LABEL, TEXT_COLUMNS)
    assert lengths.inner_text() == with_body
    ui.select(tab, LABEL_COLUMN_LABEL, LABEL_COLUMN)

    labelled = sample_table[LABEL_COLUMN].dropna().astype(str).str.strip()
    labels = sorted(set(labelled[labelled != ""]))
    assert ui.metric(tab, "Tickets read") == f"{rows:,}"
    assert ui.metric(tab, "Tickets used") == f"{len(labelled[labelled != '']):,}"
    assert ui.metric(tab, "Labels") == str(len(labels))
    chart = tab.locator(".st-key-data_label_chart .js-plotly-plot")
    assert sorted(chart.evaluate("g => g.data[0].y")) == labels
    assert tab.locator(".st-key-data_length_chart .js-plotly-plot").is_visible()
    assert int(ui.metric(tab, "To learn from").replace(",", "")) > 0
    assert int(ui.metric(tab, "Held back for the test").replace(",", "")) > 0
    ui.assert_no_app_error(tab)
    flow.update(upload_id=upload_id, labels=labels)


def _median_words(caption: str) -> int:
    return int(re.search(r"up to (\d+) words", caption).group(1))


def test_train_quick_model(app_server, tab, ui, flow):
    need(flow, "upload_id", "labels")
    tab.get_by_role("link", name="Next: 2 Train").click()
    ui.wait_for_title(tab, "2 · Train a model")
    summary = tab.get_by_text(re.compile(r"tickets from sample_tickets\.csv, labels from"))
    assert f"labels from {LABEL_COLUMN} ({len(flow['labels'])} labels)" in summary.inner_text()
    model = tab.get_by_role("radiogroup", name="Model")
    assert model.get_by_role("radio", name=re.compile("^Built-in")).is_checked()

    method = tab.get_by_role("radiogroup", name="Method")
    # Wait for the radio itself, not for a rerun: a click that lands while the page switch's
    # last run is still finishing starts no run of its own that a watcher could see.
    method.get_by_test_id("stRadioOption").filter(has_text=re.compile("^Quick")).click()
    expect(method.get_by_role("radio", name="Quick", exact=True)).to_be_checked()
    ui.settle(tab)
    ui.enter(tab, tab.get_by_label("Name of this run"), RUN_NAME)
    assert tab.get_by_text(re.compile(r"^Estimated time on this computer: about")).is_visible()

    job = tab.locator(".st-key-train_job")
    ui.click_until(tab, tab.get_by_role("button", name="Start training"), lambda: job.count() > 0)
    job.wait_for(timeout=PAGE_TIMEOUT_MS)
    tab.wait_for_url(re.compile(r"[?&]run="))
    run_id = ui.query_param(tab, "run")
    expect(job.get_by_role("heading", name=RUN_NAME)).to_be_visible()  # drawn with the job

    outcome = job.get_by_text(re.compile(r"^Finished in")).or_(
        job.get_by_test_id("stAlertContentError")
    )
    outcome.first.wait_for(timeout=TRAIN_TIMEOUT_MS)
    ui.settle(tab)
    message = job.get_by_test_id("stAlert").first.inner_text()
    assert "Finished in" in message, message
    status = json.loads((app_server.runs_dir / run_id / "status.json").read_text())
    assert status["state"] == "succeeded", status
    metrics = json.loads((app_server.runs_dir / run_id / "metrics.json").read_text())
    assert f"right {fmt_pct(metrics['model']['accuracy'])} of the time" in message
    ui.assert_no_app_error(tab)
    flow.update(run_id=run_id, metrics=metrics)


def test_review_shows_metrics(app_server, tab, ui, flow):
    need(flow, "run_id")
    tab.get_by_role("link", name="Review the results").click()
    ui.wait_for_title(tab, "3 · Review the model")
    assert ui.query_param(tab, "run") == flow["run_id"]
    picker = tab.get_by_role("combobox", name="Trained model", exact=True)
    assert picker.input_value().startswith(RUN_NAME)

    model = flow["metrics"]["model"]
    accuracy, macro_f1 = ui.metric(tab, "Accuracy"), ui.metric(tab, "Macro-F1")
    assert PERCENT.match(accuracy) and PERCENT.match(macro_f1), (accuracy, macro_f1)
    assert accuracy == fmt_pct(model["accuracy"])
    assert macro_f1 == fmt_pct(model["macro_f1"])
    assert ui.metric(tab, "Test tickets") == f"{model['n']:,}"
    per_label = tab.locator(".st-key-review_per_class table")
    expect(per_label).to_have_attribute("aria-rowcount", str(len(flow["labels"]) + 1))
    ui.assert_no_app_error(tab)
    flow["reviewed"] = True


def test_review_confusion_cell_click_lists_its_tickets(app_server, tab, ui, flow):
    need(flow, "reviewed")
    evaluation = Evaluation.load(Run(app_server.runs_dir / flow["run_id"]))
    labels = list(evaluation.labels)
    confusion = evaluation.confusion
    plot = tab.locator(".st-key-review_confusion .js-plotly-plot")
    plot.scroll_into_view_if_needed()
    true_box = tab.get_by_role("combobox", name="True label", exact=True)
    pred_box = tab.get_by_role("combobox", name="Predicted as", exact=True)
    before = (true_box.input_value(), pred_box.input_value())

    # The diagonal cell with the most tickets that is not selected yet.
    candidates = [i for i in range(len(labels)) if (labels[i], labels[i]) != before]
    row = col = max(candidates, key=lambda i: (confusion[i][i], -i))
    target = (labels[row], labels[col])
    count = int(confusion[row][col])
    assert count > 0

    x, y = _cell_centre(plot, target)
    plot.evaluate(
        """g => { window._e2eHover = [];
                  g.on('plotly_hover', e => window._e2eHover.push(e.points.map(p => ({
                      trace: p.data.type, x: p.x, y: p.y,
                      customdata: p.customdata === undefined ? null : p.customdata})))); }"""
    )
    tab.mouse.move(x - 3, y - 3)
    tab.mouse.move(x, y)
    # plotly decides the clicked point from the hover: click once the square's point is hovered
    with contextlib.suppress(sync_api.TimeoutError):  # the drill-down wait below reports it
        tab.wait_for_function(
            """t => window._e2eHover.some(points => points.some(
                   p => p.customdata && p.customdata[0] === t[0] && p.customdata[1] === t[1]))""",
            arg=list(target),
            timeout=5_000,
        )
    tab.mouse.click(x, y)

    expected = f"{count} test tickets labelled {target[0]} that the model predicted as {target[1]}:"
    drill_down = tab.get_by_test_id("stMarkdownContainer").filter(
        has_text=re.compile(r"^\d+ test tickets labelled ")
    )
    try:
        drill_down.filter(has_text=expected).wait_for(timeout=20_000)
    except sync_api.TimeoutError:
        hovered = tab.evaluate("window._e2eHover")
        pytest.fail(
            f"Clicked the centre of the confusion-matrix square true={target[0]!r}, "
            f"predicted={target[1]!r} (at {x:.0f},{y:.0f}). The page shows "
            f"{drill_down.inner_text()!r} with selectboxes "
            f"{(true_box.input_value(), pred_box.input_value())}. Plotly hovered: {hovered}"
        )
    ui.settle(tab)
    assert (true_box.input_value(), pred_box.input_value()) == target
    tickets = tab.locator(".st-key-review_cell_tickets table")
    # the grid's accessible copy is redrawn a moment after the new rows arrive
    expect(tickets).to_have_attribute("aria-rowcount", str(count + 1))
    shown = tickets.locator('td[aria-colindex="1"]').all_inner_texts()
    wanted = set(evaluation.tickets_for_cell(*target)["text"])
    assert shown and set(shown) <= wanted, (shown, wanted)
    ui.assert_no_app_error(tab)


def _cell_centre(plot, cell: tuple[str, str]) -> tuple[float, float]:
    """Page coordinates of the middle of the heatmap square (true label, predicted label),
    from the heatmap image's box and the order of the axis tick labels on screen."""
    image = plot.locator(".heatmaplayer image").first
    image.wait_for()
    box = image.bounding_box()
    ticks = plot.evaluate(
        """g => ['xtick', 'ytick'].map(cls => [...g.querySelectorAll('.' + cls + ' text')].map(
              t => { const r = t.getBoundingClientRect();
                     return [t.textContent, r.x + r.width / 2, r.y + r.height / 2]; }))"""
    )
    columns = [name for name, _, _ in sorted(ticks[0], key=lambda t: t[1])]
    rows = [name for name, _, _ in sorted(ticks[1], key=lambda t: t[2])]
    assert sorted(columns) == sorted(rows), (columns, rows)
    n = len(columns)
    x = box["x"] + (columns.index(cell[1]) + 0.5) * box["width"] / n
    y = box["y"] + (rows.index(cell[0]) + 0.5) * box["height"] / n
    return x, y


def test_try_a_ticket(app_server, tab, ui, flow):
    need(flow, "run_id")
    ui.go(tab, "4 Use the model", "4 · Use the model")
    picker = tab.get_by_role("combobox", name="Trained model", exact=True)
    assert picker.input_value().startswith(RUN_NAME)
    box = tab.get_by_label("Ticket text")
    box.fill(TRY_IT_TEXT)
    box.press("Control+Enter")
    button = tab.get_by_role("button", name="Label it")
    expect(button).to_be_enabled()
    words = tab.get_by_text("Words that drove the decision")
    ui.click_until(tab, button, words.is_visible, wait_s=PAGE_TIMEOUT_MS / 1000)
    ui.settle(tab)

    shown_label = tab.locator('.st-key-predict_label div[style*="overflow-wrap"]')
    label = shown_label.inner_text().strip()
    # shown whole: nothing cut off with "…" as st.metric did with long label names
    assert shown_label.evaluate("e => e.scrollWidth <= e.clientWidth")
    assert label in flow["labels"]
    assert re.fullmatch(r"\d{1,3}%", ui.metric(tab, "How sure the model is"))
    chart = tab.locator(".st-key-predict_top_chart .js-plotly-plot")
    bars = chart.evaluate("g => ({y: g.data[0].y, text: g.data[0].text})")
    assert bars["y"][0] == label
    assert bars["text"] and all(re.fullmatch(r"\d{1,3}%", t) for t in bars["text"]), bars
    shown = chart.locator("text.bartext").all_text_contents()
    assert any(re.fullmatch(r"\d{1,3}%", t) for t in shown), shown
    marked = tab.locator('[data-testid="stMarkdownContainer"] span[title*="the label ("]')
    words = marked.all_inner_texts()
    assert words, "no highlighted words"
    assert all(word in TRY_IT_TEXT for word in words), words
    assert tab.get_by_text("words pushed towards the label").is_visible()
    ui.assert_no_app_error(tab)
    flow["tried"] = True


def test_score_a_file_and_download_it(app_server, tab, ui, flow, tmp_path):
    need(flow, "run_id")
    if "tried" not in flow:
        ui.go(tab, "4 Use the model", "4 · Use the model")
    ui.upload(tab, NEW_TICKETS, uploader_label="New tickets")
    start = tab.get_by_role("button", name="Label the file")
    start.wait_for(timeout=PAGE_TIMEOUT_MS)
    ui.settle(tab)
    trained_on = tab.get_by_test_id("stCaptionContainer").filter(has_text="The model reads")
    expect(trained_on).to_have_text(
        f"The model reads {' + '.join(TEXT_COLUMNS)}, the columns it was trained on."
    )
    assert not tab.get_by_role("checkbox", name="Use other columns").is_checked()
    new = read_table(NEW_TICKETS)
    labelled = tab.get_by_text(f"Labelled {len(new):,} tickets.")
    stop = tab.get_by_role("button", name="Stop labelling")
    ui.click_until(tab, start, lambda: labelled.is_visible() or stop.is_visible())
    labelled.wait_for(timeout=TRAIN_TIMEOUT_MS)
    ui.settle(tab)
    results = tab.locator(".st-key-predict_results")
    assert results.get_by_test_id("stDataFrame").is_visible()
    expect(results.locator("table")).to_have_attribute("aria-rowcount", str(len(new) + 1))

    with tab.expect_download(timeout=60_000) as download_info:
        tab.get_by_role("button", name="Download the labelled tickets (CSV)").click()
    download = download_info.value
    assert download.suggested_filename.endswith(".csv"), download.suggested_filename
    path = tmp_path / download.suggested_filename
    download.save_as(path)
    scored = pd.read_csv(path, encoding="utf-8-sig", dtype=str, keep_default_na=False)
    assert "predicted_label" in scored.columns, list(scored.columns)
    assert len(scored) == len(new) == 60
    assert scored["ticket_id"].tolist() == new["ticket_id"].astype(str).tolist()
    assert set(scored["predicted_label"]) <= set(flow["labels"])
    confidence = scored["confidence"].astype(float)
    assert confidence.between(0, 1).all()
    ui.assert_no_app_error(tab)

    # The scored file lives in the run: after a reload it is listed with its own download,
    # which is read from disk when clicked and holds the same rows.
    tab.reload()
    ui.wait_for_title(tab, "4 · Use the model")
    main = tab.get_by_test_id("stMain")
    main.get_by_text("Files labelled with this model").wait_for(timeout=PAGE_TIMEOUT_MS)
    expect(main.get_by_text(f"{NEW_TICKETS.name} — {len(new)} tickets")).to_be_visible()
    with tab.expect_download(timeout=60_000) as again_info:
        main.get_by_role("button", name="Download", exact=True).click()
    again = tmp_path / f"again-{again_info.value.suggested_filename}"
    again_info.value.save_as(again)
    assert again.read_bytes() == path.read_bytes()
    ui.assert_no_app_error(tab)


def test_stop_labelling_a_large_file(app_server, tab, ui, flow, tmp_path):
    """A file too big to wait for: "Stop labelling" stops it within a few seconds, says so,
    and adds nothing to the run's labelled files."""
    need(flow, "run_id")
    run = Run(app_server.runs_dir / flow["run_id"])
    before = sorted(p.name for p in scored_folder(run).iterdir())
    new = read_table(NEW_TICKETS)
    big = pd.concat([new] * 700, ignore_index=True)  # 42,000 tickets: minutes to label here
    big["ticket_id"] = [f"BIG-{i:05d}" for i in range(len(big))]
    path = tmp_path / "many new tickets.csv"
    big.to_csv(path, index=False)
    ui.go(tab, "4 Use the model", "4 · Use the model")
    ui.upload(tab, path, uploader_label="New tickets")
    tab.get_by_text("many new tickets.csv").first.wait_for(timeout=PAGE_TIMEOUT_MS)
    ui.settle(tab)
    stop = tab.get_by_role("button", name="Stop labelling")
    ui.click_until(tab, tab.get_by_role("button", name="Label the file"), stop.is_visible)
    expect(tab.get_by_test_id("stProgress").first).to_contain_text("Labelling many new tickets")
    stopped = tab.get_by_text(re.compile(r"^Stopped at your request after [\d,]+ tickets"))
    ui.click_until(tab, stop, stopped.is_visible, wait_s=30)
    ui.settle(tab)
    ui.screenshot(tab, "05b-predict-stopped")
    done = int(re.search(r"after ([\d,]+)", stopped.inner_text()).group(1).replace(",", ""))
    assert 0 <= done < len(big)
    expect(tab.get_by_role("button", name="Stop labelling")).to_have_count(0)
    assert sorted(p.name for p in scored_folder(run).iterdir()) == before
    ui.assert_no_app_error(tab)


PAGES = [  # screenshot name, sidebar link, page title
    ("01-home", "Home", "TicketTune"),
    ("02-data", "1 Data", "1 · Your tickets"),
    ("03-train", "2 Train", "2 · Train a model"),
    ("04-review", "3 Review", "3 · Review the model"),
    ("05-predict", "4 Use the model", "4 · Use the model"),
    ("06-runs", "Runs", "Runs"),
]


def test_screenshot_every_page(app_server, tab, ui, flow):
    """Full-page PNGs under test-artifacts/screenshots/ (left behind for people to look at)."""
    if not flow.get("home"):
        ui.open(tab, app_server.url, "TicketTune")
    for name, nav_title, ready in PAGES:
        ui.go(tab, nav_title, ready)
        ui.assert_no_app_error(tab)
        path = ui.screenshot(tab, name)
        assert path.stat().st_size > 10_000, path
    if "run_id" in flow:
        # The table's accessible copy holds the visible columns only (the run id is not
        # shown), so the row is found by the run's name.
        row = tab.locator(".st-key-runs_table tr").filter(has_text=RUN_NAME)
        expect(row).to_contain_text("finished")
