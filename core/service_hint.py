"""How to start the scoring service for a run and call it: the text the Use page shows.

Kept apart from core.serving so the app can show it without importing FastAPI.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass

from core.runs import Run

DEFAULT_PORT = 8000
API_KEY_ENV = "TICKETTUNE_API_KEY"


def run_text_columns(run: Run) -> list[str]:
    """The columns the run's model reads, joined into one text (``["text"]`` if unknown)."""
    scheme = run.read_json("scheme.json", default={}) or {}
    columns = scheme.get("text_columns") if isinstance(scheme, dict) else None
    return [str(c) for c in columns] if columns else ["text"]


@dataclass(frozen=True)
class ServiceHint:
    command: str
    curl: str


def service_hint(run: Run, *, port: int = DEFAULT_PORT) -> ServiceHint:
    """The shell command that serves ``run`` and a curl call labelling one example ticket."""
    command = f"python -m core serve {shlex.quote(str(run.path))} --port {port}"
    ticket = {column: f"<{column}>" for column in run_text_columns(run)}
    body = json.dumps({"tickets": [ticket]}, ensure_ascii=False)
    curl = (
        f"curl -s http://127.0.0.1:{port}/predict -H 'Content-Type: application/json' \\\n"
        f"  -d {shlex.quote(body)}"
    )
    return ServiceHint(command=command, curl=curl)
