"""4 Use the model: try a ticket, score a file of new tickets, download the model."""

import streamlit as st

from core.errors import DataError
from core.export import model_archive
from core.inference import needs_review
from core.scoring import NEEDS_REVIEW, score_table
from core.tables import FILE_TYPES, read_table
from ui.figures import top_labels_figure
from ui.html import highlight_words, label_block, legend
from ui.safe_text import md
from ui.serve_hint import show_serve_hint
from ui.state import get_predictor, get_run, max_upload_bytes
from ui.uncertain_view import label_uncertain
from ui.widgets import (
    as_percent,
    csv_download,
    no_runs_yet,
    run_page,
    run_picker,
    show_table,
    sureness_column,
)


def try_it(run_id: str, predictor, threshold: float | None = None) -> None:
    st.subheader("Try a ticket")
    text = st.text_area(
        "Ticket text",
        key="predict_text",
        height=120,
        placeholder="Paste a ticket: subject and body",
        persist_state="session",
    )
    if st.button("Label it", key="predict_go", type="primary"):
        if not text.strip():
            st.warning("Type or paste a ticket first.")
            return
        with st.spinner("Reading the ticket…"):
            st.session_state["_predict_result"] = (run_id, text, *predictor.explain(text))
    result = st.session_state.get("_predict_result")
    if not result or result[0] != run_id:
        return
    _, labelled_text, prediction, words = result
    if labelled_text != text:
        st.caption("Press **Label it** to label the text as it is now.")
        return
    left, right = st.columns([1, 2])
    with left.container(key="predict_label"):
        st.caption("Predicted label")
        st.markdown(label_block(prediction.label), unsafe_allow_html=True)
    left.metric("How sure the model is", f"{prediction.confidence:.0%}")
    if threshold is not None and needs_review(prediction.confidence, threshold):
        st.warning(
            f"The model is only {prediction.confidence:.0%} sure — this ticket would go to a "
            f"person (it acts on its own from {threshold:.0%}, the threshold chosen on the "
            "Review page).",
            icon=":material/person:",
        )
    right.plotly_chart(top_labels_figure(prediction.top), key="predict_top_chart")
    if prediction.reading is not None and prediction.reading.truncated:
        st.info(reading_note(prediction.reading), icon=":material/content_cut:")
    st.markdown("**Words that drove the decision**")
    st.markdown(highlight_words(labelled_text, words), unsafe_allow_html=True)
    st.caption(legend(), unsafe_allow_html=True)


def reading_note(reading) -> str:
    """What a long ticket lost: the model reads only its first tokens."""
    return (
        f"This ticket is long: the model read only the first {reading.words_read:,} of its "
        f"{reading.words_total:,} words ({reading.tokens_read:,} of {reading.tokens_total:,} "
        "tokens) and ignored the rest. Put what matters most near the start."
    )


def read_batch(uploaded):
    """The uploaded table, read once per file (a plain error if it cannot be read)."""
    cached = st.session_state.get("_predict_table")
    if not cached or cached[0] != uploaded.file_id:
        try:
            data, name = uploaded.getvalue(), uploaded.name
            table = read_table(data, filename=name, max_bytes=max_upload_bytes())
        except DataError as exc:
            table = str(exc)
        cached = st.session_state["_predict_table"] = (uploaded.file_id, table)
    if isinstance(cached[1], str):
        st.error(md(cached[1]), icon=":material/error:")
        return None
    return cached[1]


def batch(run, predictor) -> None:
    st.subheader("Label a file of new tickets")
    uploaded = st.file_uploader(
        "New tickets (CSV, TSV, Excel .xlsx or JSON Lines)", type=FILE_TYPES, key="predict_upload"
    )
    table = read_batch(uploaded) if uploaded is not None else None
    if table is None:
        return
    columns = choose_columns(run, table, uploaded.file_id)
    threshold = run.automation_threshold()
    use_threshold = threshold is not None and st.checkbox(
        f"Mark tickets the model is less than {threshold:.0%} sure about as needs_review "
        "(the threshold chosen on the Review page)",
        value=True,
        key="predict_use_threshold",
    )
    if st.button("Label the file", key="predict_score", type="primary", disabled=not columns):
        threshold = threshold if use_threshold else None
        scored = score(predictor, table, columns, threshold)
        st.session_state["_predict_scored"] = (uploaded.file_id, run.id, scored)
    show_scored(run, uploaded)
    scored = st.session_state.get("_predict_scored")
    if scored and scored[0] == uploaded.file_id and scored[1] == run.id:
        label_uncertain(run, scored[2], uploaded, columns)


def score(predictor, table, columns: list[str], threshold: float | None):
    bar = st.progress(0.0, text="Labelling tickets…")

    def on_batch(done: int, total: int) -> None:
        bar.progress(done / max(total, 1), text=f"Labelled {done:,} of {total:,} tickets")

    scored = score_table(predictor, table, columns, threshold=threshold, on_batch=on_batch)
    bar.empty()
    return scored


def choose_columns(run, table, file_id: str) -> list[str]:
    """The columns the model was trained on; other columns only as a visible, explicit choice."""
    names = [str(c) for c in table.columns]
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
    return " + ".join(f"**{c}**" for c in columns)


def show_scored(run, uploaded) -> None:
    scored = st.session_state.get("_predict_scored")
    if not scored or scored[0] != uploaded.file_id or scored[1] != run.id:
        return
    table = scored[2]
    message = f"Labelled {table['predicted_label'].notna().sum():,} tickets."
    if NEEDS_REVIEW in table:
        message += f" {int(table[NEEDS_REVIEW].sum()):,} are marked for a person to check."
    st.success(message, icon=":material/check_circle:")
    first = [c for c in ("predicted_label", "confidence", NEEDS_REVIEW) if c in table]
    show_table(
        as_percent(table, ["confidence"]),
        key="predict_results",
        column_order=first + [c for c in table.columns if c not in first],
        column_config={"confidence": sureness_column()},
    )
    name = uploaded.name.rsplit(".", 1)[0]
    csv_download(
        "Download the labelled tickets (CSV)", table, f"{name}-labelled.csv", key="predict_download"
    )


def download_model(run) -> None:
    st.subheader("Take the model with you")
    st.caption(
        "A zip with the model, its settings and its test scores, for an engineer to load "
        "with TicketTune or transformers."
    )
    st.download_button(
        "Download the model (zip)",
        data=lambda: model_archive(run),
        file_name=f"{run.id}-model.zip",
        mime="application/zip",
        key="predict_download_model",
        icon=":material/download:",
        on_click="ignore",
    )


def main() -> None:
    st.title("4 · Use the model")
    summary = run_picker("predict_run", "Trained model", include_stopped_early=True)
    if summary is None:
        no_runs_yet()
        return
    run = get_run(summary.run_id)
    predictor = get_predictor(run.id)
    try_it(run.id, predictor, run.automation_threshold())
    st.divider()
    batch(run, predictor)
    st.divider()
    download_model(run)
    show_serve_hint(run)


run_page(main)
