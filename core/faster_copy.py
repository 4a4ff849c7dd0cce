"""The app's side of "Make a faster copy of this model": which copies a run allows, the extra
unlabelled tickets of a file, and the figures the Review page shows (read from the
``metrics["distillation"]`` that core.distill writes at the end of the job).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from core.config import TrainConfig
from core.continual import parent_run
from core.errors import ConfigError
from core.runs import Run

#: Below this speed-up the copy is not worth calling faster (timing noise on a busy machine).
NOTICEABLE_SPEEDUP = 1.1


def teacher_layers(run: Run | str | Path) -> int:
    """How many transformer layers the run's model has (read from its saved config)."""
    from transformers import AutoConfig

    teacher = parent_run(run.path if isinstance(run, Run) else run)
    config = AutoConfig.from_pretrained(teacher.model_dir, trust_remote_code=False)
    return int(config.num_hidden_layers)


def student_layer_choices(run: Run | str | Path) -> tuple[list[int], int]:
    """The layer counts a faster copy of ``run`` can keep (fewer than the teacher's), and the
    default one (TrainConfig's, or the largest allowed when the teacher is shallower)."""
    choices = list(range(1, teacher_layers(run)))
    if not choices:
        raise ConfigError("This model has a single layer: there is no smaller copy to make.")
    return choices, min(TrainConfig.student_layers, choices[-1])


def unlabelled_from_table(
    run: Run | str | Path, table: pd.DataFrame, text_columns: Sequence[str] | None = None
) -> tuple[str, ...]:
    """The non-empty ticket texts of ``table``, read the way the teacher reads them: from its
    text columns unless ``text_columns`` names others. DataError names a column the file lacks."""
    from core.schema import LabelScheme
    from core.text import ticket_texts

    if not text_columns:
        teacher = parent_run(run.path if isinstance(run, Run) else run)
        text_columns = LabelScheme.from_dict(teacher.read_json("scheme.json")).text_columns
    return tuple(t for t in ticket_texts(table, text_columns) if t)


@dataclass(frozen=True)
class SpeedUp:
    """The Review page's figures for a faster copy (macro-F1 as 0–1 shares)."""

    teacher_run: str
    teacher_layers: int | None
    student_layers: int
    teacher_macro_f1: float | None
    student_macro_f1: float | None
    kept: float | None
    teacher_speed: float | None
    student_speed: float | None
    speedup: float | None
    unlabelled_tickets: int

    @property
    def noticeably_faster(self) -> bool:
        return self.speedup is not None and self.speedup >= NOTICEABLE_SPEEDUP

    @property
    def change_points(self) -> float | None:
        """Copy minus teacher macro-F1, in points."""
        if self.teacher_macro_f1 is None or self.student_macro_f1 is None:
            return None
        return (self.student_macro_f1 - self.teacher_macro_f1) * 100


def speed_up(metrics: dict[str, Any]) -> SpeedUp | None:
    """The figures a distilled run's metrics hold, or None for any other run."""
    facts = metrics.get("distillation")
    if not isinstance(facts, dict):
        return None

    def number(key: str) -> float | None:
        value = facts.get(key)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return float(value) if ok else None

    layers = number("teacher_layers")
    return SpeedUp(
        teacher_run=Path(str(facts.get("teacher_run") or "")).name,
        teacher_layers=int(layers) if layers is not None else None,
        student_layers=int(number("student_layers") or 0),
        teacher_macro_f1=number("teacher_macro_f1"),
        student_macro_f1=number("student_macro_f1"),
        kept=number("macro_f1_kept"),
        teacher_speed=number("teacher_tickets_per_second"),
        student_speed=number("student_tickets_per_second"),
        speedup=number("speedup"),
        unlabelled_tickets=int(number("unlabelled_tickets") or 0),
    )
