"""Browser tests: the real app (``streamlit run app.py``) driven by headless Debian Chromium.

One Streamlit server serves the whole e2e session (its runs and uploads go to a temporary
folder); each test module gets its own browser context. The whole folder is skipped, with the
reason, when the ``playwright`` package or the Chromium binary is missing.

Helpers for driving Streamlit widgets live here too (class ``StreamlitUI``); the tests get them
through the ``ui`` fixture rather than by importing a conftest.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("TICKETTUNE_E2E_CHROMIUM", "/usr/bin/chromium"))
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
SERVER_LOG_COPY = ROOT / "test-artifacts" / "e2e-streamlit-server.log"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Each analyst looks at their own tab; in one test browser, Chromium would treat all but
    # one as background tabs and throttle their timers (Streamlit's fragment polling) to about
    # once a minute — a test artefact, not what analysts see.
    "--disable-background-timer-throttling",
    "--disable-backgrounding-occluded-windows",
    "--disable-renderer-backgrounding",
]
VIEWPORT = {"width": 1400, "height": 1000}
SERVER_START_TIMEOUT_S = 120
DEFAULT_TIMEOUT_MS = 30_000
PAGE_TIMEOUT_MS = 90_000  # a page whose first run loads torch and the model
LOG_TAIL_CHARS = 6_000


def _missing_requirement() -> str | None:
    if importlib.util.find_spec("playwright") is None:
        return "the playwright package is not installed (pip install -r requirements-dev.txt)"
    if not CHROMIUM.is_file():
        return f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)"
    return None


SKIP_REASON = _missing_requirement()
HERE = Path(__file__).resolve().parent


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "e2e: drives the real app in headless Chromium")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test of this folder e2e, and skip them all when the browser is missing.

    Also slow: the flow trains and uses the built-in model, and later pages read that run.
    """
    for item in items:
        if HERE not in Path(str(item.path)).resolve().parents:
            continue
        item.add_marker(pytest.mark.e2e)
        item.add_marker(pytest.mark.slow)
        if SKIP_REASON:
            item.add_marker(pytest.mark.skip(reason=f"browser tests skipped: {SKIP_REASON}"))


# ------------------------------------------------------------------------------ the server


@dataclass
class AppServer:
    url: str
    runs_dir: Path
    workspace_dir: Path
    log_path: Path
    process: subprocess.Popen

    def log_tail(self, chars: int = LOG_TAIL_CHARS) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            return f"(server log unreadable: {exc})"
        return text[-chars:]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
            return response.status == 200 and response.read().strip() == b"ok"
    except OSError:
        return False


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM the server's process group, SIGKILL it if it lingers."""
    if process.poll() is not None:
        return
    for sig, wait_s in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="session")
def app_server(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest):
    """``streamlit run app.py`` on a free port, with its own runs and workspace folders."""
    if SKIP_REASON:
        pytest.skip(SKIP_REASON)
    base = tmp_path_factory.mktemp("e2e-app")
    runs_dir, workspace_dir = base / "runs", base / "workspace"
    log_path = base / "streamlit.log"
    port = _free_port()
    env = {
        **os.environ,
        "TICKETTUNE_RUNS_DIR": str(runs_dir),
        "TICKETTUNE_WORKSPACE_DIR": str(workspace_dir),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONUNBUFFERED": "1",
    }
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        "app.py",
        # Only where to listen: everything else comes from the shipped .streamlit/config.toml,
        # so the tests run the configuration analysts get (file watcher included).
        "--server.port",
        str(port),
        "--server.address",
        "127.0.0.1",
    ]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: the teardown kills all of it
        )
    server = AppServer(f"http://127.0.0.1:{port}", runs_dir, workspace_dir, log_path, process)
    failed_before = request.session.testsfailed
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while not _healthy(server.url):
            if process.poll() is not None:
                pytest.fail(
                    f"streamlit exited with code {process.returncode}:\n{server.log_tail()}"
                )
            if time.monotonic() > deadline:
                pytest.fail(
                    f"streamlit did not answer {server.url}/_stcore/health within "
                    f"{SERVER_START_TIMEOUT_S} s:\n{server.log_tail()}"
                )
            time.sleep(0.25)
        yield server
    finally:
        _stop(process)
        SERVER_LOG_COPY.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            SERVER_LOG_COPY.write_bytes(log_path.read_bytes())
        if request.session.testsfailed > failed_before:
            # Shown with -s or in the captured teardown output; every failing e2e test also
            # carries the log tail in its report (pytest_runtest_makereport below).
            sys.stderr.write(f"\n--- streamlit server log (tail) ---\n{server.log_tail()}\n")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """A failing e2e test's report carries the server log tail and the browser console."""
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    server = getattr(item, "funcargs", {}).get("app_server")
    if server is not None:
        report.sections.append(("streamlit server log (tail)", server.log_tail()))
    console = _console_log_for(item)
    if console:
        report.sections.append(("browser console (last 60)", "\n".join(console[-60:])))
    shown = _page_at_failure(item)
    if shown:
        report.sections.append(("what the page showed", shown))


def _page_at_failure(item: pytest.Item) -> str:
    """The failing test's tab: a screenshot in test-artifacts and the start of its text."""
    page = getattr(item, "funcargs", {}).get("tab")
    if page is None or page.is_closed():
        return ""
    try:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"FAILED-{item.name}.png"), full_page=True)
        text = page.get_by_test_id("stMain").inner_text(timeout=2_000)
    except Exception as exc:  # the page may be what broke: say so, keep the original failure
        return f"(could not read the page: {type(exc).__name__}: {exc})"
    return f"url: {page.url}\n{text[:LOG_TAIL_CHARS]}"


def _console_log_for(item: pytest.Item) -> list[str]:
    page = getattr(item, "funcargs", {}).get("tab")
    return list(getattr(page, "_e2e_console", [])) if page is not None else []


# ----------------------------------------------------------------------------- the browser


@pytest.fixture(scope="session")
def browser():
    """Headless Debian Chromium (Playwright's own browser download is not used)."""
    if SKIP_REASON:
        pytest.skip(SKIP_REASON)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def tab(browser):
    """One browser tab in its own context (so its own Streamlit session) per test module;
    it records the browser console for failure reports."""
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    page = context.new_page()
    page._e2e_console = []
    page.on("console", lambda msg: page._e2e_console.append(f"{msg.type}: {msg.text}"))
    page.on("pageerror", lambda exc: page._e2e_console.append(f"pageerror: {exc}"))
    yield page
    context.close()


# ------------------------------------------------------------------- Streamlit helpers


class StreamlitUI:
    """Small, explicit helpers for driving a Streamlit page the way an analyst does."""

    screenshots = SCREENSHOTS

    @staticmethod
    def settle(page, timeout: float = DEFAULT_TIMEOUT_MS) -> None:
        """Wait until the script run finished and nothing on the page is stale."""
        page.wait_for_function(
            """() => {
                const app = document.querySelector('[data-testid="stApp"]');
                return app !== null
                    && app.getAttribute('data-test-script-state') === 'notRunning'
                    && app.getAttribute('data-test-connection-state') === 'CONNECTED'
                    && document.querySelector('[data-stale="true"]') === null
                    && document.querySelector('[data-testid="stSkeleton"]') === null;
            }""",
            timeout=timeout,
        )

    @staticmethod
    @contextlib.contextmanager
    def rerun(page, timeout: float = DEFAULT_TIMEOUT_MS):
        """``with ui.rerun(page): <click>`` waits for the rerun the click starts to finish.

        Right after a click the app may still say "not running" for a moment, so waiting
        for "not running" alone can return before the rerun. A MutationObserver notes that
        a run started; then the wait is for the end of it."""
        page.evaluate(
            """() => {
                const app = document.querySelector('[data-testid="stApp"]');
                if (window._e2eObserver) window._e2eObserver.disconnect();
                window._e2eRerun = false;
                // A short run can start and end before the callback fires: then only the
                // records' old values show that it ran.
                window._e2eObserver = new MutationObserver((records) => {
                    const ran = records.some(r => r.oldValue && r.oldValue !== 'notRunning');
                    if (ran || app.getAttribute('data-test-script-state') !== 'notRunning') {
                        window._e2eRerun = true;
                    }
                });
                window._e2eObserver.observe(app, {
                    attributes: true,
                    attributeOldValue: true,
                    attributeFilter: ['data-test-script-state'],
                });
            }"""
        )
        yield
        page.wait_for_function("() => window._e2eRerun === true", timeout=timeout)
        StreamlitUI.settle(page, timeout)

    @staticmethod
    def change(page, action, done, attempts: int = 3, timeout: float = 20_000) -> None:
        """Do ``action`` and wait for the rerun it starts, robust to two races seen under load.

        A rerun can start before the wait is set up (an input committed on blur while an
        earlier rerun redraws the page), a click can land on an element being redrawn, and the
        rerun seen can be a polling fragment's. So the page's own state (``done``) decides
        whether the change took; if it did not, the action is repeated."""
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        for _ in range(attempts):
            try:
                with StreamlitUI.rerun(page, timeout=timeout):
                    action()
            except PlaywrightTimeout:
                StreamlitUI.settle(page)
            if done():
                return
        raise AssertionError(f"the page did not take the change after {attempts} tries")

    @staticmethod
    def click_until(page, target, started, wait_s: float = 45.0, attempts: int = 3) -> None:
        """Click ``target`` until ``started()`` says the page took the click.

        For buttons that start long work (training, labelling a file): their script run can
        last minutes, so its end is no sign. A click that landed on a control being redrawn
        is lost; it is repeated only while ``started()`` stays false for ``wait_s`` and the
        button is still there to click, so one click never starts the work twice."""
        for attempt in range(attempts):
            if attempt and not (target.is_visible() and target.is_enabled()):
                break
            target.click()
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline:
                if started():
                    return
                page.wait_for_timeout(250)
        raise AssertionError(f"the page did not take the click after {attempts} tries")

    @staticmethod
    def enter(page, box, value: str) -> None:
        """Type ``value`` into a text or number input and apply it with Enter.

        Applied means the box shows the value (numbers compared as numbers: "20" shows as
        "20.00") and Streamlit no longer offers "Press Enter to apply" under it."""
        widget = box.locator(
            "xpath=ancestor::div[@data-testid='stNumberInput' or @data-testid='stTextInput'][1]"
        )

        def applied() -> bool:
            shown = box.input_value()
            try:
                same = float(shown) == float(value)
            except ValueError:
                same = shown == value
            return same and "Press Enter" not in widget.inner_text()

        StreamlitUI.change(page, lambda: (box.fill(value), box.press("Enter")), applied)
        assert applied(), f"the box shows {box.input_value()!r}, wanted {value!r}"

    @staticmethod
    def wait_for_title(page, title: str, timeout: float = PAGE_TIMEOUT_MS) -> None:
        """Wait for the page's ``st.title`` (an h1 in the main area), then for the run to end.

        The old page's elements linger (stale) during a switch, so waiting for the new title,
        not for any text, is what tells the new page is there."""
        main = page.get_by_test_id("stMain")
        main.get_by_role("heading", name=title, exact=True, level=1).wait_for(timeout=timeout)
        StreamlitUI.settle(page, timeout)

    @staticmethod
    def open(page, url: str, title: str, timeout: float = PAGE_TIMEOUT_MS) -> None:
        page.goto(url)
        page.get_by_test_id("stMain").wait_for(timeout=timeout)
        StreamlitUI.wait_for_title(page, title, timeout)

    @staticmethod
    def go(page, nav_title: str, title: str, timeout: float = PAGE_TIMEOUT_MS) -> None:
        """Switch page through the sidebar navigation (keeps the tab's session state)."""
        nav = page.get_by_test_id("stSidebarNav")
        nav.get_by_role("link", name=nav_title, exact=True).click()
        StreamlitUI.wait_for_title(page, title, timeout)

    @staticmethod
    def assert_no_app_error(page) -> None:
        """No traceback element and no 'Something went wrong' apology on the page."""
        exceptions = page.locator('[data-testid="stException"]')
        assert exceptions.count() == 0, exceptions.first.inner_text()
        apology = page.get_by_text("Something went wrong on this page")
        assert apology.count() == 0, apology.first.inner_text()

    @staticmethod
    def query_param(page, name: str) -> str | None:
        match = re.search(rf"[?&]{re.escape(name)}=([^&#]+)", page.url)
        return urllib.request.unquote(match.group(1)) if match else None

    @staticmethod
    def metric(page, label: str) -> str:
        """The value shown by the ``st.metric`` with this label."""
        box = page.get_by_test_id("stMetric").filter(
            has=page.get_by_test_id("stMetricLabel").get_by_text(label, exact=True)
        )
        return box.get_by_test_id("stMetricValue").inner_text().strip()

    @staticmethod
    def multiselect_values(page, label: str) -> list[str]:
        box = page.get_by_test_id("stMultiSelect").filter(has_text=label)
        tags = box.locator('[aria-label="Selected values"] [data-tag]')
        return tags.evaluate_all("tags => tags.map(t => t.getAttribute('aria-label'))")

    @staticmethod
    def set_multiselect(page, label: str, values: list[str]) -> None:
        """Make the multiselect hold exactly ``values`` in this order (removing, then adding)."""
        box = page.get_by_test_id("stMultiSelect").filter(has_text=label)
        current = StreamlitUI.multiselect_values(page, label)
        keep = 0
        while keep < min(len(current), len(values)) and current[keep] == values[keep]:
            keep += 1
        for value in reversed(current[keep:]):
            with StreamlitUI.rerun(page):
                box.get_by_role("button", name=f"Remove {value}", exact=True).click()
        for value in values[keep:]:
            combo = box.get_by_role("combobox")
            combo.click()
            combo.fill(value)
            with StreamlitUI.rerun(page):
                page.get_by_role("option", name=value, exact=True).click()
            page.keyboard.press("Escape")
        shown = StreamlitUI.multiselect_values(page, label)
        assert shown == values, f"{label!r} shows {shown}, wanted {values}"

    @staticmethod
    def select(page, label: str, option: str) -> None:
        """Pick ``option`` in the selectbox labelled ``label`` through its dropdown."""
        combo = page.get_by_role("combobox", name=label, exact=True)
        combo.click()
        choice = page.get_by_role("option", name=option, exact=True)
        if combo.input_value() == option:  # choosing the shown value again starts no rerun
            choice.click()
            StreamlitUI.settle(page)
        else:
            with StreamlitUI.rerun(page):
                choice.click()
        assert combo.input_value() == option

    @staticmethod
    def upload(page, path: Path, uploader_label: str | None = None) -> None:
        uploaders = page.get_by_test_id("stFileUploader")
        if uploader_label:
            uploaders = uploaders.filter(has_text=uploader_label)
        uploaders.locator('input[type="file"]').set_input_files(str(path))

    @staticmethod
    def screenshot(page, name: str) -> Path:
        """A PNG of the whole page: Streamlit scrolls inside ``stMain``, not the document, so
        the viewport is stretched to the content's height for the shot."""
        StreamlitUI.screenshots.mkdir(parents=True, exist_ok=True)
        path = StreamlitUI.screenshots / f"{name}.png"
        size = page.viewport_size or VIEWPORT
        try:
            for _ in range(2):  # stretching can itself change the content's height
                height = page.evaluate(
                    """() => {
                        const main = document.querySelector('[data-testid="stMain"]');
                        return Math.max(main ? main.scrollHeight : 0, window.innerHeight);
                    }"""
                )
                page.set_viewport_size({"width": size["width"], "height": min(int(height), 16_000)})
                page.evaluate(
                    "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))"
                )
            StreamlitUI.settle(page)
            page.screenshot(path=str(path), full_page=True)
        finally:
            page.set_viewport_size(size)
        return path


@pytest.fixture(scope="session")
def ui() -> type[StreamlitUI]:
    return StreamlitUI
