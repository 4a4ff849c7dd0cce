"""Progress events: the one way a long step tells the outside world how far it got."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class ProgressEvent:
    """One update from a running job.

    ``stage`` is a short machine name ("preparing", "baseline", "embedding", "training",
    "evaluating", "saving"); ``message`` is a line for the analyst's event log.
    """

    stage: str
    message: str | None = None
    step: int = 0
    total_steps: int = 0
    epoch: float = 0.0
    loss: float | None = None
    eval_metrics: dict[str, float] | None = None
    eta_seconds: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def fraction(self) -> float:
        return min(1.0, self.step / self.total_steps) if self.total_steps else 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


ProgressCallback = Callable[[ProgressEvent], None]


def ignore_progress(event: ProgressEvent) -> None:
    """A ProgressCallback for callers that do not watch progress."""
