"""How cells become text: one home for turning a cell, and a row's text columns, into a ticket.

Training (:meth:`core.schema.LabelScheme.apply`), scoring (:mod:`core.scoring`) and every other
place that needs a ticket's text call :func:`ticket_texts`, so a model is always shown the same
text for the same row, whichever path the table took (a file read by :mod:`core.tables`, or a
DataFrame of numbers and NaN built in code).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from core.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

#: What goes between the parts of a ticket (subject, body, …).
PART_SEPARATOR = "\n"


def cell_to_str(value: Any) -> str:
    """How TicketTune turns one cell into text: missing is "", 12.0 is "12", lists are JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    if value is None:
        return ""
    import pandas as pd  # here, not at the top: `python -m core --help` does not load pandas

    if pd.isna(value):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value)


def clean_cells(values: Iterable[Any]) -> list[str]:
    """Each cell as stripped text (labels, split values, text parts)."""
    return [cell_to_str(value).strip() for value in values]


def ticket_texts(table: pd.DataFrame, text_columns: Sequence[str]) -> list[str]:
    """Each row's ticket text: its non-empty text cells, stripped, joined by a line break.

    A row whose text cells are all empty gives "". DataError names the columns the table lacks.
    """
    columns = [str(column) for column in text_columns]
    present = [str(column) for column in table.columns]
    missing = [column for column in columns if column not in present]
    if missing:
        noun = "column" if len(missing) == 1 else "columns"
        raise DataError(
            f"The file has no {noun} {', '.join(repr(c) for c in missing)}, which the model "
            f"reads. Columns in the file: {', '.join(present)}."
        )
    repeated = [column for column in columns if present.count(column) > 1]
    if repeated:
        raise DataError(
            f"The table has more than one column named {', '.join(repr(c) for c in repeated)}. "
            "Rename them so each name is different."
        )
    if not columns:
        return [""] * len(table)
    by_name = dict(zip(present, table.columns, strict=True))
    parts = [clean_cells(table[by_name[column]]) for column in columns]
    return [PART_SEPARATOR.join(part for part in row if part) for row in zip(*parts, strict=True)]
