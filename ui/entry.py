"""Make sure the entrypoint (app.py) runs before a page, even in Streamlit's legacy MPA mode.

Streamlit decides at its first script run whether an app is a legacy multipage app: if a
``pages/`` folder sits next to the entrypoint, that run (and every run in AppTest) builds the
navigation from the folder and, for a URL such as ``/train``, runs ``pages/train.py`` directly,
without ``app.py``. Only a call to ``st.navigation`` switches the legacy mode off. So a page that
finds itself run in that mode runs the entrypoint itself (which calls ``st.navigation`` and then
this very page) and stops.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

ENTRYPOINT = Path(__file__).resolve().parent.parent / "app.py"


def _legacy_mode() -> bool:
    try:
        from streamlit.runtime.pages_manager import PagesManager
    except ImportError:  # a future Streamlit without it has no legacy mode either
        return False
    return bool(getattr(PagesManager, "uses_pages_directory", False))


def ensure_entrypoint() -> None:
    """Run app.py instead of this page when Streamlit skipped it; no-op otherwise."""
    if not _legacy_mode():
        return
    code = compile(ENTRYPOINT.read_text(encoding="utf-8"), str(ENTRYPOINT), "exec")
    exec(code, {"__name__": "__main__", "__file__": str(ENTRYPOINT)})  # calls st.navigation
    st.stop()
