"""Use: label a file of new tickets — saved to disk once, scored in the background by the same
streaming path as ``python -m core predict``, and downloaded from disk.

Nothing here holds the whole file as a table: the page shows the first rows, the counts per
label and the unsure tickets that scoring kept (:mod:`core.scored_files`), and the download
reads the scored file only when it is clicked. Scoring goes on when the analyst clicks
elsewhere; the run's recent scored files are listed with their downloads after a reload.
"""

from __future__ import annotations

import time

import streamlit as st

from core.batch_scoring import peek_columns
from core.errors import DataError
from core.runs import Run
from core.scored_files import ScoredFile, get_scored, list_scored
from core.scoring import NEEDS_REVIEW
from core.scoring_jobs import ScoringRunner, ScoringSnapshot
from core.tables import FILE_TYPES
from ui.figures import label_counts_figure
from ui.safe_text import md
from ui.state import get_workspace
from ui.uncertain_view import label_uncertain
from ui.widgets import as_percent, file_download, fmt_duration, show_table, sureness_column

RECENT = 5
_UPLOAD, _JOB = "_predict_upload", "_predict_job"
CONFIDENCE_COLUMNS = ["confidence", "top2_confidence", "top3_confidence"]


@st.cache_resource(show_spinner=False)
def get_scoring_runner() -> ScoringRunner:
    """One runner per server process: its threads outlive reruns, page switches and reloads."""
    return ScoringRunner()


def batch(run: Run, predictor) -> None:
    st.subheader("Label a file of new tickets")
    uploaded = st.file_uploader(
        "New tickets (CSV, TSV, Excel .xlsx or JSON Lines)", type=FILE_TYPES, key="predict_upload"
    )
    shown = None
    saved = _saved_upload(uploaded) if uploaded is not None else None
    if saved is not None:
        shown = label_file(run, predictor, uploaded.file_id, uploaded.name, *saved)
    recent_files(run, shown)


def _saved_upload(uploaded) -> tuple[str, list[str]] | None:
    """The upload written to the workspace once per file, and its columns (None: an error)."""
    cached = st.session_state.get(_UPLOAD)
    if not cached or cached[0] != uploaded.file_id:
        try:
            workspace = get_workspace()
            upload_id = workspace.save_upload(uploaded.getvalue(), uploaded.name)
            columns = peek_columns(
                workspace.data_path(upload_id),
                filename=uploaded.name,
                encoding=workspace.load_encoding(upload_id),
            )
            cached = (uploaded.file_id, upload_id, columns, "")
        except DataError as exc:
            cached = (uploaded.file_id, None, None, str(exc))
        st.session_state[_UPLOAD] = cached
    if cached[3]:
        st.error(md(cached[3]), icon=":material/error:")
        return None
    return cached[1], cached[2]


def label_file(
    run: Run, predictor, file_id: str, name: str, upload_id: str, names: list[str]
) -> str | None:
    """Columns, threshold, the start button and the result; returns the scored file's id."""
    columns = choose_columns(run, names, file_id)
    threshold = _threshold_choice(run)
    runner = get_scoring_runner()
    job = _session_job(file_id, run.id)
    snapshot = runner.snapshot(job) if job else None
    busy = snapshot is not None and not snapshot.finished
    button = {"key": "predict_score", "type": "primary", "disabled": busy or not columns}
    if st.button("Label the file", **button):
        job = _start(run, predictor, (file_id, name, upload_id), columns, threshold)
        snapshot = follow(runner, job) if job else None
    if job is None:
        return None
    if snapshot is not None and not snapshot.finished:
        watch([job])
    elif snapshot is not None and snapshot.state == "cancelled":
        st.info(md(snapshot.error), icon=":material/stop_circle:")
        return None
    elif snapshot is not None and snapshot.state == "failed":
        st.error(md(snapshot.error), icon=":material/error:")
        return None
    elif (scored := get_scored(run, job)) is not None:
        show_scored(scored)
        _label_unsure(run, scored)
    return job


def _threshold_choice(run: Run) -> float | None:
    threshold = run.automation_threshold()
    use = threshold is not None and st.checkbox(
        f"Mark tickets the model is less than {threshold:.0%} sure about as needs_review "
        "(the threshold chosen on the Review page)",
        value=True,
        key="predict_use_threshold",
    )
    return threshold if use else None


def _start(run: Run, predictor, upload, columns, threshold) -> str | None:
    """Start scoring the saved upload in the background; the job id (None: an error shown)."""
    file_id, name, upload_id = upload
    workspace = get_workspace()
    try:
        source = workspace.data_path(upload_id)
    except DataError as exc:
        st.error(md(exc), icon=":material/error:")
        return None
    encoding = workspace.load_encoding(upload_id)
    job = get_scoring_runner().start(
        run, predictor, source, name, columns, threshold=threshold, upload_id=upload_id,
        encoding=encoding,
    )  # fmt: skip
    st.session_state[_JOB] = (file_id, run.id, job)
    return job


def _session_job(file_id: str, run_id: str) -> str | None:
    job = st.session_state.get(_JOB)
    return job[2] if job and job[0] == file_id and job[1] == run_id else None


def follow(runner: ScoringRunner, job: str) -> ScoringSnapshot | None:
    """Show the job's progress until it ends. A click elsewhere ends this page run, not the
    job: it goes on in the background and the page picks it up again."""
    bar = st.progress(0.0, text="Reading the file…")
    with (stop := st.empty()):  # a click reruns the page: that ends this loop, not the job
        stop_button(runner, job)
    while (snapshot := runner.snapshot(job)) is not None and not snapshot.finished:
        bar.progress(min(snapshot.fraction, 1.0), text=progress_text(snapshot))
        time.sleep(0.25)
    bar.empty()
    stop.empty()
    return snapshot


@st.fragment(run_every=1.0)
def watch(jobs: list[str]) -> None:
    """Progress of jobs started earlier (before a page switch or by another tab)."""
    runner = get_scoring_runner()
    snapshots = [runner.snapshot(job) for job in jobs]
    if any(s is None or s.finished for s in snapshots):
        st.rerun()  # the whole page: the result is on disk now (or the error is shown)
        return
    for snapshot in snapshots:
        st.progress(min(snapshot.fraction, 1.0), text=progress_text(snapshot))
        stop_button(runner, snapshot.job_id)


def stop_button(runner: ScoringRunner, job: str) -> None:
    """Stop labelling this file (after the chunk of tickets it is on); nothing is saved."""
    if st.button("Stop labelling", key=f"predict_stop_{job}", icon=":material/stop:"):
        runner.cancel(job)
        st.toast("Stopping after the current batch of tickets…")


def progress_text(snapshot: ScoringSnapshot) -> str:
    name = md(snapshot.source_name)
    total = snapshot.estimated_total
    if total is None:
        return f"Labelling {name}: reading the file…"
    left = snapshot.seconds_left
    when = f", about {fmt_duration(left)} left" if left else ""
    return f"Labelling {name}: {snapshot.rows:,} of about {total:,} tickets done{when}"


def show_scored(scored: ScoredFile) -> None:
    st.success(summary(scored), icon=":material/check_circle:")
    first = scored.first_rows()
    if scored.rows > len(first):
        st.caption(
            f"The first {len(first):,} of {scored.rows:,} tickets; the download has all of them."
        )
    model = [c for c in ("predicted_label", "confidence", NEEDS_REVIEW) if c in first]
    show_table(
        as_percent(first, ["confidence"]),
        key="predict_results",
        column_order=model + [c for c in first.columns if c not in model],
        column_config={"confidence": sureness_column()},
    )
    if scored.label_counts:
        counts = dict(scored.label_counts)
        figure = label_counts_figure(counts, "Tickets per predicted label")
        st.plotly_chart(figure, key="predict_label_counts")
    download(scored, "Download the labelled tickets (CSV)", key="predict_download")


def summary(scored: ScoredFile) -> str:
    message = f"Labelled {scored.labelled:,} tickets."
    if scored.needs_review is not None and scored.threshold is not None:
        message += (
            f" {scored.needs_review:,} are marked for a person to check (the model is less "
            f"than {scored.threshold:.0%} sure about them)."
        )
    if scored.rows > scored.labelled:
        message += f" {scored.rows - scored.labelled:,} rows have no text and got no label."
    return message


def download(scored: ScoredFile, label: str, key: str) -> None:
    """The scored file, read from disk only when clicked (it can be hundreds of MB)."""
    size = f"{scored.rows:,} tickets, {scored.size_bytes / 1e6:,.1f} MB, safe to open in Excel"
    file_download(label, scored.read_bytes, scored.download_name, key, help=size)


def _label_unsure(run: Run, scored: ScoredFile) -> None:
    if not scored.needs_review or not scored.upload_id:
        return
    unsure = scored.unsure_rows()
    label_uncertain(run, unsure, scored.upload_id, list(scored.text_columns), scored.needs_review)


def recent_files(run: Run, shown: str | None) -> None:
    """The run's scored files still being written and the finished ones, with downloads."""
    running = [s.job_id for s in get_scoring_runner().running(run.id) if s.job_id != shown]
    files = [f for f in list_scored(run, limit=RECENT + 1) if f.id != shown][:RECENT]
    if not running and not files:
        return
    st.markdown("**Files labelled with this model**")
    if running:
        watch(running)
    for scored in files:
        left, right = st.columns([3, 1], vertical_alignment="center")
        when = scored.finished_at[:16].replace("T", " ")
        review = f", {scored.needs_review:,} for a person" if scored.needs_review else ""
        left.caption(f"{md(scored.source_name)} — {scored.rows:,} tickets{review} ({when} UTC)")
        with right:
            download(scored, "Download", key=f"predict_file_{scored.id}")


def choose_columns(run: Run, names: list[str], file_id: str) -> list[str]:
    """The columns the model was trained on; other columns only as a visible, explicit choice."""
    trained = run.text_columns()
    missing = [c for c in trained if c not in names]
    if st.session_state.get("_predict_columns_for") != (file_id, run.id):
        st.session_state["predict_other_columns"] = False
        st.session_state["predict_text_columns"] = [c for c in names if c not in trained][:1]
        st.session_state["_predict_columns_for"] = (file_id, run.id)
    if trained and not missing:
        st.caption(f"The model reads {_listed(trained)}, the columns it was trained on.")
    elif trained:
        st.error(
            f"This file has no {_listed(missing)} column, which the model was trained to read "
            f"({_listed(trained)}). Add it to the file, or pick other columns below.",
            icon=":material/error:",
        )
    else:
        st.info("This run does not say which columns it was trained on; pick them below.")
    if not st.checkbox("Use other columns", key="predict_other_columns"):
        return [] if missing or not trained else trained
    columns = st.multiselect("Text columns to read instead", names, key="predict_text_columns")
    st.warning(
        f"The model was trained on {_listed(trained) or 'other columns'}; on "
        f"{_listed(columns) or 'these columns'} its labels may be worse than its test scores say.",
        icon=":material/warning:",
    )
    return columns


def _listed(columns: list[str]) -> str:
    return " + ".join(f"**{md(c)}**" for c in columns)
