"""What a training job is asked to do: a new run from a table, or resuming a run.

Kept apart from ``core.pipeline`` (which loads torch and transformers) so the Train page and the
command line can build a request without waiting for those imports.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from core.config import TrainConfig
from core.schema import LabelScheme


@dataclass
class TrainingRequest:
    """Everything a run needs: the uploaded table, how to read it, and how to train."""

    table: pd.DataFrame
    scheme: LabelScheme
    config: TrainConfig
    test_table: pd.DataFrame | None = None
    split_column: str | None = None
    source_name: str = ""
    test_source_name: str = ""
    #: Extra tickets without labels; distillation learns the teacher's guesses on them too.
    unlabelled_texts: tuple[str, ...] = ()

    def describe(self) -> dict[str, Any]:
        """What goes into the run's status so the runs list can show it before it finishes."""
        return {
            "method": self.config.method,
            "model": self.config.model,
            "label_column": self.scheme.label_column,
            "source": self.source_name,
            "parent_run": self.config.parent_run,
            "teacher_run": self.config.teacher_run,
        }


@dataclass(frozen=True)
class ResumeRequest:
    """Continue a run from its saved checkpoint: same folder, settings and split."""
