"""Widgets of the Data page: seeding widgets from the draft, the label editor, the data report."""

from __future__ import annotations

import hashlib
from typing import Any

import pandas as pd
import streamlit as st

from ui.data_flow import Prepared, raw_label_counts
from ui.figures import label_counts_figure, length_histogram
from ui.safe_text import md
from ui.widgets import show_table

#: Widget key -> draft field. Widgets get their value from the draft (no default argument), so
#: a refresh or a page switch shows what the analyst chose.
SEEDED = {
    "data_text_columns": "text_columns",
    "data_label_column": "label_column",
    "data_min_count": "min_count",
    "data_rare_policy": "rare_policy",
    "data_other_label": "other_label",
    "data_split_mode": "split",
    "data_split_column": "split_column",
}
_SEEDED_FOR = "_data_seeded_for"
_LABEL_BASE = "_data_label_base"
RENAME, DROP = "rename to", "drop"


def reseed_widgets() -> None:
    """Make the next :func:`seed_widgets` fill every widget again from the draft."""
    st.session_state.pop(_SEEDED_FOR, None)


def seed_widgets(upload_id: str, draft: dict[str, Any]) -> None:
    """Put the draft's values into widgets that have none (or all of them for a new upload)."""
    fresh = st.session_state.get(_SEEDED_FOR) != upload_id
    for key, field in SEEDED.items():
        if fresh or key not in st.session_state:
            st.session_state[key] = draft.get(field)
    st.session_state[_SEEDED_FOR] = upload_id


def label_editor(upload_id: str, table: pd.DataFrame, draft: dict[str, Any]):
    """Table of labels with counts; type a new name to rename (same name twice merges), tick
    drop to leave a label out. Returns (rename, drop) for the draft."""
    column = draft["label_column"]
    counts = raw_label_counts(table, column)
    key = "data_labels_" + hashlib.sha1(f"{upload_id}|{column}".encode()).hexdigest()[:10]
    base = st.session_state.get(_LABEL_BASE)
    if key not in st.session_state or base is None or base[0] != key:
        base = (key, _label_table(counts, draft))
        st.session_state[_LABEL_BASE] = base
    st.session_state["data_labels_key"] = key
    with st.container(key="data_label_editor"):
        edited = st.data_editor(
            base[1],
            key=key,
            hide_index=True,
            disabled=["label", "tickets"],
            height=min(420, 40 + 35 * len(base[1])),
            column_config={
                "label": st.column_config.TextColumn("label in your file"),
                "tickets": st.column_config.NumberColumn("tickets"),
                RENAME: st.column_config.TextColumn(
                    RENAME, help="New name. Give two labels the same name to merge them."
                ),
                DROP: st.column_config.CheckboxColumn(DROP, help="Leave these tickets out."),
            },
        )
    return _edits(edited)


def _label_table(counts: pd.Series, draft: dict[str, Any]) -> pd.DataFrame:
    labels = [str(label) for label in counts.index]
    rename, drop = draft.get("rename") or {}, set(draft.get("drop") or [])
    return pd.DataFrame(
        {
            "label": labels,
            "tickets": [int(n) for n in counts.to_numpy()],
            RENAME: [rename.get(label, "") for label in labels],
            DROP: [label in drop for label in labels],
        }
    )


def _edits(edited: pd.DataFrame) -> tuple[dict[str, str], list[str]]:
    rename, drop = {}, []
    for label, new_name, dropped in edited[["label", RENAME, DROP]].itertuples(index=False):
        new = str(new_name).strip() if isinstance(new_name, str) else ""
        if new and new != label:
            rename[str(label)] = new
        if bool(dropped) and not pd.isna(dropped):
            drop.append(str(label))
    return rename, drop


def show_report(result: Prepared) -> None:
    """The data report as an analyst reads it."""
    report = result.report
    cols = st.columns(4)
    cols[0].metric("Tickets read", f"{report.rows_read:,}")
    cols[1].metric("Tickets used", f"{report.rows_used:,}", help="After leaving out unusable rows.")
    cols[2].metric("Labels", len(report.class_counts))
    cols[3].metric("Repeated texts", f"{report.duplicate_texts:,}")
    for warning in report.warnings:
        st.warning(md(warning), icon=":material/warning:")
    left, right = st.columns(2)
    with left:
        st.plotly_chart(label_counts_figure(report.class_counts), key="data_label_chart")
    with right:
        st.plotly_chart(length_histogram(result.lengths, "words"), key="data_length_chart")
        p = report.length_percentiles
        st.caption(f"Half the tickets have up to {p['p50']} words; 95% up to {p['p95']}.")
    _conflicts(report.conflict_examples, report.conflicting_duplicates)
    _split(result)


def _conflicts(examples: list[dict], total: int) -> None:
    if not total:
        return
    st.subheader("Same text, different labels")
    st.caption(f"{total} ticket texts carry more than one label. Examples (spreadsheet rows):")
    table = pd.DataFrame(
        {
            "text": [e["text"] for e in examples],
            "labels": [", ".join(e["labels"]) for e in examples],
            "rows": [", ".join(str(r + 2) for r in e["rows"]) for e in examples],
        }
    )
    show_table(table, key="data_conflicts")


def _split(result: Prepared) -> None:
    st.subheader("Learning and test tickets")
    if result.split_error:
        st.error(md(result.split_error), icon=":material/error:")
        return
    sizes = result.report.split_sizes or {}
    cols = st.columns(4)
    cols[0].metric("To learn from", f"{sizes.get('train', 0):,}")
    cols[1].metric("To check progress", f"{sizes.get('validation', 0):,}")
    cols[2].metric("Held back for the test", f"{sizes.get('test', 0):,}")
    cols[3].metric(
        "Texts in both learning and test",
        result.report.leakage or 0,
        help="Identical texts in the learning and the test tickets make the score look better.",
    )
