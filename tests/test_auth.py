"""Sign-in: password hashing and checking, the rate limit, and the gate in front of every page."""

from __future__ import annotations

import io
import re
import sys
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from core.auth import (
    AccessSettings,
    RateLimiter,
    hash_password,
    is_local_address,
    is_session_id,
    job_owner,
    new_session_id,
    verify_password,
)
from core.errors import ConfigError
from ui.state import shutdown_all

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
PASSWORD = "correct horse battery"


# ------------------------------------------------------------------------------ core/auth


def test_a_hashed_password_verifies_and_a_wrong_one_does_not():
    stored = hash_password(PASSWORD)
    assert stored.startswith("scrypt$") and PASSWORD not in stored
    assert verify_password(PASSWORD, stored)
    assert not verify_password(PASSWORD + " ", stored)
    assert not verify_password("", stored)


def test_each_hash_has_its_own_salt():
    first, second = hash_password(PASSWORD), hash_password(PASSWORD)
    assert first != second and verify_password(PASSWORD, second)


def test_a_short_password_is_refused():
    with pytest.raises(ConfigError, match="at least 8"):
        hash_password("short")


@pytest.mark.parametrize("stored", ["plain", "scrypt$1$2$3", "md5$16384$8$1$YQ==$YQ==", "scrypt$x"])
def test_a_malformed_hash_in_the_secrets_is_a_setup_error(stored):
    with pytest.raises(ConfigError, match="hash-password"):
        AccessSettings.from_secrets({"tickettune": {"password_hash": stored}})


def test_access_settings_from_secrets():
    stored = hash_password(PASSWORD)
    assert AccessSettings.from_secrets({}).mode == "local"
    assert AccessSettings.from_secrets({"auth": {"client_id": "x"}}).mode == "oidc"
    settings = AccessSettings.from_secrets({"tickettune": {"password_hash": stored}})
    assert settings == AccessSettings("password", stored)


def test_a_job_belongs_to_the_signed_in_person_else_to_the_browser_session():
    session = new_session_id()
    assert is_session_id(session) and new_session_id() != session
    assert job_owner("Ana@Example.org", session) == "user:ana@example.org"
    assert job_owner("ana@example.org", new_session_id()) == job_owner("Ana@Example.org", session)
    assert job_owner("  ", session) == job_owner(None, session) == f"session:{session}"
    for bad in ("", "short", "../../etc/passwd-and-more", "a b c d e f g h i j k l", None):
        assert not is_session_id(bad)
    with pytest.raises(ValueError):
        job_owner(None, "../../etc/passwd")


@pytest.mark.parametrize(
    ("address", "local"),
    [
        *[(None, True), ("127.0.0.1", True), ("::1", True), ("127.0.1.1", True)],
        *[("10.0.0.5", False), ("192.168.1.20", False), ("2001:db8::1", False), ("junk", False)],
    ],
)
def test_loopback_addresses(address, local):
    assert is_local_address(address) is local


def test_the_rate_limit_backs_off_exponentially_per_client():
    now = [1000.0]
    limiter = RateLimiter(free_failures=5, first_wait_s=2, max_wait_s=60, clock=lambda: now[0])
    for _ in range(5):
        assert limiter.wait_seconds("10.0.0.5") == 0
        limiter.failed("10.0.0.5")
    assert limiter.wait_seconds("10.0.0.5") == 2
    assert limiter.wait_seconds("10.0.0.6") == 0  # another client is not affected
    now[0] += 2
    assert limiter.wait_seconds("10.0.0.5") == 0
    limiter.failed("10.0.0.5")
    assert limiter.wait_seconds("10.0.0.5") == 4
    for _ in range(10):
        limiter.failed("10.0.0.5")
    assert limiter.wait_seconds("10.0.0.5") == 60  # capped
    limiter.succeeded("10.0.0.5")
    assert limiter.wait_seconds("10.0.0.5") == 0


def test_hash_password_command_prints_a_secrets_line(monkeypatch, capsys):
    from core.cli import main

    monkeypatch.setattr(sys, "stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["hash-password"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("[tickettune]\n")
    stored = re.fullmatch(r'password_hash = "(scrypt\$[^"]+)"', out.splitlines()[1]).group(1)
    assert verify_password(PASSWORD, stored)


def test_hash_password_command_refuses_a_short_password_with_one_line(monkeypatch, capsys):
    from core.cli import main

    monkeypatch.setattr(sys, "stdin", io.StringIO("short\n"))
    assert main(["hash-password"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.strip().count("\n") == 0
    assert "at least 8" in captured.err


# ------------------------------------------------------------------------------ the gate


@pytest.fixture(autouse=True)
def isolated_app(tmp_path, monkeypatch):
    monkeypatch.setenv("TICKETTUNE_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.delenv("TICKETTUNE_WORKSPACE_DIR", raising=False)
    st.cache_resource.clear()
    yield
    shutdown_all()


def password_app() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.secrets["tickettune"] = {"password_hash": hash_password(PASSWORD)}
    return at.run()


def sign_in(at: AppTest, password: str, name: str = "") -> AppTest:
    at.text_input(key="auth_name").set_value(name)
    at.text_input(key="auth_password").set_value(password)
    return at.button[0].click().run()


def test_with_a_team_password_nothing_shows_before_sign_in():
    at = password_app()
    assert not at.exception
    assert at.text_input(key="auth_password") is not None
    assert [t.value for t in at.title] == ["TicketTune"]
    assert "home_sample" not in _keys(at)
    with pytest.raises(ValueError, match="Sign in"):  # the sign-in page is the only page
        at.switch_page("pages/data.py")


def _keys(at: AppTest) -> set[str]:
    return {getattr(e, "key", None) for e in at.main} | {
        getattr(e, "key", None) for e in at.sidebar
    }


def test_a_wrong_password_is_an_error_and_the_right_one_opens_the_pages():
    at = sign_in(password_app(), "wrong password")
    assert any("not right" in e.value for e in at.error)
    assert "home_sample" not in _keys(at)
    at = sign_in(at, PASSWORD, "Ana")
    assert not at.exception and not at.error
    assert any("Signed in as Ana" in c.value for c in at.sidebar.caption)
    at.switch_page("pages/data.py").run()
    assert at.file_uploader(key="data_upload") is not None


def test_five_wrong_passwords_make_the_client_wait():
    at = password_app()
    for _ in range(5):
        at = sign_in(at, "wrong password")
    at = sign_in(at, PASSWORD)  # even the right one must wait now
    assert any("Too many wrong passwords" in e.value for e in at.error)
    assert "home_sample" not in _keys(at)


def test_without_sign_in_home_says_the_app_is_for_this_computer_only():
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    assert any("Sign-in is not set up" in c.value for c in at.caption)


def test_a_run_records_who_started_it(tiny_model_dir, monkeypatch):
    """The name typed at sign-in goes into the run's status as started_by."""
    from core.runs import RunStore
    from tests.helpers import topic_frame

    at = sign_in(password_app(), PASSWORD, "Ana")
    at.switch_page("pages/data.py").run()
    frame = topic_frame(15).drop(columns="row").rename(columns={"text": "body"})
    data = frame.to_csv(index=False).encode()
    at.file_uploader(key="data_upload").upload("t.csv", data, "text/csv").run()
    at.switch_page("pages/train.py").run()
    at.radio(key="train_model").set_value(at.radio(key="train_model").options[1]).run()
    at.text_input(key="train_model_path").set_value(str(tiny_model_dir)).run()
    at.button(key="train_start").click().run()
    assert not at.exception, [e.value for e in at.exception]
    (summary,) = RunStore().list()
    assert RunStore().get(summary.run_id).status()["started_by"] == "Ana"


def test_without_sign_in_a_visitor_from_another_machine_is_refused(monkeypatch):
    """Streamlit reports the visitor's address; AppTest cannot, so it is set here."""
    import ui.auth

    monkeypatch.setattr(ui.auth, "client_address", lambda: "192.168.1.20")
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    assert any("only people on this computer" in e.value for e in at.error)
    assert "home_sample" not in _keys(at)
    with pytest.raises(ValueError, match="Sign in"):
        at.switch_page("pages/data.py")


def test_without_sign_in_a_visitor_through_a_local_proxy_is_refused(monkeypatch):
    """A reverse proxy on this computer connects from 127.0.0.1 but names the visitor."""
    import ui.auth

    monkeypatch.setattr(ui.auth, "client_address", lambda: "127.0.0.1")
    monkeypatch.setattr(ui.auth, "_header", lambda name: "203.0.113.7, 127.0.0.1")
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert any("only people on this computer" in e.value for e in at.error)
    assert "home_sample" not in _keys(at)


# ------------------------------------------------- OpenID Connect (st.login; needs Authlib)

OIDC = {
    "redirect_uri": "http://localhost:8501/oauth2callback",
    "cookie_secret": "a-long-random-string-for-the-identity-cookie",
    "client_id": "tickettune",
    "client_secret": "not-a-real-secret",
    "server_metadata_url": "https://login.example.org/.well-known/openid-configuration",
}


def oidc_app(user: dict) -> AppTest:
    """The app with an ``[auth]`` section in its secrets and ``user`` as ``st.user``."""
    pytest.importorskip("authlib", reason="st.login needs Authlib: pip install 'streamlit[auth]'")
    at = AppTest.from_file(APP, default_timeout=60)
    at.secrets["auth"] = OIDC
    at.user = user
    return at.run()


def test_with_oidc_the_sign_in_button_shows_and_every_page_stays_closed():
    at = oidc_app({"is_logged_in": False})
    assert not at.exception, [e.value for e in at.exception]
    assert at.button(key="auth_login").label == "Sign in"
    assert any("organisation account" in i.value for i in at.info)
    assert "home_sample" not in _keys(at)
    with pytest.raises(ValueError, match="Sign in"):  # the sign-in page is the only page
        at.switch_page("pages/train.py")


def test_with_oidc_a_signed_in_person_owns_their_job_in_every_browser():
    """Ana starts a training; Ana in another browser (another session) follows and may cancel
    it; Ben sees only that another analyst's training is running."""
    from tests.helpers import topic_frame
    from ui.state import get_jobs

    ana = {"is_logged_in": True, "email": "ana@example.org", "name": "Ana"}
    at = oidc_app(ana)
    from ui.safe_text import md

    assert any(f"Signed in as {md('ana@example.org')}" in c.value for c in at.sidebar.caption)
    jobs = get_jobs()
    jobs.train_fn = lambda run, request, progress, cancel: cancel.wait(30) or {}  # till cancelled
    at.switch_page("pages/data.py").run()
    frame = topic_frame(15).drop(columns="row").rename(columns={"text": "body"})
    data = frame.to_csv(index=False).encode()
    at.file_uploader(key="data_upload").upload("t.csv", data, "text/csv").run()
    at.switch_page("pages/train.py").run()
    at.text_input(key="train_name").set_value("ana's model").run()
    at.button(key="train_start").click().run()
    assert not at.exception, [e.value for e in at.exception]
    run_id = at.query_params["run"]
    assert jobs.snapshot(run_id).owner == "user:ana@example.org"
    elsewhere = oidc_app(ana)  # a new session: another browser, no ?run= or ?session=
    assert elsewhere.query_params["session"] != at.query_params["session"]
    elsewhere.switch_page("pages/train.py").run()
    assert elsewhere.get_by_key("train_job").markdown[0].value == "#### ana's model"

    ben = oidc_app({"is_logged_in": True, "email": "ben@example.org"})
    ben.switch_page("pages/train.py").run()
    assert not [b for b in ben.button if b.key == "train_cancel"]
    notes = " ".join(i.value for i in ben.info)
    assert "Another analyst's training is running — yours will start when it ends." in notes

    elsewhere.button(key="train_cancel").click().run()
    assert jobs.wait(run_id, timeout=30).state == "cancelled"
