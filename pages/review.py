"""3 Review: how good the model is, what it mixes up, and how much it can handle alone."""

import streamlit as st

from ui.audit_view import suspicious_labels
from ui.compare_view import compare_view
from ui.figures import loss_figure, validation_figure
from ui.label_loop import apply_and_retrain, loop_for, pending_panel
from ui.lineage_view import derived_results
from ui.pairs_view import confused_pairs_view
from ui.review_parts import (
    ROW_COLUMN,
    automation,
    comparison,
    confusion,
    headline,
    load_evaluation,
    where_columns,
)
from ui.state import get_run
from ui.widgets import (
    as_percent,
    csv_download,
    no_runs_yet,
    percent_column,
    run_page,
    run_picker,
    show_table,
    sureness_column,
)

MISTAKE_COLUMNS = ["text", "label", "predicted", "confidence", "top2_label"]


def per_class(evaluation) -> None:
    st.subheader("Label by label")
    st.caption(
        "Precision: when the model says this label, how often it is right. Recall: of the "
        "tickets with this label, how many it finds. Click a column to sort."
    )
    show_table(
        as_percent(evaluation.per_class.sort_values("f1"), ["precision", "recall", "f1"]),
        key="review_per_class",
        column_config={
            "precision": percent_column(),
            "recall": percent_column(),
            "f1": percent_column("F1"),
            "support": st.column_config.NumberColumn("test tickets"),
        },
    )


def mistakes(run, evaluation) -> None:
    st.subheader("Most confident mistakes")
    st.caption(
        "Tickets the model got wrong while being sure. Often the label in the file is "
        "the one that is wrong."
    )
    wrong = evaluation.confident_mistakes(20)
    wrong = wrong[MISTAKE_COLUMNS + where_columns(wrong, evaluation)]
    show_table(
        as_percent(wrong, ["confidence"]),
        key="review_mistakes",
        column_config={
            "confidence": sureness_column(),
            "label": "label in file",
            "top2_label": "second choice",
            **ROW_COLUMN,
        },
    )
    all_wrong = evaluation.predictions[~evaluation.predictions["correct"]]
    csv_download(
        f"Download all {len(all_wrong)} mistakes (CSV)",
        all_wrong,
        f"{run.id}-mistakes.csv",
        key="review_download_errors",
    )


def curves(run) -> None:
    history = run.history()
    loss = [tuple(p) for p in history.get("loss", [])]
    evals = [tuple(p) for p in history.get("eval", [])]
    if not loss and not evals:
        return
    with st.expander("Training curves"):
        left, right = st.columns(2)
        if loss:
            left.plotly_chart(loss_figure(loss), key="review_loss_chart")
        if evals:
            right.plotly_chart(validation_figure(evals), key="review_eval_chart")


def fix_labels(run, evaluation) -> None:
    st.header("Fix the labels and retrain")
    loop = loop_for(run)
    confused_pairs_view(evaluation, loop)
    if loop is None:
        return
    suspicious_labels(loop)
    pending_panel(loop, evaluation.id_columns)
    apply_and_retrain(loop)


def main() -> None:
    st.title("3 · Review the model")
    summary = run_picker("review_run", "Trained model")
    if summary is None:
        no_runs_yet()
        return
    run = get_run(summary.run_id)
    evaluation = load_evaluation(str(run.path), summary.finished_at)
    headline(run)
    derived_results(run)
    comparison(run)
    compare_view(run)
    per_class(evaluation)
    st.subheader("What gets mixed up")
    st.caption(
        "Rows are the labels in your file, columns what the model predicted. Click a "
        "square, or pick the two labels below, to see those tickets."
    )
    confusion(evaluation)
    mistakes(run, evaluation)
    st.subheader("How many tickets can it handle alone?")
    automation(run, evaluation)
    curves(run)
    fix_labels(run, evaluation)
    st.page_link(
        "pages/runs.py",
        label="Retrain it with new tickets, or make a faster copy (Runs page)",
        icon=":material/account_tree:",
    )
    st.page_link("pages/predict.py", label="Next: 4 Use the model", icon=":material/arrow_forward:")


run_page(main)
