"""Use: label the tickets the model was unsure about and add them to the training data.

The scored file was saved into the workspace as an upload of its own when it was uploaded;
each labelled ticket becomes a NewTicket decision (naming that upload and its row) beside the
run's training file. Scoring keeps the first unsure tickets (core.scored_files), so this view
never needs the whole scored file.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.decisions import NewTicket
from core.errors import TicketTuneError
from core.label_loop import new_tickets
from core.runs import Run
from core.schema import guess_id_columns, sheet_row
from core.scoring import NEEDS_REVIEW
from ui.label_loop import add, labels_now, loop_for
from ui.safe_text import md

SHOWN = 20
_ERROR = "_unsure_error"


def uploaded_columns(scored: pd.DataFrame) -> list[str]:
    """The scored file's own columns (those before the model's)."""
    end = list(scored.columns).index("predicted_label")
    return [str(c) for c in scored.columns[:end]]


def _top3(ticket: pd.Series) -> str:
    parts = [("predicted_label", "confidence"), ("top2_label", "top2_confidence")]
    parts.append(("top3_label", "top3_confidence"))
    return " · ".join(
        f"{ticket[label]} {float(ticket[conf]):.0%}"
        for label, conf in parts
        if label in ticket and pd.notna(ticket[label])
    )


def label_uncertain(
    run: Run, unsure: pd.DataFrame, upload_id: str, read_columns: list[str], total: int
) -> None:
    """Per unsure ticket: the model's guess preselected, its top 3 beside it, an add box.

    ``unsure``: scored rows below the threshold, indexed by their row in the file (the first
    ones: ``total`` is how many the whole file has).
    """
    if unsure.empty or NEEDS_REVIEW not in unsure:
        return
    st.subheader("Label the tickets the model was unsure about")
    loop = loop_for(run)
    if loop is None:
        return
    labels = labels_now(loop)
    open_ = unsure[~unsure.index.isin(_added_rows(loop, upload_id))]
    listed = f" (the first {len(unsure):,} are listed here)" if len(unsure) < total else ""
    st.caption(
        f"{total:,} tickets are below the threshold{listed}. Pick the right label and tick "
        "“add”: they join the training data of the next run (Review page → Apply and retrain)."
    )
    ids = guess_id_columns(unsure[uploaded_columns(unsure)], exclude=read_columns)
    chosen: dict[int, str] = {}
    for row, ticket in open_.head(SHOWN).iterrows():
        with st.container(border=True, key=f"unsure_{row}"):
            text = " · ".join(str(ticket[c]) for c in read_columns if pd.notna(ticket[c]))
            named = md("".join(f" · {c} {ticket[c]}" for c in ids))
            st.markdown(f"**Row {sheet_row(int(row))}**{named} — {md(text, max_chars=300)}")
            left, mid, right = st.columns([2, 3, 1], vertical_alignment="center")
            guess = ticket["predicted_label"]
            label = left.selectbox(
                "Label",
                labels,
                index=labels.index(guess) if guess in labels else 0,
                key=f"unsure_label_{row}",
                label_visibility="collapsed",
            )
            mid.caption(f"Model's top 3: {_top3(ticket)}")
            if right.checkbox("add", key=f"unsure_add_{row}", help="Add it to the training data"):
                chosen[int(row)] = label
    n = len(chosen)
    st.button(
        f"Add {n} labelled ticket{'s' if n != 1 else ''} to the training data",
        key="unsure_add",
        type="primary",
        disabled=not n,
        on_click=_add,
        args=(loop, unsure, chosen, upload_id, read_columns),
    )
    error = st.session_state.pop(_ERROR, None)
    if error:
        st.error(md(error), icon=":material/error:")


def _add(loop, scored: pd.DataFrame, chosen: dict[int, str], upload_id: str, read_columns) -> None:
    """Button callback (before the rerun), so the ticked boxes can be cleared."""
    try:
        tickets = new_tickets(
            scored,
            chosen,
            read_columns=read_columns,
            text_columns=list(loop.decisions.scheme.text_columns),
            upload=upload_id,
        )
        add(loop, *tickets, message=f"Added {len(tickets)} tickets; apply them on the Review page.")
    except TicketTuneError as exc:
        st.session_state[_ERROR] = f"The tickets were not added: {exc}"
        return
    for row in chosen:
        st.session_state[f"unsure_add_{row}"] = False


def _added_rows(loop, upload_id: str) -> set[int]:
    return {
        int(d.row)
        for d in loop.decisions.decisions
        if isinstance(d, NewTicket) and d.upload == upload_id and d.row is not None
    }
