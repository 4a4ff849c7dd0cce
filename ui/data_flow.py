"""The analyst's data choices: the current upload, its label-scheme draft, and the prepared data.

The draft (text columns, label column, renames, drops, rare-label rule, split) is kept in
``st.session_state`` and, so that it survives a refresh, in the workspace next to the upload.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from core.columns import guess_label_columns, guess_text_columns
from core.config import TrainConfig
from core.errors import DataError, TicketTuneError
from core.preparation import split_prepared
from core.report import DataReport, build_report
from core.schema import LabelScheme, PreparedData
from core.text import cell_to_str
from ui.state import get_workspace, load_table, remember_upload

SAMPLE_PATH = Path(__file__).resolve().parent.parent / "assets" / "sample_tickets.csv"
SAMPLE_DRAFT = {"text_columns": ["subject", "body"], "label_column": "category"}
SCHEME_FIELDS = ("text_columns", "label_column", "rename", "drop", "min_count", "rare_policy")
SCHEME_FIELDS += ("other_label",)
_DRAFTS = "drafts"
_RULE_FIELDS = ("min_count", "rare_policy", "other_label")
#: The scheme's own defaults for the rare-label rule (the columns here are placeholders).
SCHEME_DEFAULTS = LabelScheme(text_columns=("text",), label_column="label")


def default_draft(table: pd.DataFrame) -> dict[str, Any]:
    """Guessed columns and no label edits."""
    labels = guess_label_columns(table)
    label = labels[0] if labels else str(table.columns[-1])
    guessed = [c for c in guess_text_columns(table)[:2] if c != label]
    text = [str(c) for c in table.columns if c in guessed] or [
        str(c) for c in table.columns if c != label
    ][:1]
    return {
        "text_columns": text,
        "label_column": label,
        "rename": {},
        "drop": [],
        "label_edits": {},
        **{name: getattr(SCHEME_DEFAULTS, name) for name in _RULE_FIELDS},
        "split": "random",
        "split_column": None,
        "test_upload_id": None,
    }


def get_draft(upload_id: str, table: pd.DataFrame) -> dict[str, Any]:
    """This tab's draft, else the saved one (after a refresh), else guesses."""
    drafts = st.session_state.setdefault(_DRAFTS, {})
    if upload_id not in drafts:
        saved = get_workspace().load_draft(upload_id) or {}
        draft = {**default_draft(table), **saved}
        columns = {str(c) for c in table.columns}
        draft["text_columns"] = [c for c in draft["text_columns"] if c in columns]
        if draft["label_column"] not in columns:
            draft["label_column"] = default_draft(table)["label_column"]
        drafts[upload_id] = draft
    return dict(drafts[upload_id])


def switch_label_column(draft: dict[str, Any], column: str) -> dict[str, Any]:
    """The draft with ``column`` as the label column and that column's label edits.

    Renames and drops belong to one label column (one label scheme): switching to another column
    puts them aside in ``label_edits`` and switching back brings them back.
    """
    old = draft["label_column"]
    if column == old:
        return dict(draft)
    edits = dict(draft.get("label_edits") or {})
    if draft.get("rename") or draft.get("drop"):
        edits[old] = {
            "rename": dict(draft.get("rename") or {}),
            "drop": list(draft.get("drop") or []),
        }
    else:
        edits.pop(old, None)
    restored = edits.pop(column, {})
    return {
        **draft,
        "label_column": column,
        "rename": dict(restored.get("rename") or {}),
        "drop": list(restored.get("drop") or []),
        "label_edits": edits,
    }


def forget_tab_draft(upload_id: str) -> None:
    """Drop this tab's copy of the draft, so the next read starts from the saved one."""
    st.session_state.get(_DRAFTS, {}).pop(upload_id, None)


def store_draft(upload_id: str, draft: dict[str, Any]) -> None:
    """Keep the draft in the session and, when it changed, in the workspace."""
    drafts = st.session_state.setdefault(_DRAFTS, {})
    if drafts.get(upload_id) != draft or not get_workspace().load_draft(upload_id):
        get_workspace().save_draft(upload_id, draft)
    drafts[upload_id] = dict(draft)


def save_checked_upload(data: bytes, filename: str) -> str:
    """Save an upload and check it can be read; DataError (and nothing kept) if it cannot."""
    workspace = get_workspace()
    upload_id = workspace.save_upload(data, filename)
    try:
        load_table(upload_id)
    except DataError:
        workspace.delete_upload(upload_id)
        raise
    return upload_id


def start_upload(data: bytes, filename: str, draft: dict[str, Any] | None = None) -> str:
    """Save an upload and make it the current data; a file that cannot be read clears it."""
    try:
        upload_id = save_checked_upload(data, filename)
    except DataError:
        remember_upload(None)
        raise
    if draft is not None and not get_workspace().load_draft(upload_id):
        store_draft(upload_id, {**default_draft(load_table(upload_id)), **draft})
    remember_upload(upload_id)
    return upload_id


def process_upload(uploaded, state_key: str, save) -> tuple[str | None, str | None]:
    """Handle a file-uploader file once (not on every rerun): (upload id, error message)."""
    if uploaded is None:
        return None, None
    seen = st.session_state.get(state_key)
    if not seen or seen[0] != uploaded.file_id:
        try:
            result = (save(uploaded.getvalue(), uploaded.name), None)
        except DataError as exc:
            result = (None, str(exc))
        st.session_state[state_key] = (uploaded.file_id, *result)
    return st.session_state[state_key][1], st.session_state[state_key][2]


def use_sample() -> str:
    """Load the bundled sample tickets with subject + body and category preselected."""
    if not SAMPLE_PATH.is_file():
        raise DataError("The sample tickets are missing from this installation (assets/).")
    return start_upload(SAMPLE_PATH.read_bytes(), SAMPLE_PATH.name, draft=dict(SAMPLE_DRAFT))


def scheme_from_draft(draft: dict[str, Any]) -> LabelScheme:
    return LabelScheme.from_dict({name: draft[name] for name in SCHEME_FIELDS if name in draft})


def raw_label_counts(table: pd.DataFrame, column: str) -> pd.Series:
    """Tickets per original label (empty cells left out), largest first."""
    labels = pd.Series([cell_to_str(v).strip() for v in table[column]], dtype=object)
    counts = labels[labels != ""].value_counts()
    return counts.sort_index(kind="stable").sort_values(ascending=False, kind="stable")


@dataclass
class Prepared:
    """What the Data page shows and the Train page uses."""

    prepared: PreparedData
    report: DataReport
    lengths: list[int]
    split_error: str | None


def split_settings(draft: dict[str, Any]) -> tuple[str | None, str | None]:
    """(split column, test upload id) as the draft says."""
    mode = draft.get("split", "random")
    column = draft.get("split_column") if mode == "column" else None
    test_id = draft.get("test_upload_id") if mode == "file" else None
    return column, test_id


def prepare(upload_id: str, draft: dict[str, Any]) -> Prepared:
    """Apply the draft's scheme and build the report (cached per upload and draft)."""
    key = json.dumps(draft, sort_keys=True, default=str)
    return _prepare(str(get_workspace().root), upload_id, key)


@st.cache_resource(show_spinner="Checking your tickets…", max_entries=8)
def _prepare(workspace_root: str, upload_id: str, draft_json: str) -> Prepared:
    draft = json.loads(draft_json)
    table = load_table(upload_id)
    scheme = scheme_from_draft(draft)
    prepared = scheme.apply(table)
    split, split_error = None, None
    column, test_id = split_settings(draft)
    try:
        split = split_prepared(
            prepared,
            table,
            scheme,
            config=TrainConfig(),
            split_column=column,
            test_table=load_table(test_id) if test_id else None,
        )
    except TicketTuneError as exc:
        split_error = str(exc)
    report = build_report(prepared, split=split)
    lengths = [len(text.split()) for text in prepared.frame["text"]]
    return Prepared(prepared, report, lengths, split_error)
