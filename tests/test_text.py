"""Cells and rows as text: one way for training, scoring and everything else."""

from __future__ import annotations

import pandas as pd

from core.text import cell_to_str


def test_cell_to_str_normalises_values():
    """Cells from any source become text the same way."""
    values = [None, float("nan"), pd.NA, 3.0, 2.5, True, "x", {"a": 1}]
    assert [cell_to_str(v) for v in values] == ["", "", "", "3", "2.5", "true", "x", '{"a": 1}']
