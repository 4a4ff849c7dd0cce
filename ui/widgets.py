"""Small widgets and formatters shared by the pages."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence

import pandas as pd
import streamlit as st

from core.errors import TicketTuneError
from core.runs import RunSummary
from core.scoring import spreadsheet_safe
from ui.entry import ensure_entrypoint
from ui.safe_text import md
from ui.state import current_run_id, get_store, remember_run

log = logging.getLogger("tickettune.app")

UNEXPECTED = (
    "Something went wrong on this page ({kind}). Your data and runs are safe: reload the page "
    "and try again. If it keeps happening, the details are in the server log."
)


def run_page(body: Callable[[], None]) -> None:
    """Run a page body; show analyst-readable errors instead of tracebacks.

    TicketTune errors carry a message meant for the analyst; anything else is logged with its
    traceback on the server and shown as a short apology. Streamlit's own rerun/stop signals are
    BaseExceptions and pass through.
    """
    ensure_entrypoint()
    try:
        body()
    except TicketTuneError as exc:
        st.error(md(exc), icon=":material/error:")
    except Exception as exc:
        log.exception("Unexpected error while rendering a page")
        st.error(UNEXPECTED.format(kind=type(exc).__name__), icon=":material/error:")


def fmt_duration(seconds: float | None) -> str:
    """'45 s', '3 min', '1 h 05 min'."""
    if seconds is None or not math.isfinite(seconds):
        return "unknown"
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def fmt_pct(value: float | None, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value * 100:.{digits}f}%"


def fmt_when(iso: str | None) -> str:
    if not iso:
        return ""
    try:
        stamp = pd.Timestamp(iso).tz_convert(None)
    except (ValueError, TypeError):
        return str(iso)
    return stamp.strftime("%Y-%m-%d %H:%M")


def run_label(summary: RunSummary) -> str:
    score = f" · macro-F1 {fmt_pct(summary.macro_f1)}" if summary.macro_f1 is not None else ""
    note = f" · {summary.stopped_early_note}" if summary.stopped_early_note else ""
    return f"{summary.name} ({fmt_when(summary.created_at)}){score}{note}"


def run_picker(
    key: str,
    label: str = "Run",
    states: Sequence[str] = ("succeeded",),
    *,
    include_stopped_early: bool = False,
):
    """Pick a run (default: the one in ``?run=``, else the newest); returns its RunSummary.

    Choosing a run makes it the tab's current run, so other pages and a refresh follow.
    ``include_stopped_early`` also lists cancelled/interrupted runs that kept a usable model.
    """
    summaries = [
        s
        for s in get_store().list()
        if s.state in states or (include_stopped_early and s.stopped_early_note)
    ]
    if not summaries:
        return None
    ids = [s.run_id for s in summaries]
    by_id = {s.run_id: s for s in summaries}
    current = current_run_id()
    index = ids.index(current) if current in ids else 0
    chosen = st.selectbox(
        label,
        ids,
        index=index,
        key=key,
        format_func=lambda run_id: run_label(by_id[run_id]),
        on_change=lambda: remember_run(st.session_state[key]),
    )
    return by_id.get(chosen)


def csv_download(
    label: str, table: pd.DataFrame, file_name: str, key: str, *, help: str | None = None
) -> None:
    """A CSV download that is safe to open in Excel (no formula injection), UTF-8 with BOM."""
    data = spreadsheet_safe(table).to_csv(index=False).encode("utf-8-sig")
    st.download_button(
        label,
        data=data,
        file_name=file_name,
        mime="text/csv",
        key=key,
        help=help,
        icon=":material/download:",
        on_click="ignore",
    )


def file_download(
    label: str, read: Callable[[], bytes], file_name: str, key: str, *, help: str | None = None
) -> None:
    """A download of a CSV that core wrote already safe for Excel (e.g. a scored file), read
    from disk only when clicked: a large file is not held in memory for every page run."""
    st.download_button(
        label,
        data=read,
        file_name=file_name,
        mime="text/csv",
        key=key,
        help=help,
        icon=":material/download:",
        on_click="ignore",
    )


def no_runs_yet() -> None:
    st.info("No trained model yet. Prepare your tickets on the Data page, then train one.")
    st.page_link("pages/data.py", label="Go to 1 Data", icon=":material/table_view:")


def as_percent(table: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """A display copy with shares (0-1) in ``columns`` turned into percentages (0-100)."""
    shown = table.copy()
    for column in columns:
        if column in shown:
            shown[column] = pd.to_numeric(shown[column], errors="coerce") * 100
    return shown


def percent_column(label: str | None = None):
    """A percentage column with one decimal, like every other figure in the app."""
    return st.column_config.NumberColumn(label, format="%.1f%%")


def sureness_column(label: str = "how sure"):
    """The model's confidence as a bar with a whole percentage (values from as_percent)."""
    return st.column_config.ProgressColumn(label, format="%.0f%%", min_value=0.0, max_value=100.0)


def show_table(data: pd.DataFrame, key: str, **kwargs) -> None:
    """A read-only table in a container with ``key`` (AppTest: ``at.get_by_key(key)``;
    browser: ``.st-key-<key>``), since a non-selectable st.dataframe keeps no key."""
    with st.container(key=key):
        st.dataframe(data, hide_index=True, **kwargs)
