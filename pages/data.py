"""1 Data: upload tickets, choose the text and label columns, tidy the labels, read the report."""

import streamlit as st

from core.schema import RARE_POLICIES
from core.tables import FILE_TYPES
from ui.data_flow import (
    SAMPLE_PATH,
    SCHEME_DEFAULTS,
    get_draft,
    prepare,
    process_upload,
    start_upload,
    store_draft,
    switch_label_column,
    use_sample,
)
from ui.data_widgets import label_editor, seed_widgets, show_report
from ui.encoding_choice import table_with_encoding_choice
from ui.label_loop import saved_changes_note
from ui.safe_text import md
from ui.split_choice import split
from ui.state import current_upload_id, upload_filename
from ui.widgets import run_page, show_table


def source() -> str | None:
    """Upload or sample; returns the current upload id."""
    uploaded = st.file_uploader(
        "Upload your labelled tickets (CSV, TSV, Excel .xlsx or JSON Lines)",
        type=FILE_TYPES,
        key="data_upload",
    )
    _, error = process_upload(uploaded, "_data_file", start_upload)
    if error:
        st.error(md(error), icon=":material/error:")
    sample = st.button(
        "Use the sample tickets",
        key="data_use_sample",
        disabled=not SAMPLE_PATH.is_file(),
        icon=":material/science:",
    )
    if sample:
        use_sample()
    return current_upload_id()


def columns(table, draft: dict) -> dict:
    names = [str(c) for c in table.columns]
    left, right = st.columns(2)
    text = left.multiselect(
        "Text columns (what the model reads, in this order)",
        names,
        key="data_text_columns",
        help="Pick every column that describes the ticket: subject, body…",
    )
    label = right.selectbox(
        "Label column (what the model learns to predict)", names, key="data_label_column"
    )
    right.caption(
        "Each label column is a different **label scheme** (e.g. category, team, "
        "priority). A model learns one scheme; train one model per scheme you need."
    )
    return {**switch_label_column(draft, label), "text_columns": text}


def labels(upload_id: str, table, draft: dict) -> dict:
    st.subheader("Labels")
    st.caption(
        "Rename a label by typing a new name; give two labels the same new name to merge "
        "them. Tick **drop** to leave a label's tickets out."
    )
    rename, drop = label_editor(upload_id, table, draft)
    left, right = st.columns(2)
    min_count = left.number_input(
        "Minimum tickets per label", min_value=1, max_value=10_000, step=1, key="data_min_count"
    )
    policy = right.radio(
        "Labels with fewer tickets than that",
        list(RARE_POLICIES),
        key="data_rare_policy",
        horizontal=True,
        format_func={"drop": "leave them out", "other": "merge them into one label"}.get,
    )
    other = draft.get("other_label") or SCHEME_DEFAULTS.other_label
    if policy == "other":
        other = right.text_input("Name of the merged label", key="data_other_label")
    return {
        **draft,
        "rename": rename,
        "drop": drop,
        "min_count": int(min_count),
        "rare_policy": policy,
        "other_label": other or SCHEME_DEFAULTS.other_label,
    }


def main() -> None:
    st.title("1 · Your tickets")
    upload_id = source()
    if upload_id is None:
        st.info(
            "Upload a spreadsheet with one ticket per row: a column of text and a column "
            "with the label you want predicted. Or try the sample tickets."
        )
        return
    table = table_with_encoding_choice(upload_id)
    st.caption(
        f"**{md(upload_filename(upload_id))}**: {len(table):,} rows, {len(table.columns)} columns"
    )
    saved_changes_note(upload_id)
    with st.expander("Preview", expanded=False):
        show_table(table.head(50), key="data_preview")
    draft = get_draft(upload_id, table)
    seed_widgets(upload_id, draft)
    draft = columns(table, draft)
    draft = labels(upload_id, table, draft)
    draft = split(table, draft)
    store_draft(upload_id, draft)
    st.divider()
    st.header("What TicketTune found")
    show_report(prepare(upload_id, draft))
    st.page_link("pages/train.py", label="Next: 2 Train", icon=":material/arrow_forward:")


run_page(main)
