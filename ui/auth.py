"""The sign-in gate that app.py runs before any page (the pure parts are in core/auth.py).

With ``[auth]`` in the secrets, visitors sign in with the organisation's OpenID Connect provider
(``st.login``); with ``[tickettune] password_hash`` they type the team password; with neither,
only people on this computer get in. Tests and special set-ups can point Streamlit at another
secrets file with ``streamlit run app.py --secrets.files path/to/secrets.toml``.
"""

from __future__ import annotations

import streamlit as st

from core.auth import (
    AccessSettings,
    RateLimiter,
    is_local_address,
    job_owner,
    verify_password,
)
from core.errors import ConfigError
from ui.safe_text import md
from ui.state import browser_session_id

LOCAL_ONLY = (
    "Sign-in is not set up: only people on this computer can open TicketTune. "
    "See README → Shared use."
)
_SIGNED_IN = "_auth_signed_in"
_USER = "_auth_user"


def access_settings() -> AccessSettings:
    try:
        secrets = st.secrets.to_dict()
    except (FileNotFoundError, OSError):
        secrets = {}
    return AccessSettings.from_secrets(secrets)


@st.cache_resource
def rate_limiter() -> RateLimiter:
    """One limiter for every session of this server, so a new tab does not reset it."""
    return RateLimiter()


def gate_page() -> st.Page | None:
    """None when this visitor may use the app; else the one page they may see (sign-in or
    refusal). app.py then navigates to that page alone, so no other page can be opened."""
    try:
        settings = access_settings()
    except ConfigError as exc:
        message = md(exc)
        return _page(lambda: st.error(message, icon=":material/error:"))
    if settings.mode == "oidc":
        return None if st.user.is_logged_in else _page(_oidc_form)
    if settings.mode == "password":
        stored = settings.password_hash or ""
        return None if st.session_state.get(_SIGNED_IN) else _page(lambda: _password_form(stored))
    if visitor_is_local():
        return None
    return _page(lambda: st.error(LOCAL_ONLY, icon=":material/lock:"))


def client_address() -> str | None:
    """The visitor's IP address; None when Streamlit has none (a visitor on this computer)."""
    address = st.context.ip_address
    return address if isinstance(address, str) else None


def visitor_is_local() -> bool:
    """The connection comes from this computer, and not for someone else through a proxy here
    (a proxy says whom it forwards for in X-Forwarded-For)."""
    forwarded = _header("X-Forwarded-For")
    first_hop = forwarded.split(",")[0].strip() if forwarded else None
    return is_local_address(client_address()) and is_local_address(first_hop)


def _header(name: str) -> str | None:
    try:
        value = st.context.headers.get(name)
    except Exception:  # no request headers outside a browser session
        return None
    return value if isinstance(value, str) else None


def _page(body) -> st.Page:
    return st.Page(body, title="Sign in", icon=":material/lock:", url_path="sign-in")


def account_menu() -> None:
    """Sidebar: who is signed in, and a sign-out button (nothing without sign-in)."""
    mode = access_settings().mode
    if mode == "local":
        return
    with st.sidebar:
        st.caption(f"Signed in as {md(current_user() or 'team member')}")
        if st.button("Sign out", key="auth_logout", icon=":material/logout:"):
            if mode == "oidc":
                st.logout()
            st.session_state.pop(_SIGNED_IN, None)
            st.session_state.pop(_USER, None)
            st.rerun()


def current_user() -> str | None:
    """The signed-in person's name or e-mail when known (recorded on the runs they start)."""
    if st.session_state.get(_USER):
        return st.session_state[_USER]
    try:
        if st.user.is_logged_in:
            return str(st.user.get("email") or st.user.get("name") or "") or None
    except Exception:  # no OIDC set up: st.user has nothing to say
        return None
    return None


def owner_id() -> str:
    """Whose jobs this visitor follows and may cancel: the signed-in person when known, else
    this browser session (its id lives in the URL, so a refresh keeps the job its own)."""
    return job_owner(current_user(), browser_session_id())


def local_only_note() -> None:
    """On Home: say plainly when the app is open to this computer only."""
    if access_settings().mode == "local":
        st.caption(LOCAL_ONLY)


def _oidc_form() -> None:
    st.title("TicketTune")
    st.info("Sign in with your organisation account to use TicketTune.", icon=":material/lock:")
    st.button("Sign in", key="auth_login", type="primary", on_click=st.login)


def _password_form(stored: str) -> None:
    st.title("TicketTune")
    client = client_address() or "localhost"
    limiter = rate_limiter()
    with st.form("auth_form"):
        st.caption("This TicketTune is shared by a team. Type the team password to go on.")
        name = st.text_input("Your name (shown on the runs you start)", key="auth_name")
        password = st.text_input("Team password", type="password", key="auth_password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if not submitted:
        return
    wait = limiter.wait_seconds(client)
    if wait > 0:
        st.error(
            f"Too many wrong passwords from this computer. Try again in {wait:.0f} s.",
            icon=":material/timer:",
        )
    elif verify_password(password, stored):
        limiter.succeeded(client)
        st.session_state[_SIGNED_IN] = True
        st.session_state[_USER] = name.strip() or None
        st.rerun()
    else:
        limiter.failed(client)
        st.error("That password is not right. Try again.", icon=":material/error:")
