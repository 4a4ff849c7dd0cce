"""The Use page's "serve it to the helpdesk" box: the command and a curl example for a run."""

from __future__ import annotations

import streamlit as st

from core.runs import Run
from core.service_hint import API_KEY_ENV, service_hint


def show_serve_hint(run: Run) -> None:
    """An expander with the command that serves this run over HTTP and a call to try it."""
    hint = service_hint(run)
    with st.expander("Let the helpdesk system label tickets on its own (scoring service)"):
        st.caption(
            "An engineer runs this on a server; the helpdesk then sends each new ticket to it "
            f"and gets the label back. Set {API_KEY_ENV} to require a key; see /docs once "
            "it runs."
        )
        st.code(hint.command, language="bash")
        st.caption("Try it with one ticket:")
        st.code(hint.curl, language="bash")
