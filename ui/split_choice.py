"""The optional part of the Data page: which tickets make the final test set."""

from __future__ import annotations

import streamlit as st

from core.config import TrainConfig
from core.tables import FILE_TYPES
from ui.data_flow import process_upload, save_checked_upload
from ui.safe_text import md
from ui.state import get_workspace, upload_filename

SPLIT_MODES = {
    "random": f"Hold back {TrainConfig().test_fraction:.0%} of the tickets at random for the "
    "final test (recommended)",
    "column": "A column of my file says train / validation / test",
    "file": "I have a separate file of test tickets",
}


def split(table, draft: dict) -> dict:
    """Random hold-out (default), a split column of the file, or a separate test file."""
    with st.expander("Test tickets (optional)", expanded=draft.get("split") != "random"):
        mode = st.radio(
            "How to pick the tickets for the final test",
            list(SPLIT_MODES),
            format_func=SPLIT_MODES.get,
            key="data_split_mode",
        )
        result = {**draft, "split": mode}
        if mode == "column":
            used = {*draft["text_columns"], draft["label_column"]}
            options = [str(c) for c in table.columns if c not in used]
            if st.session_state.get("data_split_column") not in options:
                st.session_state["data_split_column"] = options[0] if options else None
            result["split_column"] = st.selectbox(
                "Split column (values: train, validation, test)", options, key="data_split_column"
            )
        if mode == "file":
            result["test_upload_id"] = test_file(draft.get("test_upload_id"))
    return result


def test_file(current: str | None) -> str | None:
    uploaded = st.file_uploader(
        "Test tickets (same columns as the main file)", type=FILE_TYPES, key="data_test_upload"
    )
    new_id, error = process_upload(uploaded, "_data_test_file", save_checked_upload)
    if error:
        st.error(f"The test file cannot be used: {md(error)}", icon=":material/error:")
        return None
    current = new_id or current
    if current and get_workspace().has_upload(current):
        st.caption(f"Test file: **{md(upload_filename(current))}**")
        return current
    return None
