"""Runs: every training run with its state, scores and family; rename, delete, build on it."""

import pandas as pd
import streamlit as st

from core.runs import ACTIVE_STATES, state_label
from ui.job_view import stopped_early_panel
from ui.lineage_view import current_family, family_note
from ui.safe_text import md
from ui.state import current_run_id, forget_predictor, get_run, get_store, remember_run
from ui.toolbox import build_on
from ui.widgets import fmt_pct, fmt_when, run_label, run_page, show_table


def runs_table(summaries, tree) -> None:
    table = pd.DataFrame(
        {
            "name": [s.name for s in summaries],
            "came from": [tree.came_from(s.run_id) for s in summaries],
            "built on it": [tree.built_on(s.run_id) for s in summaries],
            "state": [state_label(s.state) for s in summaries],
            "started (UTC)": [fmt_when(s.created_at) for s in summaries],
            "method": [s.method or "" for s in summaries],
            "label column": [s.label_column or "" for s in summaries],
            "accuracy": [fmt_pct(s.accuracy) for s in summaries],
            "macro-F1": [fmt_pct(s.macro_f1) for s in summaries],
            "word-count model macro-F1": [fmt_pct(s.baseline_macro_f1) for s in summaries],
            "why it stopped": [_why(s) for s in summaries],
        }
    )
    show_table(table, key="runs_table")


def _why(summary) -> str:
    """The reason, plus "damaged", "stopped early — best model …" or "can be resumed"."""
    parts = ["damaged"] if summary.damaged else []
    parts += [p for p in (summary.reason, summary.stopped_early_note) if p]
    if summary.resumable:
        parts.append("can be resumed")
    return " — ".join(parts)


def pick(summaries):
    """The run to rename or delete; the panel below always follows the picker.

    After a delete the picked run is gone: the picker is *set* to another run (not just
    forgotten), so the browser shows the run the panel now acts on. Rename box and delete
    confirmation start afresh whenever the picked run changes.
    """
    by_id = {s.run_id: s for s in summaries}
    ids, current = list(by_id), current_run_id()
    if st.session_state.get("runs_pick") not in by_id:
        st.session_state["runs_pick"] = current if current in by_id else ids[0]
    chosen = st.selectbox("Run", ids, key="runs_pick", format_func=lambda i: run_label(by_id[i]))
    if st.session_state.get("_runs_panel_for") != chosen:
        st.session_state["_runs_panel_for"] = chosen
        st.session_state["runs_new_name"] = by_id[chosen].name
        st.session_state["runs_confirm_delete"] = False
    return by_id[chosen]


def rename(summary) -> None:
    new_name = st.text_input("New name", key="runs_new_name")
    if st.button("Rename", key="runs_rename", icon=":material/edit:"):
        get_store().rename(summary.run_id, new_name)
        _done(f"Renamed to “{new_name.strip()}”.")


def delete(summary) -> None:
    if summary.state in ACTIVE_STATES:
        st.caption("This run is still in progress: cancel it on the Train page first.")
        return
    sure = st.checkbox(
        f"Yes, delete “{md(summary.name)}” and its model for good", key="runs_confirm_delete"
    )
    if st.button(
        "Delete", key="runs_delete", type="primary", disabled=not sure, icon=":material/delete:"
    ):
        get_store().delete(summary.run_id)
        forget_predictor()
        if current_run_id() == summary.run_id:
            remember_run(None)
        _done(f"Deleted “{summary.name}”.")


def _done(notice: str) -> None:
    st.session_state["_runs_notice"] = notice
    st.session_state.pop("_runs_panel_for", None)  # show the saved name, untick the box
    st.rerun()


def main() -> None:
    st.title("Runs")
    notice = st.session_state.pop("_runs_notice", None)
    if notice:
        st.success(md(notice), icon=":material/check_circle:")
    summaries = get_store().list()
    if not summaries:
        st.info("No runs yet. Start one on the Train page.")
        return
    tree = current_family()
    runs_table(summaries, tree)
    st.subheader("Work with a run")
    summary = pick(summaries)
    family_note(tree, summary.run_id)
    if summary.resumable or summary.stopped_early_note:
        with st.container(border=True):
            stopped_early_panel(summary, key="runs")
    left, right = st.columns(2)
    with left.container(border=True):
        rename(summary)
    with right.container(border=True):
        delete(summary)
    run = get_run(summary.run_id)
    if summary.state == "succeeded" and run is not None:
        st.subheader("Build on this run")
        build_on(run, summary)


run_page(main)
