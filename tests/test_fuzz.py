"""Property-based tests: hostile files and tables end in a valid result or a clear message.

The budget is the "ci" profile of tests/strategies.py (a few seconds per test); set
HYPOTHESIS_PROFILE=long, or run ``python -m bench.fuzz_long``, for a long search. Every bug the
search found is pinned with an ``@example`` so it stays fixed.
"""

from __future__ import annotations

import os

import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.strategies import (
    check_cli,
    check_read_table,
    check_scheme,
    check_scoring,
    frames,
    table_file,
)

settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

columns_picked = st.lists(st.integers(0, 10), min_size=1, max_size=3)


@given(table_file())
@example((b"text,label\n\x00,a\n", "t.csv"))
@example((b"\xff\xfe" + "text,label\n".encode("utf-16-le") + b"\x00", "t.csv"))
@example((("a,b\n" + "x," * 3000 + "\n").encode(), "t.csv"))
def test_read_table_gives_a_table_or_a_clear_error(file):
    check_read_table(*file)


@given(
    frames(),
    columns_picked,
    st.integers(0, 10),
    st.sampled_from([1, 1, 2, 3, 0, -1]),
    st.booleans(),
)
@example(pd.DataFrame({"t": ["a b", "c"], "l": [" ", 1.0]}), [0], 1, 1, False)
@example(pd.DataFrame([["x", "y"]], columns=["t", "t"]), [0], 1, 1, False)
@example(pd.DataFrame({"t": ["a", "b"]}), [0], 0, 1, False)  # the label column is the text
def test_label_scheme_gives_prepared_data_or_a_clear_error(frame, text, label, minimum, drop):
    check_scheme(frame, text, label, minimum, drop)


@pytest.fixture(scope="module")
def predictor(trained_run):
    from core.inference import Predictor

    return Predictor.load(trained_run.path)


@given(frame=frames(), text=columns_picked)
@example(frame=pd.DataFrame([["a", "b"]], columns=["x", "x"]), text=[0])
@example(frame=pd.DataFrame({"x": [None, 1.5, "  "]}), text=[0])
@example(frame=pd.DataFrame(), text=[0])
def test_scoring_keeps_every_row_or_says_why(predictor, frame, text):
    check_scoring(predictor, frame, text)


@given(file=table_file(), command=st.sampled_from(["predict", "evaluate"]))
@example(file=(b"ticket,team\n=1+1,billing\n", "t.csv"), command="predict")
@example(file=(b"\x89PNG\r\n", "t.csv"), command="evaluate")
@example(file=(b"\x01\x0b!", "t.csv"), command="predict")  # was a two-line error
@example(file=(b"text,\x1b[2J\n\x1b[2J,b\n", "t.csv"), command="predict")
def test_cli_exits_0_or_2_with_one_line(trained_run, file, command):
    check_cli(str(trained_run.path), *file, command)
