"""The live view of one training job: progress, curves, event log, cancel, and the outcome.

A visitor sees the progress of, and may cancel, only their own jobs (``core.jobs`` decides whose
a job is); someone else's job shows up only as "Another analyst's training is running".
"""

from __future__ import annotations

import contextlib

import streamlit as st

from core.errors import RunNotFoundError, TicketTuneError
from core.jobs import JobSnapshot, QueueOutlook, owned_by
from core.runs import RunSummary
from ui.auth import owner_id
from ui.figures import loss_figure, validation_figure
from ui.safe_text import md
from ui.state import get_jobs, get_store, remember_run
from ui.widgets import fmt_duration, fmt_pct

STAGES = {
    "preparing": "Checking and splitting the tickets",
    "baseline": "Training the word-count baseline",
    "loading": "Loading the model",
    "embedding": "Reading the tickets with the model",
    "fitting": "Fitting the quick model",
    "training": "Fine-tuning",
    "evaluating": "Scoring the test tickets",
    "saving": "Saving",
    "done": "Done",
}
POLL_SECONDS = 1.5
BADGE_SECONDS = 2.0


def job_panel(run_id: str) -> None:
    """Show the job; while it is queued or running the panel refreshes itself.

    Someone else's unfinished job is not shown: only a note that it is running (a finished run
    is anyone's to look at, as on the Runs page)."""
    jobs, owner = get_jobs(), owner_id()
    try:
        first = jobs.snapshot(run_id)
    except RunNotFoundError:
        st.info("The run this page was showing no longer exists.")
        return
    if not first.finished and not owned_by(first, owner):
        others_note(jobs.outlook(owner))
        return
    live = not first.finished

    @st.fragment(run_every=POLL_SECONDS if live else None)
    def panel() -> None:
        snap = jobs.snapshot(run_id)
        with st.container(border=True, key="train_job"):
            _render(snap, jobs.outlook(owner), can_cancel=jobs.can_cancel(snap, owner))
        if live and snap.finished:
            st.rerun()  # once: the whole page redraws with the outcome, and polling stops

    panel()


def others_note(outlook: QueueOutlook) -> None:
    """The one thing a visitor learns about someone else's training (no name, no cancel)."""
    text = queue_text(outlook) or "Another analyst's training is waiting in the queue."
    st.info(text, icon=":material/group:")


def queue_text(outlook: QueueOutlook) -> str | None:
    """The note about someone else's running training ("Another analyst's training is running —
    yours …"); None when no one else's training is running."""
    mine = outlook.mine
    if not outlook.others_running or (mine is not None and mine.state == "running"):
        return None
    position = (mine.queue_position or 1) if mine is not None else 1
    if position <= 1:
        return "Another analyst's training is running — yours will start when it ends."
    return f"Another analyst's training is running — yours is {ordinal(position)} in the queue."


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _render(snap: JobSnapshot, outlook: QueueOutlook, *, can_cancel: bool) -> None:
    title, action = st.columns([4, 1], vertical_alignment="center")
    title.markdown(f"#### {md(snap.name)}")
    if can_cancel:
        with action:
            _cancel_button(snap)
    if snap.state == "queued":
        is_next_of_mine = outlook.mine is not None and outlook.mine.run_id == snap.run_id
        waiting = queue_text(outlook) if is_next_of_mine else None
        st.info(
            waiting
            or f"Waiting in the queue (number {snap.queue_position or 1}); it starts when the "
            "training before it has finished.",
            icon=":material/schedule:",
        )
    elif snap.state == "running":
        _progress(snap)
        _curves(snap)
    else:
        _outcome(snap)
        _curves(snap)
    _events(snap)


def _progress(snap: JobSnapshot) -> None:
    stage = STAGES.get(snap.stage or "", "Starting")
    eta = f" · about {fmt_duration(snap.eta_seconds)} left" if snap.eta_seconds else ""
    st.progress(snap.fraction, text=f"**{stage}** · {snap.fraction:.0%}{eta}")
    if snap.message:
        st.caption(md(snap.message))
    st.caption(
        f"Running for {fmt_duration(snap.elapsed_seconds)}. You can leave this page; "
        "training goes on in the background."
    )


def _cancel_button(snap: JobSnapshot) -> None:
    clicked = st.button("Cancel training", key="train_cancel", icon=":material/cancel:")
    if clicked and get_jobs().cancel(snap.run_id, owner=owner_id()):
        st.toast("Cancelling… the run stops after the current step.", duration=4)


def _outcome(snap: JobSnapshot) -> None:
    if snap.state == "succeeded":
        result = snap.result or {}
        st.success(
            f"Finished in {fmt_duration(snap.elapsed_seconds)}. On the held-back test tickets the "
            f"model is right {fmt_pct(result.get('accuracy'))} of the time "
            f"(macro-F1 {fmt_pct(result.get('macro_f1'))}; the word-count baseline scores "
            f"{fmt_pct(result.get('baseline_macro_f1'))}).",
            icon=":material/check_circle:",
        )
        if (result.get("macro_f1") or 0) < (result.get("baseline_macro_f1") or 0):
            st.warning(
                "The simple word-count model scored higher than this one. Try the Full method, "
                "more epochs, or the built-in model; also check the warnings on the Data page.",
                icon=":material/info:",
            )
        st.page_link(
            "pages/review.py",
            label="Review the results",
            icon=":material/fact_check:",
            query_params={"run": snap.run_id},
        )
    elif snap.state == "cancelled":
        st.warning(md(snap.reason or "Cancelled."), icon=":material/cancel:")
    else:
        st.error(md(snap.reason or "The training failed."), icon=":material/error:")
    if snap.state != "succeeded":
        with contextlib.suppress(RunNotFoundError):  # deleted meanwhile: nothing to offer
            stopped_early_panel(get_store().get(snap.run_id).summary(), key="job")


def stopped_early_panel(summary: RunSummary, *, key: str) -> None:
    """For a stopped run: the best model it kept, and a Resume button if it has a checkpoint."""
    if summary.stopped_early_note:
        st.info(
            f"This run {summary.stopped_early_note}. You can use it on the Use page.",
            icon=":material/bookmark:",
        )
    if summary.resumable and st.button(
        "Resume training", key=f"resume_{key}", icon=":material/play_arrow:"
    ):
        resume(summary.run_id)


def resume(run_id: str) -> None:
    """Queue the run again from its last checkpoint and show it on the Train page."""
    from core.pipeline import ResumeRequest

    try:
        get_jobs().resubmit(run_id, ResumeRequest(), owner=owner_id())
    except TicketTuneError as exc:
        st.error(md(str(exc)), icon=":material/error:")
        return
    remember_run(run_id)
    st.switch_page("pages/train.py", query_params={"run": run_id})


def _curves(snap: JobSnapshot) -> None:
    if not snap.loss_history and not snap.eval_history:
        return
    left, right = st.columns(2)
    if snap.loss_history:
        left.plotly_chart(loss_figure(snap.loss_history), key="train_loss_chart")
    if snap.eval_history:
        right.plotly_chart(validation_figure(snap.eval_history), key="train_eval_chart")


def _events(snap: JobSnapshot) -> None:
    with st.expander(f"What happened ({len(snap.events)} events)"):
        lines = [f"{when[11:19]}  {message}" for when, message in reversed(snap.events)]
        st.code("\n".join(lines) or "Nothing yet.", language=None)


def sidebar_badge() -> None:
    """Sidebar, on every page: this visitor's job in progress, and how busy the queue is
    (refreshing itself while any job is running or waiting)."""
    jobs, owner = get_jobs(), owner_id()

    @st.fragment(run_every=BADGE_SECONDS if jobs.outlook(owner).busy else None)
    def badge() -> None:
        _badge(jobs.outlook(owner))

    with st.sidebar:
        badge()


def _badge(outlook: QueueOutlook) -> None:
    mine = outlook.mine
    if not outlook.busy:
        return
    with st.container(border=True, key="job_badge"):
        if mine is not None and mine.state == "running":
            eta = f", about {fmt_duration(mine.eta_seconds)} left" if mine.eta_seconds else ""
            st.progress(
                mine.fraction, text=f"Training **{md(mine.name)}**: {mine.fraction:.0%}{eta}"
            )
        elif mine is not None:
            st.caption(f"Your training **{md(mine.name)}** is waiting in the queue.")
        if outlook.others_running:
            st.caption("Another analyst's training is running.")
        waiting = outlook.others_queued + outlook.mine_queued
        waiting -= 1 if mine is not None and mine.state == "queued" else 0
        if waiting:
            st.caption(f"{waiting} more waiting in the queue")
        if mine is not None:
            st.page_link(
                "pages/train.py",
                label="Watch it",
                icon=":material/visibility:",
                query_params={"run": mine.run_id},
            )
