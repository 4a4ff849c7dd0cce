"""Splitting prepared tickets: stratified, by a split column, with a test file; the errors."""

from __future__ import annotations

import pandas as pd
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from core.errors import ConfigError, DataError
from core.schema import LabelScheme, PreparedData
from core.split import SPLIT_COLUMN_VALUES, split_data


def prepare(labels: list[str], extra: dict[str, list[str]] | None = None) -> PreparedData:
    df = pd.DataFrame(
        {"body": [f"ticket {i} about {label}" for i, label in enumerate(labels)], "label": labels}
    )
    for name, values in (extra or {}).items():
        df[name] = values
    return LabelScheme(("body",), "label", min_count=1).apply(df)


def uneven() -> PreparedData:
    return prepare(["a"] * 100 + ["b"] * 50 + ["c"] * 30 + ["d"] * 20)


def test_default_split_sizes_and_columns():
    """80/10/10 by default; every set has the PreparedData columns; no ticket is in two sets."""
    split = split_data(uneven())
    assert split.sizes() == {"train": 160, "validation": 20, "test": 20}
    assert split.strategy == "stratified"
    for part in (split.train, split.validation, split.test):
        assert list(part.columns) == ["row", "text", "label"]
    rows = [*split.train["row"], *split.validation["row"], *split.test["row"]]
    assert sorted(rows) == list(range(200))


def test_split_is_stratified():
    """Each set keeps the label proportions of the whole."""
    split = split_data(uneven())
    assert split.test["label"].value_counts().to_dict() == {"a": 10, "b": 5, "c": 3, "d": 2}
    expected_validation = {"a": 10, "b": 5, "c": 3, "d": 2}
    assert split.validation["label"].value_counts().to_dict() == expected_validation


def test_split_is_reproducible_by_seed():
    """The same seed gives the same split; another seed gives a different one."""
    prepared = uneven()
    first, again = split_data(prepared, seed=7), split_data(prepared, seed=7)
    other = split_data(prepared, seed=8)
    assert first.test["row"].tolist() == again.test["row"].tolist()
    assert first.validation["row"].tolist() == again.validation["row"].tolist()
    assert first.test["row"].tolist() != other.test["row"].tolist()


def test_fractions_are_respected():
    """Custom shares give the matching set sizes; a zero share gives an empty set."""
    split = split_data(uneven(), validation_fraction=0.0, test_fraction=0.25)
    assert split.sizes() == {"train": 150, "validation": 0, "test": 50}


def test_tiny_labels_stay_in_train_without_crashing():
    """Labels with one or two tickets do not break the split and always keep one in train."""
    prepared = prepare(["a"] * 30 + ["b"] * 20 + ["solo"] + ["pair"] * 2)
    split = split_data(prepared)
    assert set(split.train["label"]) == {"a", "b", "solo", "pair"}
    assert "solo" not in set(split.validation["label"]) | set(split.test["label"])
    assert split.labels == ["a", "b", "pair", "solo"]


def test_test_set_smaller_than_label_count_is_fine():
    """A test set with fewer tickets than labels (sklearn would refuse) still splits."""
    labels = [f"l{i}" for i in range(8) for _ in range(3)]
    split = split_data(prepare(labels), test_fraction=0.1)
    assert split.sizes()["test"] == 2
    assert set(split.train["label"]) == set(labels)


def test_every_label_singleton_cannot_be_split():
    """If no label has a ticket to spare, the error names them and suggests what to change."""
    with pytest.raises(DataError, match="Too few tickets to set aside") as info:
        split_data(prepare([f"l{i}" for i in range(12)]))
    assert "minimum examples per label" in str(info.value)
    assert "l0 (1)" in str(info.value)


def test_repeated_texts_that_cannot_be_split_are_named_as_the_reason():
    """Labels big enough, but only a few distinct texts (copies stay in one set): the message
    says so instead of blaming label sizes with an empty list."""
    labels = ["a", "b", "c"] * 10
    frame = pd.DataFrame({"body": ["same words"] * 15 + ["other words"] * 15, "label": labels})
    prepared = LabelScheme(("body",), "label", min_count=1).apply(frame)
    with pytest.raises(DataError, match="only 2 different texts") as info:
        split_data(prepared)
    assert "()" not in str(info.value)


def test_too_few_rows_overall():
    """Fewer than 10 usable tickets is refused, saying how many are needed."""
    with pytest.raises(DataError, match=r"Only 9 usable tickets .* at least 10"):
        split_data(prepare(["a", "b", "c"] * 3))


@pytest.mark.parametrize(("validation", "test"), [(-0.1, 0.1), (0.1, 1.0), (0.5, 0.5), (0.7, 0.4)])
def test_bad_fractions_are_refused(validation, test):
    """Shares outside [0, 1) or leaving nothing for training are a ConfigError."""
    with pytest.raises(ConfigError, match="split settings"):
        split_data(uneven(), validation_fraction=validation, test_fraction=test)


def column_case(values: list[str]) -> tuple[PreparedData, pd.DataFrame]:
    labels = ["a", "b"] * (len(values) // 2)
    df = pd.DataFrame(
        {"body": [f"t{i}" for i in range(len(values))], "label": labels, "set": values}
    )
    return LabelScheme(("body",), "label", min_count=1).apply(df), df


def test_split_column_with_synonyms_and_any_case():
    """'Train', 'VALID', 'dev', ' test ' are understood; rows follow the column exactly."""
    values = ["Train"] * 12 + ["VALID", "dev"] + [" test ", "Test"] + ["training"] * 4
    prepared, source = column_case(values)
    split = split_data(prepared, split_column="set", source=source)
    assert split.strategy == "column"
    assert split.sizes() == {"train": 16, "validation": 2, "test": 2}
    assert split.test["row"].tolist() == [14, 15]
    assert "dev" in SPLIT_COLUMN_VALUES["validation"]


def test_split_column_is_aligned_through_dropped_rows():
    """Rows dropped by the scheme do not shift which set a ticket goes to."""
    values = ["train"] * 10 + ["test"] * 4 + ["val"] * 2
    df = pd.DataFrame(
        {"body": ["", *[f"t{i}" for i in range(1, 16)]], "label": ["a", "b"] * 8, "set": values}
    )
    prepared = LabelScheme(("body",), "label", min_count=1).apply(df)
    split = split_data(prepared, split_column="set", source=df)
    assert split.test["row"].tolist() == [10, 11, 12, 13]
    assert split.validation["row"].tolist() == [14, 15]


def test_split_column_without_validation_carves_it_from_train():
    """With no validation rows, the validation share is taken out of the training rows."""
    prepared, source = column_case(["train"] * 40 + ["test"] * 10)
    split = split_data(prepared, split_column="set", source=source, validation_fraction=0.1)
    assert split.sizes() == {"train": 36, "validation": 4, "test": 10}
    assert set(split.validation["row"]) < set(range(40))


def test_split_column_unknown_values_are_listed():
    """Values that are not train/validation/test are listed with counts and the accepted ones."""
    prepared, source = column_case(["train"] * 10 + ["holdout"] * 3 + [""] * 3)
    with pytest.raises(DataError, match="does not understand") as info:
        split_data(prepared, split_column="set", source=source)
    message = str(info.value)
    assert "'holdout' (3 rows)" in message
    assert "(empty) (3 rows)" in message
    assert "validation, valid, val, dev" in message


def test_split_column_that_does_not_exist():
    """A split column missing from the file is named along with the columns there are."""
    prepared, source = column_case(["train"] * 12)
    with pytest.raises(DataError, match=r"No column named 'fold'.*body, label, set"):
        split_data(prepared, split_column="fold", source=source)


def test_split_column_drops_test_labels_unseen_in_train():
    """Test tickets whose label never occurs in train are dropped and counted."""
    df = pd.DataFrame(
        {
            "body": [f"t{i}" for i in range(16)],
            "label": ["a", "b"] * 6 + ["a", "b", "new", "new"],
            "set": ["train"] * 12 + ["test"] * 4,
        }
    )
    prepared = LabelScheme(("body",), "label", min_count=1).apply(df)
    split = split_data(prepared, split_column="set", source=df)
    assert split.dropped_unknown_test_labels == 2
    assert split.unknown_test_labels == {"new": 2}
    assert split.test["label"].tolist() == ["a", "b"]


def test_separate_test_file():
    """With a test file, the main data gives train/validation and the file is the test set."""
    main = uneven()
    test = prepare(["a"] * 5 + ["b"] * 5 + ["zzz"] * 3)
    split = split_data(main, test_data=test)
    assert split.strategy == "test file"
    assert split.sizes() == {"train": 180, "validation": 20, "test": 10}
    assert split.dropped_unknown_test_labels == 3
    assert split.unknown_test_labels == {"zzz": 3}


def test_test_file_with_no_known_labels_is_an_error():
    """A test file sharing no label with the training data is refused with both label lists."""
    with pytest.raises(DataError, match="test file labels: x, y; training labels: a, b, c, d"):
        split_data(uneven(), test_data=prepare(["x", "y"] * 3))


def test_split_column_and_test_file_together_are_refused():
    """Only one way to define the test set may be used at a time."""
    prepared, source = column_case(["train"] * 12)
    with pytest.raises(ConfigError, match="not both"):
        split_data(prepared, split_column="set", source=source, test_data=prepared)


def test_random_split_keeps_copies_of_a_text_together():
    """Duplicated texts never land on both sides of a random split (no leakage by design)."""
    df = pd.DataFrame({"body": ["same text"] * 10 + [f"t{i}" for i in range(30)]})
    df["label"] = ["a", "b"] * 20
    split = split_data(LabelScheme(("body",), "label", min_count=1).apply(df), test_fraction=0.3)
    assert split.leakage() == 0
    assert not set(split.train["text"]) & set(split.validation["text"])
    assert len(split.test) > 0 and sum(split.sizes().values()) == 40


def test_leakage_counts_texts_in_train_and_test():
    """leakage() counts distinct texts present in both train and test (a user's split column)."""
    df = pd.DataFrame({"body": ["same text", "same text"] + [f"t{i}" for i in range(18)]})
    df["label"] = ["a", "b"] * 10
    df["set"] = ["train", "test"] + ["train"] * 12 + ["test"] * 6
    prepared = LabelScheme(("body",), "label", min_count=1).apply(df)
    split = split_data(prepared, split_column="set", source=df)
    assert split.leakage() == 1


def test_sample_is_learnable(sample_table):
    """On the sample tickets, TF-IDF + logistic regression beats 0.75 test accuracy."""
    prepared = LabelScheme(("subject", "body"), "category").apply(sample_table)
    split = split_data(prepared, test_fraction=0.2)
    vectorizer = TfidfVectorizer(sublinear_tf=True)
    model = LogisticRegression(max_iter=1000)
    model.fit(vectorizer.fit_transform(split.train["text"]), split.train["label"])
    predictions = model.predict(vectorizer.transform(split.test["text"]))
    accuracy = (predictions == split.test["label"].to_numpy()).mean()
    assert accuracy >= 0.75
