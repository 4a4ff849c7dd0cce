"""4 Use the model: try a ticket, score a file of new tickets, download the model."""

import streamlit as st

from core.export import model_archive
from core.inference import needs_review
from ui.batch_view import batch
from ui.figures import top_labels_figure
from ui.html import highlight_words, label_block, legend
from ui.serve_hint import show_serve_hint
from ui.state import get_predictor, get_run
from ui.widgets import no_runs_yet, run_page, run_picker


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
