"""2 Train: choose a model and a method, see the time estimate, start, and watch the job."""

import streamlit as st

from core.config import TrainConfig
from core.errors import ConfigError, TicketTuneError
from core.estimate import estimate_training_seconds, mean_tokens_from_report
from core.label_loop import UPLOAD_FIELD
from core.requests import TrainingRequest
from ui.auth import current_user, owner_id
from ui.data_flow import get_draft, prepare, scheme_from_draft, split_settings
from ui.job_view import job_panel, others_note
from ui.safe_text import md
from ui.state import (
    current_run_id,
    current_upload_id,
    get_jobs,
    get_run,
    load_table,
    remember_run,
    upload_filename,
)
from ui.train_form import KEEP, METHOD_NAMES, advanced, model_and_method
from ui.widgets import fmt_duration, run_page


def start(upload_id: str, draft: dict, config: TrainConfig, name: str) -> str:
    """Queue the training as this visitor's job; the page shows it in this same run."""
    column, test_id = split_settings(draft)
    request = TrainingRequest(
        table=load_table(upload_id),
        scheme=scheme_from_draft(draft),
        config=config,
        test_table=load_table(test_id) if test_id else None,
        split_column=column,
        source_name=upload_filename(upload_id),
        test_source_name=upload_filename(test_id) if test_id else "",
    )
    fields = {**request.describe(), "started_by": current_user(), UPLOAD_FIELD: upload_id}
    run_id = get_jobs().submit(request, name=name, status_fields=fields, owner=owner_id())
    remember_run(run_id)
    return run_id


def new_training(upload_id: str) -> str | None:
    """The form; returns the id of the run its Start button queued in this run, if any."""
    draft = get_draft(upload_id, load_table(upload_id))
    result = prepare(upload_id, draft)
    report = result.report
    st.markdown(
        f"**{report.rows_used:,} tickets** from *{md(upload_filename(upload_id))}*, labels "
        f"from **{md(draft['label_column'])}** ({len(report.class_counts)} labels)."
    )
    if result.split_error:
        raise ConfigError(result.split_error)
    model, method = model_and_method()
    settings = advanced(method)
    name = st.text_input(
        "Name of this run",
        key="train_name",
        **KEEP,
        placeholder=f"{draft['label_column']} · {METHOD_NAMES[method]}",
    )
    try:
        if not model:
            raise ConfigError("Type a Hugging Face model id or a folder, or use the built-in one.")
        config = TrainConfig(model=model, method=method, **settings)
    except ConfigError as exc:
        st.error(md(exc), icon=":material/error:")
        return None
    estimate(report, config)
    if st.button("Start training", key="train_start", type="primary", icon=":material/play_arrow:"):
        return start(
            upload_id, draft, config, name.strip() or f"{draft['label_column']} · {method}"
        )
    return None


def estimate(report, config: TrainConfig) -> None:
    tokens = mean_tokens_from_report(report)
    seconds = estimate_training_seconds(report.rows_used, config, mean_tokens=tokens)
    st.info(
        f"Estimated time on this computer: about **{fmt_duration(seconds)}**.",
        icon=":material/timer:",
    )
    if get_jobs().active() is not None:
        st.caption("Another training is in progress; this one will wait in the queue.")


def job_area(started: str | None) -> None:
    """The job this tab follows: the one it just started, else the run in ``?run=``, else this
    visitor's own job in progress (found again from the owner id in the URL when the tab lost
    its session). Someone else's job is only mentioned, never shown."""
    run_id = started or current_run_id()
    if get_run(run_id) is None:
        outlook = get_jobs().outlook(owner_id())
        if outlook.mine is not None:
            run_id = outlook.mine.run_id
            remember_run(run_id)
        elif outlook.others_running:
            others_note(outlook)
    if get_run(run_id) is not None:
        job_panel(run_id)


def main() -> None:
    st.title("2 · Train a model")
    # Filled last, shown first: a job started by the button below appears here in this very
    # run. (No st.rerun() after the start: a rerun requested while fragments of this tab poll
    # left a tab showing its previous page — another analyst's job — under load; issue 12.)
    job_slot = st.container()
    started = training_form()
    with job_slot:
        job_area(started)


def training_form() -> str | None:
    upload_id = current_upload_id()
    st.subheader("Start a new training")
    if upload_id is None:
        st.info("First upload your tickets and choose the label column on the Data page.")
        st.page_link("pages/data.py", label="Go to 1 Data", icon=":material/table_view:")
        return None
    try:
        return new_training(upload_id)
    except TicketTuneError as exc:
        st.error(f"{md(exc)} Fix it on the Data page.", icon=":material/error:")
        st.page_link("pages/data.py", label="Go to 1 Data", icon=":material/table_view:")
        return None


run_page(main)
