"""The label decisions of the reviewed run's upload: where they live, the pending-changes panel
with undo, and "Apply N changes and retrain" (a new run on the corrected table).

Decisions are stored on disk beside the upload (core.decisions.DecisionStore), never only in
session state, so a refresh or another tab sees the same list.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import streamlit as st

from core import label_loop as loop_core
from core.decisions import (
    CorrectedData,
    Correction,
    Decision,
    DecisionStore,
    Drop,
    Exclusion,
    LabelDecisions,
    Merge,
    NewTicket,
    apply_decisions,
    downloadable,
)
from core.errors import TicketTuneError
from core.runs import Run
from core.schema import sheet_row
from ui.auth import owner_id
from ui.safe_text import md
from ui.state import get_jobs, get_workspace, load_table, remember_run, upload_filename
from ui.widgets import csv_download, show_table


@dataclass(frozen=True)
class Loop:
    """A reviewed run, the upload it was trained on, and the decisions saved for that upload."""

    run: Run
    upload_id: str
    folder: Path
    decisions: LabelDecisions

    @property
    def table(self) -> pd.DataFrame:
        return load_table(self.upload_id)

    @property
    def filename(self) -> str:
        return upload_filename(self.upload_id)


def loop_for(run: Run) -> Loop | None:
    """The loop of ``run``, or None (with a note) when its upload is not on the server."""
    upload_id = loop_core.run_upload(run)
    workspace = get_workspace()
    if not upload_id or not workspace.has_upload(upload_id):
        st.info(
            "This run does not say which uploaded file it was trained on (or the file is no "
            "longer on the server), so changes to its labels cannot be recorded. Train a new run "
            "from the Data page to fix labels here.",
            icon=":material/info:",
        )
        return None
    folder = workspace.folder(upload_id)
    decisions = loop_core.current_decisions(folder, loop_core.run_scheme(run), upload_id)
    return Loop(run, upload_id, folder, decisions)


def add(loop: Loop, *decisions: Decision, message: str) -> Loop:
    """Record decisions (a new saved version) and say so."""
    saved = loop_core.record(loop.folder, loop.decisions, *decisions)
    st.toast(message, icon=":material/check:")
    return Loop(loop.run, loop.upload_id, loop.folder, saved)


def corrected(loop: Loop) -> CorrectedData | str:
    """The upload with the decisions applied, or the reason it cannot be."""
    try:
        return apply_decisions(loop.table, loop.decisions, upload_name=loop.filename)
    except TicketTuneError as exc:
        return str(exc)


def labels_now(loop: Loop) -> list[str]:
    """The labels after the decisions so far (what a correction or a new ticket may use)."""
    result = corrected(loop)
    return result.labels if isinstance(result, CorrectedData) else []


def describe(decision: Decision, table: pd.DataFrame, ids: tuple[str, ...]) -> str:
    """One line per decision, in the analyst's words, naming the ticket by ids and row."""
    if isinstance(decision, Merge):
        return f"Merge labels {' + '.join(decision.labels)} into **{decision.into}**"
    if isinstance(decision, Drop):
        return f"Drop label **{decision.label}** (its tickets are left out)"
    if isinstance(decision, NewTicket):
        text = " · ".join(decision.texts.values())[:70]
        source = _source(decision)
        return f"Add a new ticket as **{decision.label}**{source}: “{text}”"
    where = _ticket_name(decision.row, table, ids)
    if isinstance(decision, Correction):
        old = f"{decision.old_label} → " if decision.old_label else ""
        return f"{where}: change the label {old}**{decision.new_label}**"
    if isinstance(decision, Exclusion):
        return f"{where}: leave this ticket out" + (f" ({decision.reason})" if decision else "")
    return str(decision)


def _source(ticket: NewTicket) -> str:
    try:
        name = upload_filename(ticket.upload) if ticket.upload else ""
    except TicketTuneError:
        name = ""
    where = f" row {sheet_row(ticket.row)}" if ticket.row is not None else ""
    return f" (from {name}{where})" if name else ""


def _ticket_name(row: int, table: pd.DataFrame, ids: tuple[str, ...]) -> str:
    named = [f"{c} {table.at[row, c]}" for c in ids if c in table and row < len(table)]
    return f"Ticket in row {sheet_row(row)}" + (f" ({', '.join(named)})" if named else "")


def pending_panel(loop: Loop, ids: tuple[str, ...]) -> Loop:
    """The decisions so far, each with an undo button."""
    decisions = loop.decisions.decisions
    st.subheader(f"Changes to the labels ({len(decisions)})")
    if not decisions:
        st.caption(
            "No changes yet. Merge or drop labels, correct suspicious labels or label uncertain "
            "tickets (Use the model page); they are listed here."
        )
        return loop
    st.caption(
        f"Saved with the file *{md(loop.filename)}* (which is never modified). Undo any of them "
        "before you apply them."
    )
    table = loop.table
    with st.container(key="loop_pending"):
        for index, decision in enumerate(decisions):
            text, button = st.columns([8, 1], vertical_alignment="center")
            text.markdown(f"{index + 1}. {describe(decision, table, ids)}")
            if button.button("Undo", key=f"loop_undo_{loop.decisions.version}_{index}"):
                loop_core.undo(loop.folder, loop.decisions, index)
                st.rerun()
    return loop


def apply_and_retrain(loop: Loop) -> None:
    """One action: the decisions become a label-scheme version and a new run starts."""
    n = len(loop.decisions.decisions)
    if not n:
        return
    try:
        config = loop_core.run_config(loop.run)
        request, result = loop_core.retrain_request(
            loop.table, loop.decisions, config, source_name=loop.filename
        )
    except TicketTuneError as exc:
        st.error(
            f"These changes cannot be applied as they are: {md(exc)} Undo or fix the change it "
            "names; nothing has been lost.",
            icon=":material/error:",
        )
        return
    st.markdown(
        f"Applying gives **{len(result.table):,} tickets** with **{len(result.labels)} labels** "
        f"(version {loop.decisions.version} of the label changes)."
    )
    csv_download(
        "Download the corrected table (CSV)",
        downloadable(result),
        f"{Path(loop.filename).stem}-corrected-v{loop.decisions.version}.csv",
        key="loop_download",
        help="Your file with the changes applied; the last two columns say where each row "
        "came from. The uploaded file itself is never changed.",
    )
    label = f"Apply {n} change{'s' if n != 1 else ''} and retrain"
    if st.button(label, key="loop_apply", type="primary", icon=":material/model_training:"):
        fields = loop_core.retrain_fields(request, loop.upload_id, loop.run, loop.decisions.version)
        name = f"{loop.run.summary().name} · changes v{loop.decisions.version}"
        run_id = get_jobs().submit(request, name=name, status_fields=fields, owner=owner_id())
        remember_run(run_id)
        st.session_state["_loop_started"] = run_id
    started = st.session_state.get("_loop_started")
    if started:
        st.success(
            "Training started with the same method and settings. When it is done, pick it above "
            "to compare it with this run.",
            icon=":material/model_training:",
        )
        st.page_link("pages/train.py", label="Watch it on 2 Train", icon=":material/timer:")


def decided_rows(loop: Loop) -> dict[int, Decision]:
    """Upload rows that already have a correction or exclusion (the latest one wins)."""
    return {d.row: d for d in loop.decisions.decisions if isinstance(d, Correction | Exclusion)}


def ticket_columns(frame: pd.DataFrame, ids: tuple[str, ...], rest: list[str]) -> pd.DataFrame:
    """The spreadsheet row and the file's ids first, then ``rest``."""
    first = [c for c in ("sheet_row", *ids) if c in frame]
    return frame[[*first, *[c for c in rest if c in frame and c not in first]]]


def show_tickets(frame: pd.DataFrame, key: str, **kwargs) -> None:
    show_table(
        frame,
        key=key,
        column_config={
            "sheet_row": st.column_config.NumberColumn("row in file", format="%d"),
            "confidence": st.column_config.NumberColumn("how sure", format="%.0f%%"),
        },
        **kwargs,
    )


def saved_changes_note(upload_id: str) -> None:
    """On the Data page: label changes saved for this file wait on the Review page."""
    saved = DecisionStore(get_workspace().folder(upload_id)).load()
    if saved is None or not saved.decisions:
        return
    n = len(saved.decisions)
    st.info(
        f"{n} change{'s' if n != 1 else ''} to the labels of this file "
        f"{'are' if n != 1 else 'is'} saved (from reviewing a model). The file itself is "
        "unchanged; apply them with “Apply and retrain” on the Review page.",
        icon=":material/edit_note:",
    )
