"""Review: two runs side by side — did the label changes and the retraining help?"""

from __future__ import annotations

import streamlit as st

from core.compare import compare_runs
from core.label_loop import run_parent
from core.runs import Run
from ui.review_parts import load_evaluation
from ui.safe_text import md
from ui.state import get_run, get_store
from ui.widgets import as_percent, fmt_pct, percent_column, run_label, show_table

METRIC_NAMES = {"accuracy": "Accuracy", "macro_f1": "Macro-F1", "weighted_f1": "Weighted F1"}


def compare_view(run: Run) -> None:
    others = [s for s in get_store().list() if s.state == "succeeded" and s.run_id != run.id]
    if not others:
        return
    st.subheader("Compare with another run")
    parent = run_parent(run)
    ids = [s.run_id for s in others]
    by_id = {s.run_id: s for s in others}
    default = ids.index(parent) if parent in ids else 0
    if st.session_state.get("_compare_for") != run.id:
        st.session_state["compare_with"] = ids[default]
        st.session_state["_compare_for"] = run.id
    chosen = st.selectbox(
        "Compare this run with",
        ids,
        format_func=lambda i: (
            run_label(by_id[i]) + (" (the run it came from)" if i == parent else "")
        ),
        key="compare_with",
    )
    before_run = get_run(chosen)
    if before_run is None:
        return
    before = load_evaluation(str(before_run.path), by_id[chosen].finished_at)
    after = load_evaluation(str(run.path), run.summary().finished_at)
    result = compare_runs(before, after)
    st.caption(
        f"Before: **{md(by_id[chosen].name)}** · After: **{md(run.summary().name)}** (this run). "
        "When label changes moved tickets in or out, the two runs were tested on somewhat "
        "different tickets; the list of changed predictions covers the tickets both have."
    )
    with st.container(key="compare_overall"):
        cols = st.columns(len(result.overall))
        for column, row in zip(cols, result.overall.itertuples(), strict=True):
            column.metric(
                METRIC_NAMES.get(row.metric, row.metric),
                f"{fmt_pct(row.before)} → {fmt_pct(row.after)}",
                delta=f"{row.delta * 100:+.1f} pts",
            )
    st.markdown("**Label by label** (F1; labels that exist in one run only have no change)")
    show_table(
        as_percent(result.per_label, ["f1_before", "f1_after", "f1_delta"]),
        key="compare_per_label",
        column_config={
            "f1_before": percent_column("F1 before"),
            "f1_after": percent_column("F1 after"),
            "f1_delta": st.column_config.NumberColumn("change", format="%+.1f pts"),
            "support_before": st.column_config.NumberColumn("test tickets before"),
            "support_after": st.column_config.NumberColumn("test tickets after"),
        },
    )
    matched = "the file's ids" if result.matched_on != "text" else "their text"
    st.markdown(
        f"**{len(result.changed)} of {result.n_common} test tickets in both runs changed "
        f"prediction** (matched by {matched})"
    )
    if len(result.changed):
        show_table(
            result.changed,
            key="compare_changed",
            column_config={"sheet_row": st.column_config.NumberColumn("row in file", format="%d")},
        )
