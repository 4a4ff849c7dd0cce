"""The app's shared objects and the little state a browser tab keeps.

* One ``RunStore`` and one ``JobManager`` per runs folder, in ``st.cache_resource``: they outlive
  browser refreshes and are shared by every tab, so a refresh or a second tab sees the same job.
* Loaded tables and predictors are cached the same way (read-only; never mutate them).
* Per tab: the run being watched or reviewed (``?run=``), the current upload (``?data=``) and
  the browser session's id (``?session=``; whose jobs these are when nobody signs in, see
  ``ui.auth.owner_id``). They live in ``st.session_state`` and in the URL;
  :func:`sync_query_params`, called by the entrypoint on every run, puts them back after
  ``st.navigation`` clears the URL on a page switch and reads them after a refresh.
"""

from __future__ import annotations

import threading
import weakref
from typing import TYPE_CHECKING

import pandas as pd
import streamlit as st

from core.auth import is_session_id, new_session_id
from core.errors import RunNotFoundError
from core.jobs import JobManager
from core.runs import Run, RunStore, default_runs_dir
from core.tables import TableRead, read_table_details
from core.workspace import Workspace, default_workspace_dir, is_upload_id

if TYPE_CHECKING:  # torch and transformers load only when a page needs a model
    from core.inference import Predictor

RUN_KEY = "run_id"
UPLOAD_KEY = "upload_id"
SESSION_KEY = "browser_session"
QUERY_KEYS = {"run": RUN_KEY, "data": UPLOAD_KEY, "session": SESSION_KEY}
_WRITTEN = "_query_written"
_MANAGERS: weakref.WeakSet[JobManager] = weakref.WeakSet()


# ----------------------------------------------------------------- shared across sessions


def _execute(*args, **kwargs):
    """The pipeline, imported in the job's worker thread on first use: the first page load
    then does not wait for torch and transformers."""
    from core.pipeline import execute

    return execute(*args, **kwargs)


def _import_engine() -> None:
    # torch, transformers, ONNX Runtime, scikit-learn; the model classes (accelerate and what
    # it loads) and the Trainer (peft): a first job once spent minutes importing these while
    # five analysts' pages polled.
    import gc

    import transformers.modeling_utils
    import transformers.models.bert.modeling_bert
    import transformers.trainer  # noqa: F401

    import core.inference
    import core.pipeline  # noqa: F401

    # The ~500,000 objects of these libraries live as long as the server: moved out of the
    # collector's sight, a full collection no longer walks them (0.5 s holding the GIL).
    gc.freeze()


_WARM_UPS: list[threading.Thread] = []


def wait_for_engine_warm_up() -> None:
    """Let a page run only once the warm-up import has finished (at most its remaining few
    seconds, in a server's first moments). transformers' lazily filled top-level module is not
    safe to import from two threads at once: a page opened during the warm-up failed with
    "cannot import name 'AutoConfig' from 'transformers'"."""
    for thread in _WARM_UPS:
        if thread.is_alive():
            with st.spinner("Loading the model libraries (once after the app starts)…"):
                thread.join()


@st.cache_resource(show_spinner=False)
def warm_up_engine() -> threading.Thread:
    """Import the model libraries once per server, in the background, after the first page.

    The first page then shows within a few seconds, and by the time the analyst starts a
    training or opens a model, torch and transformers are (mostly) loaded; a page that needs
    them sooner waits for the import to finish (``wait_for_engine_warm_up``)."""
    thread = threading.Thread(target=_import_engine, name="tickettune-warm-up", daemon=True)
    _WARM_UPS.append(thread)
    thread.start()
    return thread


@st.cache_resource(show_spinner=False)
def _store_for(root: str) -> RunStore:
    return RunStore(root)


@st.cache_resource(show_spinner=False)
def _jobs_for(root: str) -> JobManager:
    manager = JobManager(_store_for(root), _execute)
    _MANAGERS.add(manager)
    return manager


def _root() -> str:
    return str(default_runs_dir().expanduser().resolve())


def get_store() -> RunStore:
    return _store_for(_root())


def get_jobs() -> JobManager:
    """The single job manager of this runs folder (its worker thread never calls st.*)."""
    return _jobs_for(_root())


def get_workspace() -> Workspace:
    return Workspace(default_workspace_dir())


@st.cache_resource(show_spinner="Loading the model…", max_entries=4)
def _predictor_for(root: str, run_id: str) -> Predictor:
    from core.inference import Predictor

    return Predictor.load(RunStore(root).get(run_id).path)


def get_predictor(run_id: str) -> Predictor:
    return _predictor_for(_root(), run_id)


def forget_predictor() -> None:
    """Drop cached models (after a run was deleted)."""
    _predictor_for.clear()


@st.cache_resource(show_spinner="Reading the file…", max_entries=6)
def _table_for(workspace_root: str, upload_id: str, encoding: str | None) -> TableRead:
    data, filename = Workspace(workspace_root).load_upload(upload_id)
    return read_table_details(
        data, filename=filename, max_bytes=max_upload_bytes(), encoding=encoding
    )


def load_table_details(upload_id: str) -> TableRead:
    """The uploaded table and how it was read, in the text encoding the analyst chose for it
    (detected when they chose none). Cached and shared: do not modify the frame."""
    workspace = get_workspace()
    return _table_for(str(workspace.root), upload_id, workspace.load_encoding(upload_id))


def load_table(upload_id: str) -> pd.DataFrame:
    """The uploaded table (cached, shared: do not modify it). DataError if unreadable."""
    return load_table_details(upload_id).frame


def upload_filename(upload_id: str) -> str:
    return get_workspace().load_upload(upload_id)[1]


def max_upload_bytes() -> int:
    return int(st.get_option("server.maxUploadSize")) * 1024 * 1024


def shutdown_all() -> None:
    """Stop every job manager this process created (tests; the atexit hook does it otherwise)."""
    for manager in list(_MANAGERS):
        manager.shutdown(wait=True)
    st.cache_resource.clear()


# -------------------------------------------------------------------- per browser tab


def sync_query_params() -> None:
    """Keep ``?run=`` and ``?data=`` and session state in step (entrypoint, every run).

    A value in the URL that this tab did not write (a refresh, a shared link, a page link with
    query params) wins; a value missing from the URL (cleared by a page switch) is put back.
    """
    written = st.session_state.setdefault(_WRITTEN, {})
    for param, key in QUERY_KEYS.items():
        in_url = st.query_params.get(param)
        if in_url and in_url != written.get(param):
            st.session_state[key] = in_url
        value = st.session_state.get(key)
        if value and in_url != value:
            st.query_params[param] = value
        elif not value and in_url:
            del st.query_params[param]
        written[param] = value
    if not is_session_id(st.session_state.get(SESSION_KEY)):  # first visit, or a mangled URL
        _remember("session", new_session_id())


def browser_session_id() -> str:
    """This tab's browser-session id: made on the first visit, kept in the URL (``?session=``)
    so that a refresh keeps it."""
    value = st.session_state.get(SESSION_KEY)
    if not is_session_id(value):
        value = new_session_id()
        _remember("session", value)
    return value


def _remember(param: str, value: str | None) -> None:
    st.session_state[QUERY_KEYS[param]] = value
    st.session_state.setdefault(_WRITTEN, {})[param] = value
    if value:
        st.query_params[param] = value
    elif param in st.query_params:
        del st.query_params[param]


def current_run_id() -> str | None:
    return st.session_state.get(RUN_KEY)


def remember_run(run_id: str | None) -> None:
    _remember("run", run_id)


def current_upload_id() -> str | None:
    upload_id = st.session_state.get(UPLOAD_KEY)
    return upload_id if is_upload_id(upload_id) else None


def remember_upload(upload_id: str | None) -> None:
    _remember("data", upload_id)


def get_run(run_id: str | None) -> Run | None:
    """The run with this id, or None if it does not exist (deleted, mistyped URL)."""
    if not run_id:
        return None
    try:
        return get_store().get(run_id)
    except RunNotFoundError:
        return None
