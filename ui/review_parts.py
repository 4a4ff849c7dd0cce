"""Review page sections: headline metrics, the clickable confusion matrix, automation rate."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from core.evaluation import Evaluation
from core.model_choice import model_choice_note
from core.runs import Run
from ui.figures import confusion_figure, coverage_figure, most_confused_labels
from ui.safe_text import md
from ui.state import get_store
from ui.widgets import as_percent, fmt_pct, fmt_when, percent_column, show_table, sureness_column

MANY_LABELS = 20
CLICK_KEY, TRUE_KEY, PRED_KEY = "review_confusion", "review_true", "review_pred"
_APPLIED = "_review_applied_click"
THRESHOLD_KEY, _THRESHOLD_RUN = "review_threshold", "_review_threshold_run"


@st.cache_resource(max_entries=4, show_spinner="Loading the test results…")
def load_evaluation(run_path: str, finished_at: str | None) -> Evaluation:
    return Evaluation.load(Run(run_path))


def headline(run: Run) -> None:
    """Accuracy and macro-F1, with their gains over the word-count baseline and quick model."""
    metrics = run.metrics()
    model = metrics.get("model", {})
    baseline, quick = metrics.get("baseline", {}), metrics.get("quick", {})
    is_quick = run.train_settings().get("method") == "quick"
    cols = st.columns(3)
    for column, key, title in (
        (cols[0], "accuracy", "Accuracy"),
        (cols[1], "macro_f1", "Macro-F1"),
    ):
        gain = _points(model, baseline, key)
        column.metric(
            title,
            fmt_pct(model.get(key)),
            delta=None if gain is None else f"{gain:+.1f} pts vs word-count model",
            delta_color="normal" if gain is not None and abs(gain) >= 0.05 else "off",
            delta_arrow="auto" if gain is not None and abs(gain) >= 0.05 else "off",
            help=f"Word-count baseline: {fmt_pct(baseline.get(key))}; quick model: "
            f"{fmt_pct(quick.get(key))}.",
        )
    cols[2].metric("Test tickets", f"{model.get('n', 0):,}")
    over_quick = _points(model, quick, "macro_f1")
    if not is_quick and over_quick is not None:
        cols[2].caption(
            f"Fine-tuning added **{over_quick:+.1f} points** of macro-F1 over the quick model "
            f"({fmt_pct(quick.get('macro_f1'))})."
        )
    note = model_choice_note(metrics.get("training", {}))
    if note:
        st.info(note, icon=":material/info:")
    st.caption(
        "Accuracy: share of test tickets labelled right. Macro-F1: the average score over "
        "labels, so small labels count as much as big ones. Both are compared with a simple "
        "word-count model trained on the same tickets."
    )


def _points(model: dict, other: dict, key: str) -> float | None:
    if model.get(key) is None or other.get(key) is None:
        return None
    return (model[key] - other[key]) * 100


def comparison(run: Run) -> None:
    """Earlier runs with the same label column, side by side."""
    this = run.summary()
    rows = [
        s
        for s in get_store().list()
        if s.state == "succeeded" and s.label_column == this.label_column
    ]
    if len(rows) < 2:
        return
    st.markdown("**Other runs on the same labels**")
    table = pd.DataFrame(
        {
            "run": [("▶ " if s.run_id == run.id else "") + s.name for s in rows],
            "started": [fmt_when(s.created_at) for s in rows],
            "method": [s.method for s in rows],
            "accuracy": [s.accuracy for s in rows],
            "macro-F1": [s.macro_f1 for s in rows],
            "baseline macro-F1": [s.baseline_macro_f1 for s in rows],
        }
    )
    shown = as_percent(table, ["accuracy", "macro-F1", "baseline macro-F1"])
    show_table(
        shown,
        key="review_compare",
        column_config={
            "accuracy": percent_column(),
            "macro-F1": percent_column(),
            "baseline macro-F1": percent_column("word-count model macro-F1"),
        },
    )


def _apply_click(labels: list[str]) -> None:
    """A click on the chart (read before it is drawn) presets the two selectboxes."""
    state = st.session_state.get(CLICK_KEY)
    points = (state or {}).get("selection", {}).get("points", []) if state else []
    cell = points[0].get("customdata") if points else None
    if cell and len(cell) == 2 and st.session_state.get(_APPLIED) != list(cell):
        st.session_state[_APPLIED] = list(cell)
        if cell[0] in labels and cell[1] in labels:
            st.session_state[TRUE_KEY], st.session_state[PRED_KEY] = cell[0], cell[1]


def _default_cell(evaluation: Evaluation) -> tuple[str, str]:
    """The most common mistake, else the first label's diagonal."""
    matrix = np.asarray(evaluation.confusion).copy()
    np.fill_diagonal(matrix, -1)
    row, col = np.unravel_index(int(matrix.argmax()), matrix.shape)
    if matrix[row, col] <= 0:
        row = col = 0
    return evaluation.labels[row], evaluation.labels[col]


def confusion(evaluation: Evaluation) -> None:
    labels = evaluation.labels
    chosen = (st.session_state.get(TRUE_KEY), st.session_state.get(PRED_KEY))
    if not set(chosen) <= set(labels):
        st.session_state[TRUE_KEY], st.session_state[PRED_KEY] = _default_cell(evaluation)
    _apply_click(labels)
    left, right = st.columns([1, 2])
    normalize = left.toggle("Show shares of each true label", key="review_normalize")
    only = None
    if len(labels) > MANY_LABELS:
        n = right.slider(
            "Show the labels with the most mix-ups", 5, min(60, len(labels)), 20, key="review_top_n"
        )
        only = most_confused_labels(evaluation.confusion, labels, n)
    selected = (st.session_state[TRUE_KEY], st.session_state[PRED_KEY])
    fig = confusion_figure(
        evaluation.confusion, labels, normalize=normalize, only=only, selected=selected
    )
    st.plotly_chart(fig, on_select="rerun", selection_mode="points", key=CLICK_KEY)
    a, b = st.columns(2)
    true = a.selectbox("True label", labels, key=TRUE_KEY)
    predicted = b.selectbox("Predicted as", labels, key=PRED_KEY)
    tickets = evaluation.tickets_for_cell(true, predicted)
    st.markdown(
        f"**{len(tickets)} test tickets** labelled *{md(true)}* that the model "
        f"predicted as *{md(predicted)}*:"
    )
    columns = ["text", "confidence", "top2_label", *where_columns(tickets, evaluation)]
    show_table(
        as_percent(tickets[columns], ["confidence"]),
        key="review_cell_tickets",
        column_config={
            "confidence": sureness_column(),
            "top2_label": "second choice",
            **ROW_COLUMN,
        },
    )


ROW_COLUMN = {"sheet_row": st.column_config.NumberColumn("row in file", format="%d")}


def where_columns(tickets: pd.DataFrame, evaluation: Evaluation) -> list[str]:
    """The spreadsheet row and the file's id columns, where the tickets have them."""
    return [c for c in ("sheet_row", *evaluation.id_columns) if c in tickets]


def automation(run: Run, evaluation: Evaluation) -> None:
    saved = run.automation_threshold_details()
    if st.session_state.get(_THRESHOLD_RUN) != run.id or THRESHOLD_KEY not in st.session_state:
        st.session_state[THRESHOLD_KEY] = round(float(saved.get("threshold", 0.0)) * 100)
        st.session_state[_THRESHOLD_RUN] = run.id
    percent = st.slider(
        "Only act on its own when the model is at least this sure (%)", 0, 99, key=THRESHOLD_KEY
    )
    point = evaluation.at_threshold(percent / 100)
    automated = point["coverage"]
    accuracy = "–" if point["accuracy"] is None else fmt_pct(point["accuracy"])
    st.markdown(
        f"### Automate {automated:.0%} of tickets at {accuracy} accuracy; "
        f"{1 - automated:.0%} go to a person."
    )
    st.plotly_chart(
        coverage_figure(evaluation.coverage_curve(), percent / 100), key="review_coverage"
    )
    if st.button(
        "Use this threshold when scoring new tickets",
        key="review_save_threshold",
        icon=":material/save:",
    ):
        run.save_automation_threshold(percent / 100, point)
        st.toast(f"Saved: tickets below {percent}% sure will be marked for review.")
    elif saved:
        st.caption(
            f"Saved threshold: {saved.get('threshold', 0):.0%} (used on the Use the model page)."
        )
