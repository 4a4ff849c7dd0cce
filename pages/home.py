"""Home: what TicketTune does, the four steps, the sample data, and the latest runs."""

import pandas as pd
import streamlit as st

from core.runs import state_label
from ui.auth import local_only_note
from ui.data_flow import SAMPLE_PATH, use_sample
from ui.state import get_store
from ui.widgets import fmt_pct, fmt_when, run_page, show_table

STEPS = [
    (
        "1 Data",
        "pages/data.py",
        "Upload a spreadsheet of labelled tickets and choose which "
        "column is the text and which the label. Tidy the labels and check the data report.",
    ),
    (
        "2 Train",
        "pages/train.py",
        "Pick a model and a method and press Start. Training runs in "
        "the background; you can watch it or come back later.",
    ),
    (
        "3 Review",
        "pages/review.py",
        "See how often the model is right, which labels it mixes "
        "up, and how many tickets it can handle on its own.",
    ),
    (
        "4 Use the model",
        "pages/predict.py",
        "Label a single ticket or a whole file of new tickets, and download the model.",
    ),
]


def steps() -> None:
    for column, (title, page, text) in zip(st.columns(4), STEPS, strict=True):
        with column.container(border=True, height="stretch"):
            st.page_link(page, label=f"**{title}**")
            st.write(text)


def recent_runs() -> None:
    summaries = get_store().list()[:5]
    if not summaries:
        st.caption("No runs yet.")
        return
    table = pd.DataFrame(
        {
            "run": [s.name for s in summaries],
            "started": [fmt_when(s.created_at) for s in summaries],
            "state": [state_label(s.state) for s in summaries],
            "label column": [s.label_column or "" for s in summaries],
            "macro-F1": [fmt_pct(s.macro_f1) for s in summaries],
        }
    )
    show_table(table, key="home_runs")
    st.page_link("pages/runs.py", label="All runs", icon=":material/history:")


def main() -> None:
    st.title("TicketTune")
    st.markdown(
        "TicketTune turns a spreadsheet of support tickets that you have already labelled into a "
        "model that labels new tickets for you. It fine-tunes a language model on your tickets "
        "right here, with no code and no ML team. You then see how good it is, decide how sure "
        "it must be before it acts alone, and use it on new tickets."
    )
    local_only_note()
    steps()
    st.write("")
    if st.button(
        "Try with sample data",
        key="home_sample",
        type="primary",
        icon=":material/science:",
        disabled=not SAMPLE_PATH.is_file(),
    ):
        use_sample()
        st.switch_page("pages/data.py")
    st.subheader("Recent runs")
    recent_runs()


run_page(main)
