"""Review: "Suspicious labels" (the label audit, run in the background and cached beside the
upload) with keep / change / exclude per ticket, and the near-duplicate tickets."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from core.audit import AuditConfig
from core.audit_jobs import AuditRunner, audit_key, check_auditable, load_cached
from core.config import TrainConfig
from core.decisions import Correction, Exclusion
from core.errors import TicketTuneError
from core.estimate import estimate_training_seconds
from core.label_loop import run_config, run_split
from core.schema import PreparedData
from ui.label_loop import Loop, add, decided_rows, labels_now, show_tickets
from ui.safe_text import md
from ui.widgets import csv_download, fmt_duration

PAGE_SIZE = 10
KEEP, CHANGE, EXCLUDE = "keep", "change the label", "leave it out"


@st.cache_resource(show_spinner=False)
def get_audit_runner() -> AuditRunner:
    """One runner per server process: its threads outlive reruns and refreshes."""
    return AuditRunner()


def _prepared(loop: Loop) -> PreparedData | None:
    try:
        prepared = loop.decisions.scheme.apply(loop.table)
        check_auditable(prepared)
    except TicketTuneError as exc:
        st.warning(
            f"The labels of this file cannot be checked: {md(exc)}", icon=":material/warning:"
        )
        return None
    return prepared


def suspicious_labels(loop: Loop) -> None:
    st.subheader("Suspicious labels")
    st.caption(
        "Every ticket is checked by models that never saw it; tickets whose label in the file "
        "disagrees most with them come first. Often the file's label is the one that is wrong."
    )
    prepared = _prepared(loop)
    if prepared is None:
        return
    key = audit_key(prepared, loop.run.id)
    cached = load_cached(loop.folder, key)
    if cached is None:
        _run_or_watch(loop, prepared, key)
        return
    review_tickets(loop, cached.result.tickets, prepared.id_columns)
    near_duplicates(cached.near_duplicates, prepared.id_columns)


def _run_or_watch(loop: Loop, prepared: PreparedData, key: str) -> None:
    runner = get_audit_runner()
    snapshot = runner.snapshot(key)
    if snapshot is None or snapshot.state == "failed":
        if snapshot is not None:
            st.error(md(snapshot.error), icon=":material/error:")
        seconds = estimate_training_seconds(len(prepared.frame), TrainConfig(method="quick"))
        if st.button(
            f"Check every label (about {fmt_duration(seconds)})",
            key="audit_start",
            icon=":material/search:",
            help="Takes about as long as training the quick model. You can leave the page.",
        ):
            runner.forget(key)
            split = run_split(loop.run)
            config = AuditConfig(model=run_config(loop.run).model)  # the run's own encoder
            runner.start(key, loop.folder, prepared, split=split, config=config, estimate_s=seconds)
            st.rerun()
        return
    _watch(key)


@st.fragment(run_every=1.0)
def _watch(key: str) -> None:
    snapshot = get_audit_runner().snapshot(key)
    if snapshot is None or snapshot.finished:
        st.rerun()  # the whole page: the result is on disk now (or the error is shown)
        return
    left = max(snapshot.estimate_s - snapshot.elapsed_s, 0)
    when = f"about {fmt_duration(left)} left" if left else "taking longer than estimated"
    st.progress(
        snapshot.fraction,
        text=f"Checking every label… {snapshot.message} ({fmt_duration(snapshot.elapsed_s)} "
        f"so far, {when})",
    )


def review_tickets(loop: Loop, tickets: pd.DataFrame, ids: tuple[str, ...]) -> None:
    """The most suspicious tickets, a page at a time, each with keep / change / leave out."""
    decided = decided_rows(loop)
    open_ = tickets[~tickets["row"].isin(decided)].reset_index(drop=True)
    st.markdown(
        f"**{len(tickets):,} tickets checked**, {int(tickets['flagged'].sum())} clearly "
        f"suspicious; {len(decided)} already decided."
    )
    all_tickets(tickets, ids, loop)
    labels = labels_now(loop)
    page = open_.head(PAGE_SIZE)
    choices = {}
    for _, ticket in page.iterrows():
        choices[int(ticket["row"])] = _ticket_row(ticket, ids, labels)
    decisions = [d for d in choices.values() if d is not None]
    if st.button(
        f"Record {len(decisions)} decision{'s' if len(decisions) != 1 else ''}",
        key="audit_record",
        type="primary",
        disabled=not decisions,
        help="Tickets left on “keep” are not listed again once you record the others.",
    ):
        add(loop, *decisions, message=f"Recorded {len(decisions)} label decisions.")
        st.rerun()


AUDIT_COLUMNS = ["text", "given_label", "suggested_label", "score"]


def all_tickets(tickets: pd.DataFrame, ids: tuple[str, ...], loop: Loop) -> None:
    """Every checked ticket, most suspicious first, to browse or download."""
    shown = tickets[[c for c in ("sheet_row", *ids) if c in tickets] + AUDIT_COLUMNS]
    with st.expander("All checked tickets, most suspicious first"):
        show_tickets(
            shown.rename(columns={"given_label": "label in file", "suggested_label": "suggested"}),
            key="audit_all",
        )
        st.caption("Score: how well the label in the file fits (0 = surely wrong, 1 = fits).")
        csv_download(
            "Download the checked tickets (CSV)",
            shown,
            f"{Path(loop.filename).stem}-label-check.csv",
            key="audit_download",
        )
    st.markdown("**Decide on the most suspicious ones** (decided tickets leave the list):")


def _ticket_row(ticket: pd.Series, ids: tuple[str, ...], labels: list[str]):
    row = int(ticket["row"])
    named = md(", ".join(f"{c} {ticket[c]}" for c in ids if c in ticket))
    with st.container(border=True, key=f"audit_ticket_{row}"):
        st.markdown(
            f"**Row {int(ticket['sheet_row'])}**{' · ' + named if named else ''} — label in the "
            f"file **{md(ticket['given_label'])}**, the check suggests "
            f"**{md(ticket['suggested_label'])}** "
            f"(how likely: {ticket['suggested_probability']:.0%}, against "
            f"{ticket['given_probability']:.0%} for the file's label)"
        )
        st.caption(md(ticket["text"], max_chars=300))
        left, right = st.columns([2, 1])
        action = left.radio(
            "Decision",
            (KEEP, CHANGE, EXCLUDE),
            key=f"audit_action_{row}",
            horizontal=True,
            label_visibility="collapsed",
        )
        options = labels or [ticket["suggested_label"]]
        suggested = ticket["suggested_label"]
        new = right.selectbox(
            "New label",
            options,
            index=options.index(suggested) if suggested in options else 0,
            key=f"audit_label_{row}",
            disabled=action != CHANGE,
            label_visibility="collapsed",
        )
    if action == CHANGE:
        return Correction(row=row, new_label=new, old_label=str(ticket["given_label"]))
    if action == EXCLUDE:
        return Exclusion(row=row, reason="left out after the label check")
    return None


def near_duplicates(report, ids: tuple[str, ...]) -> None:
    st.subheader("Near-duplicate tickets")
    if report is None:
        st.caption("This run kept no record of its split, so near-duplicates were not checked.")
        return
    st.caption(
        f"Tickets that say (almost) the same thing (similarity ≥ {report.threshold:.2f}). "
        "A test ticket with a near copy in training makes the test score look better than it "
        "is; near copies with different labels teach the model a contradiction."
    )
    for title, frame, key in (
        ("Test tickets with a near copy in training", report.leakage, "audit_leakage"),
        (
            "Training tickets with a near copy under another label",
            report.conflicts,
            "audit_conflicts",
        ),
    ):
        st.markdown(f"**{title}: {len(frame)}**")
        if len(frame):
            columns = [
                f"{c}_{side}"
                for side in ("a", "b")
                for c in ("sheet_row", *ids, "text", "label")
                if f"{c}_{side}" in frame
            ]
            show_tickets(
                frame[[*columns, "similarity"]].rename(columns=_side_names),
                key=key,
            )


def _side_names(column: str) -> str:
    if column == "similarity":
        return column
    name, side = column.rsplit("_", 1)
    name = {"sheet_row": "row in file"}.get(name, name)
    return f"{name} ({'1st' if side == 'a' else '2nd'})"
