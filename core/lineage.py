"""Where a run came from: retrained from, distilled from or relabelled from an earlier run.

Every run started from another one says so in its status.json:

- retrained with new tickets (continual learning): ``parent_run`` = the parent's folder,
- a faster copy (distillation): ``teacher_run`` = the teacher's folder,
- label changes applied (the review loop): ``parent_run`` = the parent's id and
  ``decisions_version``.

This module reads those fields (one place for all three) and builds the family of every run in
a store. A parent that was deleted leaves its children listed as they were: they keep the
parent's id and the name it had when they started (``parent_name``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

from core.errors import RunNotFoundError
from core.runs import Run, RunStore

RETRAINED, DISTILLED, RELABELLED = "retrained", "distilled", "relabelled"
#: How each kind reads in a sentence: "retrained from ‹run›".
VERBS: dict[str, str] = {
    RETRAINED: "retrained from",
    DISTILLED: "faster copy of",
    RELABELLED: "relabelled from",
}
#: How a child reads in a list of runs built on a parent: "‹name› (faster copy)".
SHORT: dict[str, str] = {RETRAINED: "retrained", DISTILLED: "faster copy", RELABELLED: "relabelled"}
PARENT_NAME_FIELD = "parent_name"
_PARENT_FIELD, _TEACHER_FIELD, _DECISIONS_FIELD = "parent_run", "teacher_run", "decisions_version"


@dataclass(frozen=True)
class Origin:
    """The run a run was built from, and how."""

    kind: str
    parent_id: str
    #: The parent's name when the child started (None for runs that did not record it).
    recorded_name: str | None = None

    @property
    def verb(self) -> str:
        return VERBS[self.kind]


def _run_id(value: Any) -> str | None:
    """A run id from a status field that holds either the id or the run's folder."""
    if not isinstance(value, str) or not value.strip():
        return None
    return PurePath(value.replace("\\", "/")).name or None


def origin_of(status: Mapping[str, Any]) -> Origin | None:
    """The origin a status.json records, or None for a run trained from scratch."""
    name = status.get(PARENT_NAME_FIELD)
    name = str(name) if isinstance(name, str) and name.strip() else None
    teacher = _run_id(status.get(_TEACHER_FIELD))
    if teacher:
        return Origin(DISTILLED, teacher, name)
    parent = _run_id(status.get(_PARENT_FIELD))
    if parent is None:
        return None
    kind = RELABELLED if status.get(_DECISIONS_FIELD) is not None else RETRAINED
    return Origin(kind, parent, name)


def origin_fields(parent: Run) -> dict[str, Any]:
    """Status fields a child run records about its parent beyond its config (its name, so the
    child's listing still reads well after the parent is deleted)."""
    try:
        name = parent.status().get("name")
    except RunNotFoundError:
        name = None
    return {PARENT_NAME_FIELD: str(name) if name else parent.id}


@dataclass(frozen=True)
class Family:
    """Parents and children of every run of a store (read once, for one page view)."""

    origins: Mapping[str, Origin] = field(default_factory=dict)
    names: Mapping[str, str] = field(default_factory=dict)

    def origin(self, run_id: str) -> Origin | None:
        return self.origins.get(run_id)

    def exists(self, run_id: str) -> bool:
        return run_id in self.names

    def name(self, run_id: str, recorded: str | None = None) -> str:
        """The run's current name; for a deleted run the recorded name or its id."""
        return self.names.get(run_id) or recorded or run_id

    def children(self, run_id: str) -> list[tuple[str, Origin]]:
        """Runs built on ``run_id``, in id order (ids start with the start time)."""
        kids = [(child, o) for child, o in self.origins.items() if o.parent_id == run_id]
        return sorted(kids)

    def came_from(self, run_id: str) -> str:
        """ "retrained from ‹name›", "faster copy of ‹name› (deleted)" or ""."""
        origin = self.origin(run_id)
        if origin is None:
            return ""
        gone = "" if self.exists(origin.parent_id) else " (deleted)"
        return f"{origin.verb} {self.name(origin.parent_id, origin.recorded_name)}{gone}"

    def built_on(self, run_id: str) -> str:
        """ "‹name› (retrained), ‹name› (faster copy)" or ""."""
        return ", ".join(
            f"{self.name(child)} ({SHORT[origin.kind]})" for child, origin in self.children(run_id)
        )


def family(store: RunStore, runs: Iterable[Run] | None = None) -> Family:
    """The family of every run in ``store`` (or of ``runs``)."""
    origins: dict[str, Origin] = {}
    names: dict[str, str] = {}
    for run in store.runs() if runs is None else runs:
        try:
            status = run.status()
        except RunNotFoundError:  # damaged: it exists, but its name and family are unknown
            names[run.id] = ""
            continue
        names[run.id] = str(status.get("name") or run.id)
        origin = origin_of(status)
        if origin is not None:
            origins[run.id] = origin
    return Family(origins, names)
