"""From the uploaded table(s) and the label scheme to the prepared tickets and their split.

The one place that decides how a training run's tickets are prepared and split, so the Data
page (which shows the split before training) and the pipeline (which trains on it) cannot
disagree. A separate test file keeps every ticket with a known label: the minimum tickets per
label only decides which labels the model learns, and that is the main file's job.
"""

from __future__ import annotations

import dataclasses

import pandas as pd

from core.config import TrainConfig
from core.errors import DataError
from core.schema import LabelScheme, PreparedData
from core.split import DataSplit, split_data


def prepare_test_file(test_table: pd.DataFrame, scheme: LabelScheme) -> PreparedData:
    """The test file's tickets under ``scheme`` with no minimum per label.

    DataError "In the test file: …" when the file cannot be used.
    """
    try:
        return dataclasses.replace(scheme, min_count=1).apply(test_table)
    except DataError as exc:
        raise DataError(f"In the test file: {exc}") from exc


def split_prepared(
    prepared: PreparedData,
    table: pd.DataFrame,
    scheme: LabelScheme,
    *,
    config: TrainConfig,
    split_column: str | None = None,
    test_table: pd.DataFrame | None = None,
) -> DataSplit:
    """Split already prepared tickets (of ``table``) as the run will: fractions and seed from
    ``config``, a split column of ``table``, or a separate test file."""
    test_data = prepare_test_file(test_table, scheme) if test_table is not None else None
    return split_data(
        prepared,
        validation_fraction=config.validation_fraction,
        test_fraction=config.test_fraction,
        seed=config.seed,
        split_column=split_column,
        source=table,
        test_data=test_data,
    )


def prepare_split(
    table: pd.DataFrame,
    scheme: LabelScheme,
    *,
    config: TrainConfig,
    split_column: str | None = None,
    test_table: pd.DataFrame | None = None,
) -> tuple[PreparedData, DataSplit]:
    """Apply ``scheme`` to ``table`` and split the result (see :func:`split_prepared`)."""
    prepared = scheme.apply(table)
    split = split_prepared(
        prepared, table, scheme, config=config, split_column=split_column, test_table=test_table
    )
    return prepared, split
