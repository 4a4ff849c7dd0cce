"""Which text encoding an upload was read in, and a picker to read it in another one.

Legacy exports (Windows code pages, Shift-JIS, GBK…) carry no label saying which encoding they
use; TicketTune guesses, and a wrong guess turns names and accents into gibberish. The analyst
sees the encoding used next to the preview and can pick the right one; the choice is kept with
the upload in the workspace, so it survives a refresh and is what training reads.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.encodings import ENCODINGS, describe_encoding
from core.errors import DataError
from core.tables import TableRead
from ui.data_flow import forget_tab_draft
from ui.data_widgets import reseed_widgets
from ui.state import get_workspace, load_table_details

DETECT = "detect"


def table_with_encoding_choice(upload_id: str) -> pd.DataFrame:
    """The uploaded table, with the encoding it was read in and a picker to change it.

    When the chosen encoding cannot read the file, the picker is still shown (so the analyst
    can pick another) and the error is raised for the page to show.
    """
    chosen = get_workspace().load_encoding(upload_id)
    try:
        read, error = load_table_details(upload_id), None
    except DataError as exc:
        if chosen is None:
            raise
        read, error = None, exc
    if read is None or read.encoding is not None:
        _picker(upload_id, chosen, read)
    if error is not None:
        raise error
    return read.frame


def _picker(upload_id: str, chosen: str | None, read: TableRead | None) -> None:
    left, right = st.columns([3, 2], vertical_alignment="center")
    if read is not None:
        left.caption(_read_as(read, chosen))
    options = [DETECT, *ENCODINGS]
    if chosen and chosen not in options:
        options.append(chosen)
    key = f"data_encoding_{upload_id}"
    right.selectbox(
        "Text encoding",
        options,
        index=options.index(chosen or DETECT),
        key=key,
        format_func=lambda name: "Detect it" if name == DETECT else describe_encoding(name),
        on_change=_save_choice,
        args=(upload_id, key),
        help="How the file's bytes become letters. Pick another one if names or accents look "
        "wrong in the preview.",
    )


def _read_as(read: TableRead, chosen: str | None) -> str:
    used = f"Read as **{describe_encoding(read.encoding)}**"
    if chosen:
        return f"{used}, as you chose."
    if read.encoding_guessed:
        return (
            f"{used}, detected from the file. If names or accents look wrong in the preview, "
            "pick the file's encoding."
        )
    return f"{used}."


def _save_choice(upload_id: str, key: str) -> None:
    """Keep the choice with the upload, and start the column choices over for the new text
    (column names and labels can read differently)."""
    value = st.session_state[key]
    get_workspace().save_encoding(upload_id, None if value == DETECT else value)
    forget_tab_draft(upload_id)
    reseed_widgets()
