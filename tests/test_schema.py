"""The label scheme: validation, text/label building, drops, merges, rare labels, round trip."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from core.errors import ConfigError, DataError
from core.schema import DROP_REASONS, LabelScheme, PreparedData


def table(labels: list[str], subjects: list[str] | None = None, bodies: list[str] | None = None):
    n = len(labels)
    return pd.DataFrame(
        {
            "id": [str(i) for i in range(n)],
            "subject": subjects if subjects is not None else [f"Subject {i}" for i in range(n)],
            "body": bodies if bodies is not None else [f"Body {i}" for i in range(n)],
            "category": labels,
        }
    )


def scheme(**kwargs) -> LabelScheme:
    return LabelScheme(text_columns=("subject", "body"), label_column="category", **kwargs)


def test_text_joins_non_empty_stripped_parts():
    """Ticket text is subject and body, stripped, joined by a line break, skipping empty parts."""
    df = table(
        ["a", "a", "b", "b"],
        subjects=["  Refund ", "", "Login", "Help"],
        bodies=[" please\n", "Only body", "   ", "me"],
    )
    prepared = scheme(min_count=1).apply(df)
    assert prepared.frame["text"].tolist() == ["Refund\nplease", "Only body", "Login", "Help\nme"]
    assert list(prepared.frame.columns) == ["row", "text", "label", "id"]  # + the id column


def test_empty_texts_and_missing_labels_are_dropped_and_counted():
    """Rows with no text or no label are left out, counted by reason; 'row' keeps file order."""
    df = table(
        ["a", "a", " ", "b", "b", None],
        subjects=["s0", "", "s2", "s3", "s4", "s5"],
        bodies=["b0", "  ", "b2", "b3", "b4", "b5"],
    )
    prepared = scheme(min_count=1).apply(df)
    assert prepared.rows_read == 6
    assert prepared.dropped == {
        "empty text": 1,
        "missing label": 2,
        "label dropped by you": 0,
        "rare label": 0,
    }
    assert tuple(prepared.dropped) == DROP_REASONS
    assert prepared.frame["row"].tolist() == [0, 3, 4]
    assert prepared.labels == ["a", "b"]


def test_labels_are_stripped():
    """' billing ' and 'billing' are the same label."""
    prepared = scheme(min_count=1).apply(table([" billing ", "billing", "login"]))
    assert prepared.label_counts() == {"billing": 2, "login": 1}


def test_rename_and_merge():
    """Renaming maps labels; mapping several to one name merges them."""
    df = table(["Billing", "invoice", "refund", "login"] * 5)
    prepared = scheme(rename={"Billing": "money", "invoice": "money", "refund": "money "}).apply(df)
    assert prepared.label_counts() == {"money": 15, "login": 5}


def test_drop_applies_to_original_labels():
    """Dropped labels are matched before renaming and counted as 'label dropped by you'."""
    df = table(["spam", "billing", "login", "old"] * 5)
    prepared = scheme(drop=("spam",), rename={"old": "spam"}).apply(df)
    assert prepared.dropped["label dropped by you"] == 5
    assert prepared.label_counts() == {"billing": 5, "login": 5, "spam": 5}


def test_rare_labels_dropped():
    """With policy 'drop', labels under min_count are left out and listed with their counts."""
    df = table(["billing"] * 6 + ["login"] * 5 + ["fax"] * 2 + ["telex"])
    prepared = scheme(min_count=5).apply(df)
    assert prepared.rare_labels == {"fax": 2, "telex": 1}
    assert prepared.dropped["rare label"] == 3
    assert prepared.labels == ["billing", "login"]


def test_rare_labels_merged_into_other():
    """With policy 'other', rare labels become the other label and nothing is dropped."""
    df = table(["billing"] * 6 + ["login"] * 5 + ["fax"] * 2 + ["telex"])
    prepared = scheme(min_count=5, rare_policy="other", other_label="misc").apply(df)
    assert prepared.rare_labels == {"fax": 2, "telex": 1}
    assert prepared.dropped["rare label"] == 0
    assert prepared.label_counts() == {"billing": 6, "login": 5, "misc": 3}


def test_rare_counts_are_taken_after_merging():
    """Two small labels merged into one can together reach min_count."""
    df = table(["billing"] * 5 + ["fax"] * 3 + ["telex"] * 2)
    prepared = scheme(rename={"fax": "paper", "telex": "paper"}).apply(df)
    assert prepared.label_counts() == {"billing": 5, "paper": 5}
    assert prepared.rare_labels == {}


def test_one_label_left_is_an_error():
    """If merges/drops leave a single label, the message names it and says what to do."""
    df = table(["billing"] * 6 + ["refund"] * 6)
    with pytest.raises(DataError, match=r"Only one label \('billing'\) is left") as info:
        scheme(rename={"refund": "billing"}).apply(df)
    message = str(info.value)
    assert "at least two labels" in message
    assert "pick another label column" in message
    assert "undo the merges/drops" in message


def test_one_label_after_rare_drop_is_an_error():
    """Dropping rare labels can also leave one label; the message mentions the minimum."""
    df = table(["billing"] * 6 + ["refund"] * 2)
    with pytest.raises(DataError, match="fewer than 5 examples"):
        scheme().apply(df)


def test_no_rows_left_is_an_error():
    """When nothing is usable, the message gives the reasons and the chosen columns."""
    df = table(["", "", ""])
    with pytest.raises(DataError, match="No usable tickets") as info:
        scheme().apply(df)
    assert "3 with missing label" in str(info.value)
    assert "'category'" in str(info.value)


def test_missing_columns_are_listed_with_the_available_ones():
    """A missing column is named, with the file's real columns and what to pick."""
    df = table(["a", "b"]).rename(columns={"body": "text"})
    with pytest.raises(DataError) as info:
        scheme().apply(df)
    assert str(info.value) == (
        "No column named 'body'. Columns in your file: id, subject, text, category. "
        "Pick one of those as the text column."
    )


def test_several_missing_columns_are_all_listed():
    """Missing text and label columns are reported together."""
    with pytest.raises(DataError, match=r"No columns named 'body', 'category'") as info:
        scheme().check_columns(pd.DataFrame({"subject": ["x"]}))
    assert "text and label columns" in str(info.value)


def test_duplicate_chosen_columns_in_table_are_refused():
    """A DataFrame with two columns of the chosen name is refused rather than misread."""
    df = pd.DataFrame([["x", "y", "a"]], columns=["body", "body", "category"])
    with pytest.raises(DataError, match="more than one column named 'body'"):
        LabelScheme(("body",), "category").apply(df)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"text_columns": ()}, "at least one text column"),
        ({"text_columns": ("body", "body")}, "more than once"),
        ({"label_column": "body"}, "both a text column and the label column"),
        ({"label_column": " "}, "pick a label column"),
        ({"min_count": 0}, "at least 1"),
        ({"min_count": 2.5}, "whole number"),
        ({"rare_policy": "keep"}, "'drop' or 'other'"),
        ({"rare_policy": "other", "other_label": " "}, "name for merged rare labels"),
        ({"rename": {"a": ""}}, "renames need a label and a new name"),
    ],
)
def test_invalid_schemes_are_refused(kwargs, fragment):
    """Each inconsistent setting is refused with a ConfigError that says what to fix."""
    base = {"text_columns": ("subject", "body"), "label_column": "category"}
    with pytest.raises(ConfigError, match=fragment):
        LabelScheme(**{**base, **kwargs})


def test_fields_are_normalised_and_scheme_is_hashable():
    """Lists become tuples, a lone text column string is one column, rename is a plain dict."""
    s = LabelScheme(text_columns="body", label_column="category", drop=["spam"], rename={"a ": "b"})
    assert s.text_columns == ("body",)
    assert s.drop == ("spam",)
    assert s.rename == {"a": "b"} and type(s.rename) is dict
    assert hash(s) == hash(LabelScheme(("body",), "category", {"a": "b"}, ("spam",)))


def test_to_dict_from_dict_round_trip_through_json():
    """A scheme survives JSON exactly."""
    original = scheme(
        rename={"Billing": "billing", "invoice": "billing"},
        drop=("spam", "test"),
        min_count=3,
        rare_policy="other",
        other_label="misc",
    )
    restored = LabelScheme.from_dict(json.loads(json.dumps(original.to_dict())))
    assert restored == original
    assert restored.to_dict() == original.to_dict()


def test_labels_after_mapping_previews_the_final_labels():
    """The preview applies drops, renames and the rare policy to a label column."""
    raw = ["billing"] * 5 + ["invoice"] * 5 + ["spam"] * 9 + ["fax", "", None] + ["login"] * 5
    s = scheme(drop=("spam",), rename={"invoice": "billing"})
    assert s.labels_after_mapping(raw) == ["billing", "login"]
    assert s.labels_after_mapping(raw, count_rare=False) == ["billing", "fax", "login"]
    merged = scheme(rare_policy="other")
    assert merged.labels_after_mapping(raw) == ["billing", "invoice", "login", "other", "spam"]


def test_prepared_data_properties():
    """labels is sorted, label_counts is largest first, and the scheme is kept."""
    s = scheme(min_count=1)
    prepared = s.apply(table(["b", "a", "b", "c", "b", "a"]))
    assert isinstance(prepared, PreparedData)
    assert prepared.labels == ["a", "b", "c"]
    assert list(prepared.label_counts().items()) == [("b", 3), ("a", 2), ("c", 1)]
    assert prepared.scheme == s


def test_non_string_cells_are_handled():
    """A DataFrame not from read_table (numbers, NaN) still gives clean text and labels."""
    df = pd.DataFrame({"body": ["x", 12.0, None, "y"], "category": [1, 2, 1, float("nan")]})
    prepared = LabelScheme(("body",), "category", min_count=1).apply(df)
    assert prepared.frame["text"].tolist() == ["x", "12"]
    assert prepared.frame["label"].tolist() == ["1", "2"]


def test_sample_tickets_apply_cleanly(sample_table):
    """The sample export yields 7 categories and reports its empty bodies and missing labels."""
    prepared = scheme().apply(sample_table)
    assert len(prepared.labels) == 7
    assert prepared.dropped["missing label"] == 2
    assert prepared.dropped["empty text"] == 0
    assert prepared.rows_read == len(sample_table)
    assert len(prepared.frame) == len(sample_table) - 2


def test_id_columns_are_guessed_and_carried_with_the_row():
    """Unique columns named like an id ride along; names that only end in 'id' do not."""
    from core.schema import guess_id_columns, sheet_row

    df = table(["a", "a", "b", "b"])
    df["Order Number"] = ["O1", "O2", "O3", "O4"]
    df["paid"] = ["y1", "y2", "y3", "y4"]  # not an id column: "paid" is not an id word
    df["customer_id"] = ["C1", "C1", "C2", "C3"]  # not unique
    assert guess_id_columns(df, exclude=("subject", "body", "category")) == ("id", "Order Number")
    prepared = scheme(min_count=1).apply(df)
    assert prepared.id_columns == ("id", "Order Number")
    assert prepared.frame["Order Number"].tolist() == ["O1", "O2", "O3", "O4"]
    assert sheet_row(prepared.frame["row"]).tolist() == [2, 3, 4, 5]
    chosen = scheme(min_count=1).apply(df, id_columns=["paid"])
    assert chosen.id_columns == ("paid",) and list(chosen.frame.columns)[-1] == "paid"
    with pytest.raises(DataError, match="No id column named 'nope'"):
        scheme(min_count=1).apply(df, id_columns=["nope"])


def test_ids_and_spreadsheet_rows_flow_into_the_predictions(tmp_path):
    """apply → split → evaluate → save/load keeps the file's ids (leading zeros too) and the
    row number a spreadsheet shows (header is row 1)."""
    import numpy as np

    from core.evaluation import Evaluation, evaluate
    from core.runs import RunStore
    from core.split import split_data

    labels = ["a", "b"] * 20
    df = table(labels)
    df["id"] = [f"{i:05d}" for i in range(len(labels))]
    df.loc[3, "subject"] = df.loc[3, "body"] = ""  # row 3 has no text: left out
    split = split_data(scheme(min_count=1).apply(df), seed=1)
    assert "id" in split.test.columns
    probs = np.tile([0.7, 0.3], (len(split.test), 1))
    evaluation = evaluate(split.test, probs, ["a", "b"])
    predictions = evaluation.predictions
    assert (predictions["sheet_row"] == predictions["row"] + 2).all()
    assert predictions["id"].tolist() == [f"{r:05d}" for r in predictions["row"]]
    run = RunStore(tmp_path).create("ids")
    evaluation.save(run)
    loaded = Evaluation.load(run).predictions
    assert loaded["id"].tolist() == predictions["id"].tolist()  # "00012" stays "00012"
    assert loaded["sheet_row"].tolist() == predictions["sheet_row"].tolist()
    mistakes = Evaluation.load(run).confident_mistakes()
    assert {"row", "sheet_row", "id"} <= set(mistakes.columns)
