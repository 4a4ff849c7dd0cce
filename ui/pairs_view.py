"""Review: "Labels the model mixes up" — confused pairs, their tickets, and what merging or
dropping labels would do to the scores (core.confusion), recorded as decisions."""

from __future__ import annotations

import streamlit as st

from core.confusion import ConfusedPair, confused_pairs, pairs_table, project
from core.decisions import Drop, LabelChange, Merge
from core.errors import TicketTuneError
from core.evaluation import Evaluation
from ui.label_loop import Loop, add, show_tickets, ticket_columns
from ui.safe_text import md
from ui.widgets import as_percent, fmt_pct, percent_column, show_table

PAIR_KEY = "pairs_choice"
TOP_PAIRS = 30


def confused_pairs_view(evaluation: Evaluation, loop: Loop | None) -> None:
    st.subheader("Labels the model mixes up")
    pairs = confused_pairs(evaluation, top=TOP_PAIRS)
    if not pairs:
        st.caption("The model mixed up no labels on the test tickets.")
        return
    st.caption(
        "Pairs of labels the model confuses, both directions counted. A pair that is mixed up "
        "often may really be one label — or the two may be labelled inconsistently in the file."
    )
    table = pairs_table(pairs).rename(
        columns={"label_a": "label A", "label_b": "label B", "count": "mix-ups"}
    )
    show_table(
        as_percent(table[["label A", "label B", "mix-ups", "share"]], ["share"]),
        key="pairs_table",
        column_config={"share": percent_column("share of their tickets")},
    )
    names = [f"{p.label_a} ↔ {p.label_b} ({p.count})" for p in pairs]
    index = st.selectbox(
        "Look at a pair", range(len(pairs)), format_func=names.__getitem__, key=PAIR_KEY
    )
    pair = pairs[index]
    pair_tickets(pair, evaluation)
    left, right = st.columns(2)
    with left.container(border=True, key="pairs_merge"):
        merge_preview(pair, evaluation, loop)
    with right.container(border=True, key="pairs_drop"):
        drop_preview(pair, evaluation, loop)


def pair_tickets(pair: ConfusedPair, evaluation: Evaluation) -> None:
    st.markdown(
        f"**{pair.count} tickets** mixed up: {pair.a_as_b} *{md(pair.label_a)}* taken for "
        f"*{md(pair.label_b)}*, {pair.b_as_a} the other way."
    )
    shown = ticket_columns(
        pair.tickets, evaluation.id_columns, ["text", "label", "predicted", "confidence", "set"]
    )
    show_tickets(
        as_percent(shown, ["confidence"]).rename(columns={"label": "label in file"}),
        key="pairs_tickets",
    )
    st.caption("“confidence” is how sure the model was of its (wrong) guess.")


def _what_if(evaluation: Evaluation, change: LabelChange) -> bool:
    """Accuracy and macro-F1 now → after the change; False when it cannot be projected."""
    try:
        projection = project(evaluation, [change])
    except TicketTuneError as exc:
        st.error(md(exc), icon=":material/error:")
        return False
    cols = st.columns(2)
    for column, metric, title in (
        (cols[0], "accuracy", "Accuracy"),
        (cols[1], "macro_f1", "Macro-F1"),
    ):
        column.metric(
            f"{title} after (now {fmt_pct(projection.before[metric])})",
            fmt_pct(projection.after[metric]),
            delta=f"{projection.delta(metric) * 100:+.1f} pts",
        )
    st.caption(
        f"Estimated from this run's test predictions, without retraining: "
        f"{len(projection.labels_before)} → {len(projection.labels_after)} labels"
        + (
            f", {projection.tickets_removed} test tickets left out."
            if projection.tickets_removed
            else "."
        )
    )
    return True


def _already(loop: Loop | None, change: LabelChange) -> bool:
    return loop is not None and any(d == change for d in _plain(loop.decisions.label_changes()))


def _plain(changes):
    from dataclasses import replace

    return [replace(c, by="", at="") for c in changes]


def merge_preview(pair: ConfusedPair, evaluation: Evaluation, loop: Loop | None) -> None:
    st.markdown(f"**What if we merge {md(pair.label_a)} and {md(pair.label_b)}?**")
    name = st.text_input(
        "Name of the merged label",
        value=pair.label_a,
        key=f"pairs_into_{pair.label_a}_{pair.label_b}",
    ).strip()
    if not name:
        st.warning("Give the merged label a name.")
        return
    change = Merge((pair.label_a, pair.label_b), name)
    if not _what_if(evaluation, change) or loop is None:
        return
    if _already(loop, change):
        st.caption("This merge is already in your list of changes.")
    elif st.button("Merge these labels", key="pairs_merge_go", icon=":material/merge:"):
        add(loop, change, message=f"Recorded: merge {pair.label_a} and {pair.label_b} into {name}.")
        st.rerun()


def drop_preview(pair: ConfusedPair, evaluation: Evaluation, loop: Loop | None) -> None:
    label = st.selectbox(
        "What if we drop a label?",
        evaluation.labels,
        index=evaluation.labels.index(pair.label_b) if pair.label_b in evaluation.labels else 0,
        key=f"pairs_drop_label_{pair.label_a}_{pair.label_b}",
    )
    change = Drop(label)
    if not _what_if(evaluation, change) or loop is None:
        return
    st.caption(f"Tickets labelled *{md(label)}* would be left out of training and testing.")
    if _already(loop, change):
        st.caption("Dropping this label is already in your list of changes.")
    elif st.button("Drop this label", key="pairs_drop_go", icon=":material/delete:"):
        add(loop, change, message=f"Recorded: drop the label {label}.")
        st.rerun()
