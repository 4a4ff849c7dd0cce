"""Build on a finished run: "Retrain with new tickets" and "Make a faster copy of this model".

Both start an ordinary training job through the job manager and then show it on the Train page
(the same progress, cancel and outcome as any training). The engine is core.continual and
core.distill; this module only gathers the analyst's choices.
"""

from __future__ import annotations

import streamlit as st

from core.config import TrainConfig
from core.continual import preview_new_tickets, request_from_run
from core.distill import request_distillation
from core.errors import DataError, TicketTuneError
from core.faster_copy import student_layer_choices, unlabelled_from_table
from core.lineage import origin_fields
from core.runs import Run, RunSummary
from core.tables import FILE_TYPES, read_table
from ui.auth import current_user
from ui.safe_text import md
from ui.state import get_jobs, max_upload_bytes, remember_run

REPLAY_HELP = (
    "Share of the earlier training tickets mixed in so the model does not forget them, counted "
    "against the new tickets. At 0% none are mixed in, and the model may forget labels the new "
    "file has few tickets of; more than 100% mixes in more earlier tickets than new ones."
)


def build_on(run: Run, summary: RunSummary) -> None:
    """The two ways to build on a finished run, as tabs."""
    retrain, faster = st.tabs(["Retrain with new tickets", "Make a faster copy of this model"])
    with retrain:
        _guarded(retrain_panel, run, summary)
    with faster:
        _guarded(faster_copy_panel, run, summary)


def _guarded(panel, run: Run, summary: RunSummary) -> None:
    try:
        panel(run, summary)
    except TicketTuneError as exc:
        st.error(md(exc), icon=":material/error:")


def retrain_panel(run: Run, summary: RunSummary) -> None:
    columns = ", ".join(f"**{md(c)}**" for c in run.text_columns())
    st.markdown(
        "Teach this model new tickets (new labels too) without starting over: it goes on "
        "from what it has learned, and the Review page of the new run shows whether it "
        "forgot anything."
    )
    st.caption(
        f"The file needs the same columns as before: text in {columns}, labels in "
        f"**{md(summary.label_column or '')}**."
    )
    uploaded = st.file_uploader(
        "New labelled tickets (CSV, TSV, Excel .xlsx or JSON Lines)",
        type=FILE_TYPES,
        key="retrain_upload",
    )
    share = st.slider(
        "Earlier tickets mixed in",
        min_value=0,
        max_value=200,
        value=round(TrainConfig.replay_fraction * 100),
        step=10,
        format="%d%%",
        key="retrain_replay",
        help=REPLAY_HELP,
    )
    st.caption(
        "Share of the earlier training tickets mixed in so the model does not forget them: "
        + (
            f"{share} earlier tickets for every 100 new ones."
            if share
            else "none, so the model may forget what the new tickets do not show it."
        )
    )
    table = _read(uploaded, "_retrain_table")
    if table is None:
        return
    preview = preview_new_tickets(run, table)
    known = ", ".join(md(label) for label in preview.known_labels) or "none"
    new = ", ".join(f"**{md(label)}**" for label in preview.new_labels)
    st.markdown(
        f"**{preview.tickets:,} new tickets.** Labels the model knows: {known}."
        + (f" New labels it will learn: {new}." if new else " No new labels.")
    )
    if st.button("Start retraining", key="retrain_start", type="primary", icon=":material/add:"):
        request = request_from_run(
            run, table, source_name=uploaded.name, replay_fraction=share / 100
        )
        _start(request, f"{summary.name} · retrained", run)


def faster_copy_panel(run: Run, summary: RunSummary) -> None:
    choices, default = student_layer_choices(run)
    st.markdown(
        "A smaller model that keeps only the first layers of this one and learns to give the "
        "same answers. It labels tickets faster and usually a little less well: the Review "
        "page of the copy says how much faster it is and how much of the macro-F1 it keeps."
    )
    total = choices[-1] + 1
    layers = st.selectbox(
        "Layers the copy keeps",
        choices,
        index=choices.index(default),
        format_func=lambda n: f"{n} of {total}",
        key="distill_layers",
        help="Fewer layers: faster, but more of the macro-F1 may be lost.",
    )
    uploaded = st.file_uploader(
        "Extra tickets without labels (optional)",
        type=FILE_TYPES,
        key="distill_upload",
        help="For instance a file you labelled on the Use page. The copy also learns this "
        "model's answers on these tickets, which helps it imitate the model more closely. "
        "The file needs the same text columns as before.",
    )
    texts: tuple[str, ...] = ()
    table = _read(uploaded, "_distill_table")
    if uploaded is not None and table is None:
        return
    if table is not None:
        texts = unlabelled_from_table(run, table)
        st.caption(f"The copy also learns from {len(texts):,} extra tickets of this file.")
    if st.button(
        "Make the faster copy", key="distill_start", type="primary", icon=":material/speed:"
    ):
        request = request_distillation(run, student_layers=layers, unlabelled_texts=texts)
        _start(request, f"{summary.name} · faster copy", run)


def _read(uploaded, cache_key: str):
    """The uploaded table, read once per file; a plain error (and None) if it cannot be read."""
    if uploaded is None:
        return None
    cached = st.session_state.get(cache_key)
    if not cached or cached[0] != uploaded.file_id:
        try:
            data, name = uploaded.getvalue(), uploaded.name
            table = read_table(data, filename=name, max_bytes=max_upload_bytes())
        except DataError as exc:
            table = str(exc)
        cached = st.session_state[cache_key] = (uploaded.file_id, table)
    if isinstance(cached[1], str):
        st.error(md(cached[1]), icon=":material/error:")
        return None
    return cached[1]


def _start(request, name: str, parent: Run) -> None:
    """Queue the job, make it the tab's run and watch it on the Train page."""
    fields = {**request.describe(), **origin_fields(parent), "started_by": current_user()}
    run_id = get_jobs().submit(request, name=name, status_fields=fields)
    remember_run(run_id)
    st.switch_page("pages/train.py", query_params={"run": run_id})
