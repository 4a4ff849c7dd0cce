"""prepare_split: the one preparation the Data page and the pipeline share."""

import pytest

from core.config import TrainConfig
from core.errors import DataError
from core.preparation import prepare_split, prepare_test_file
from core.schema import LabelScheme
from tests.helpers import topic_frame

SCHEME = LabelScheme(text_columns=("text",), label_column="label")  # minimum 5 per label


def small_test_file():
    """Nine tickets, three per label: fewer than the scheme's minimum per label."""
    frame = topic_frame(3, seed=5).drop(columns="row")
    assert frame["label"].value_counts().max() < SCHEME.min_count
    return frame


def test_a_small_test_file_keeps_every_ticket():
    table = topic_frame(30).drop(columns="row")
    prepared, split = prepare_split(
        table, SCHEME, config=TrainConfig(), test_table=small_test_file()
    )
    assert split.strategy == "test file"
    assert len(split.test) == 9
    assert sorted(split.test["label"].value_counts().tolist()) == [3, 3, 3]
    assert len(split.train) + len(split.validation) == len(prepared.frame) == 90


def test_the_test_file_uses_the_label_edits_of_the_scheme():
    scheme = LabelScheme(("text",), "label", rename={"login": "access"}, drop=("shipping",))
    prepared = prepare_test_file(small_test_file(), scheme)
    assert sorted(prepared.labels) == ["access", "billing"]
    assert prepared.dropped["label dropped by you"] == 3


def test_an_unusable_test_file_says_so():
    with pytest.raises(DataError, match=r"^In the test file: "):
        prepare_test_file(small_test_file().drop(columns="label"), SCHEME)


def test_the_split_follows_the_config():
    table = topic_frame(30).drop(columns="row")
    _, a = prepare_split(table, SCHEME, config=TrainConfig(seed=1, test_fraction=0.2))
    _, b = prepare_split(table, SCHEME, config=TrainConfig(seed=2, test_fraction=0.2))
    assert len(a.test) == len(b.test) == 18
    assert list(a.test["row"]) != list(b.test["row"])
