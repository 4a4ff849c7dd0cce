"""Signing in with a team password in a real browser, against its own server.

The server reads a secrets file made for the test (``--secrets.files``), the way an
administrator's ``.streamlit/secrets.toml`` is read; see README → Shared use.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from core.auth import hash_password

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery"
START_TIMEOUT_S = 120
PAGE_TIMEOUT_MS = 90_000


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def password_server(tmp_path_factory):
    """``streamlit run app.py`` with a team password in its secrets."""
    base = tmp_path_factory.mktemp("e2e-sign-in")
    secrets = base / "secrets.toml"
    secrets.write_text(f'[tickettune]\npassword_hash = "{hash_password(PASSWORD)}"\n')
    port = _free_port()
    env = {**os.environ, "TICKETTUNE_RUNS_DIR": str(base / "runs"), "HF_HUB_OFFLINE": "1"}
    env["TICKETTUNE_WORKSPACE_DIR"] = str(base / "workspace")
    command = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true"]
    command += ["--server.port", str(port), "--server.address", "127.0.0.1"]
    command += ["--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"]
    command += ["--secrets.files", str(secrets)]
    log = open(base / "streamlit.log", "wb")  # noqa: SIM115 - open for the server's lifetime
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _healthy(url):
            assert process.poll() is None, (base / "streamlit.log").read_text()
            assert time.monotonic() < deadline, "streamlit did not start"
            time.sleep(0.25)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=15)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        log.close()


def _sign_in(tab, ui, password: str, name: str = "") -> None:
    tab.get_by_label("Your name (shown on the runs you start)").fill(name)
    tab.get_by_label("Team password").fill(password)
    with ui.rerun(tab):
        tab.get_by_role("button", name="Sign in").click()


def test_team_password_sign_in(password_server, tab, ui):
    tab.goto(password_server)
    tab.get_by_label("Team password").wait_for(timeout=PAGE_TIMEOUT_MS)
    ui.settle(tab)
    assert tab.get_by_role("button", name="Try with sample data").count() == 0
    assert tab.get_by_test_id("stSidebarNav").count() == 0

    _sign_in(tab, ui, "not the password")
    tab.get_by_text("That password is not right. Try again.").wait_for()
    assert tab.get_by_role("button", name="Try with sample data").count() == 0

    _sign_in(tab, ui, PASSWORD, "Ana")
    tab.get_by_role("button", name="Try with sample data").wait_for(timeout=PAGE_TIMEOUT_MS)
    assert tab.get_by_text("Signed in as Ana").is_visible()
    assert tab.get_by_text("Sign-in is not set up").count() == 0
    ui.assert_no_app_error(tab)

    tab.goto(password_server + "/data")  # a new session: the gate again, even on a deep link
    tab.get_by_label("Team password").wait_for(timeout=PAGE_TIMEOUT_MS)
    assert tab.get_by_test_id("stFileUploader").count() == 0
