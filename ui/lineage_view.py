"""Where runs came from, shown in plain words: the Runs page's columns, a run's family, and the
Review page's figures for a retrained run (did it forget?) and a faster copy (how much faster,
how much macro-F1 kept)."""

from __future__ import annotations

import streamlit as st

from core.continual import forgetting
from core.faster_copy import speed_up
from core.lineage import DISTILLED, RETRAINED, Family, family
from core.runs import Run
from ui.safe_text import md
from ui.state import get_store
from ui.widgets import fmt_pct


def current_family() -> Family:
    return family(get_store())


def family_note(tree: Family, run_id: str) -> None:
    """One line under the run picker: what the run came from and what was built on it."""
    parts = []
    origin = tree.origin(run_id)
    if origin is not None:
        verb = "is a" if origin.kind == DISTILLED else "was"
        parts.append(f"This run {verb} {md(tree.came_from(run_id))}.")
    built_on = tree.built_on(run_id)
    if built_on:
        parts.append(f"Built on it: {md(built_on)}.")
    if parts:
        st.caption(" ".join(parts))


def derived_results(run: Run) -> None:
    """For a retrained run or a faster copy, the figures that say what was gained or lost."""
    metrics = run.metrics()
    tree = current_family()
    origin = tree.origin(run.id)
    parent = (
        f"**{md(tree.name(origin.parent_id, origin.recorded_name))}**"
        + ("" if tree.exists(origin.parent_id) else " (since deleted)")
        if origin is not None and origin.kind in (RETRAINED, DISTILLED)
        else "the earlier run"
    )
    figures = forgetting(metrics)
    if figures is not None:
        _forgetting(figures, parent)
    copy = speed_up(metrics)
    if copy is not None:
        _speed(copy, parent)


def _points(value: float | None) -> str:
    if value is None:
        return ""
    return "no change" if abs(value) < 0.05 else f"{value:+.1f} points"


def _delta(value: float | None) -> dict:
    """st.metric's delta arguments: grey and arrowless when there is no real change."""
    if value is None:
        return {"delta": None}
    flat = abs(value) < 0.05
    return {
        "delta": _points(value),
        "delta_color": "off" if flat else "normal",
        "delta_arrow": "off" if flat else "auto",
    }


def _forgetting(figures, parent: str) -> None:
    with st.container(border=True, key="review_forgetting"):
        st.subheader("Did it forget what it knew?")
        before, after = fmt_pct(figures.earlier_before), fmt_pct(figures.earlier_after)
        left, middle, right = st.columns(3)
        left.metric(
            "Earlier test tickets: macro-F1 before → after",
            f"{before} → {after}",
            **_delta(figures.change_points),
            help=f"The {figures.earlier_tickets:,} test tickets of {parent}, scored by that "
            "run's model (before) and by this one (after).",
        )
        middle.metric(
            "New test tickets: macro-F1",
            fmt_pct(figures.new_after),
            help=f"{figures.new_tickets:,} tickets of the new file, held back for the test.",
        )
        right.metric("New labels", f"{len(figures.new_labels)}")
        st.markdown(_forgetting_words(figures, parent))


def _forgetting_words(figures, parent: str) -> str:
    before, after = fmt_pct(figures.earlier_before), fmt_pct(figures.earlier_after)
    change = figures.change_points
    if change is None:
        earlier = f"macro-F1 is {after} now (the score before is not known)."
    elif abs(change) < 0.05:
        earlier = f"macro-F1 was {before} before and is still {after}"
    else:
        earlier = f"macro-F1 was {before} before and is {after} now ({_points(change)})"
    if figures.kept_what_it_knew is True:
        earlier += ": the model kept what it knew."
    elif figures.kept_what_it_knew is False:
        earlier += (
            ": it forgot part of what it knew. Retrain again with more earlier tickets mixed in."
        )
    lines = [
        f"Retrained from {parent} with new tickets. On the {figures.earlier_tickets:,} test "
        f"tickets of the earlier run, {earlier}",
        f"On the {figures.new_tickets:,} test tickets held back from the new file it scores "
        f"{fmt_pct(figures.new_after)}.",
    ]
    if figures.new_labels:
        labels = ", ".join(f"**{md(label)}**" for label in figures.new_labels)
        lines.append(f"New labels, which the earlier model did not know: {labels}.")
    else:
        lines.append("The new tickets brought no new labels.")
    return "\n\n".join(lines)


def _speed(copy, parent: str) -> None:
    with st.container(border=True, key="review_speed"):
        st.subheader("How much faster is this copy?")
        left, middle, right = st.columns(3)
        left.metric(
            "Scoring speed",
            f"{copy.speedup:.1f}× as fast" if copy.speedup else "–",
            help="Tickets labelled per second by the original and by this copy, timed one "
            "after the other on the same tickets on this computer.",
        )
        middle.metric(
            "Macro-F1 kept",
            fmt_pct(copy.kept),
            **_delta(copy.change_points),
            help="This copy's macro-F1 as a share of the original's, on the same test tickets.",
        )
        right.metric(
            "Macro-F1: original → copy",
            f"{fmt_pct(copy.teacher_macro_f1)} → {fmt_pct(copy.student_macro_f1)}",
        )
        st.markdown(_speed_words(copy, parent))


def _speed_words(copy, parent: str) -> str:
    layers = (
        f"keeps {copy.student_layers} of its {copy.teacher_layers} layers"
        if copy.teacher_layers
        else f"keeps {copy.student_layers} layers"
    )
    extra = (
        f" Besides its tickets it also learned from {copy.unlabelled_tickets:,} extra tickets "
        "without labels."
        if copy.unlabelled_tickets
        else ""
    )
    rates = (
        f"{copy.student_speed:,.0f} tickets a second against {copy.teacher_speed:,.0f} for the "
        "original, on this computer"
        if copy.student_speed and copy.teacher_speed
        else "the speed was not measured"
    )
    if copy.noticeably_faster:
        speed = f"It labels tickets {copy.speedup:.1f} times as fast as the original: {rates}."
    else:
        speed = f"It is not noticeably faster than the original: {rates}."
    kept = (
        f"It keeps {fmt_pct(copy.kept)} of the original's macro-F1: "
        f"{fmt_pct(copy.student_macro_f1)} against {fmt_pct(copy.teacher_macro_f1)} on the same "
        "test tickets."
    )
    return "\n\n".join([f"A faster copy of {parent}: it {layers}.{extra}", speed, kept])
