"""The label loop's core: decisions recorded and undone as saved versions, the retrain request
on the corrected table, new tickets from a scored file, and clear errors for decisions that no
longer fit."""

from __future__ import annotations

import pandas as pd
import pytest

from core.config import TrainConfig
from core.decisions import Correction, DecisionStore, Exclusion, LabelDecisions, Merge
from core.errors import ConfigError
from core.label_loop import (
    DECISIONS_FIELD,
    PARENT_FIELD,
    UPLOAD_FIELD,
    current_decisions,
    new_tickets,
    record,
    retrain_fields,
    retrain_request,
    undo,
)
from core.runs import RunStore
from core.schema import LabelScheme

SCHEME = LabelScheme(("subject", "body"), "category", min_count=1)


def _table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "ticket_id": ["A1", "A2", "A3", "A4"],
            "subject": ["pay", "login", "bill", "password"],
            "body": ["charged twice", "cannot log in", "invoice wrong", "reset fails"],
            "category": ["billing", "login", "billing", "billing"],
        }
    )


def test_record_and_undo_are_new_saved_versions(tmp_path):
    first = current_decisions(tmp_path, SCHEME, "u1")
    assert first.version == 0 and first.decisions == ()
    one = record(tmp_path, first, Correction(row=3, new_label="login"), Exclusion(row=1))
    assert current_decisions(tmp_path, SCHEME, "u1") == one
    two = undo(tmp_path, one, 0)
    assert [type(d) for d in two.decisions] == [Exclusion]
    assert DecisionStore(tmp_path).versions() == [1, 2]
    assert DecisionStore(tmp_path).load(1).decisions == one.decisions  # history kept
    with pytest.raises(ConfigError, match="no longer in the list"):
        undo(tmp_path, two, 5)


def test_retrain_request_trains_on_the_corrected_table_and_leaves_the_upload(tmp_path):
    table = _table()
    before = table.copy()
    decisions = LabelDecisions(SCHEME, upload="u1").add(
        Correction(row=3, new_label="login"), Exclusion(row=1)
    )
    config = TrainConfig(method="quick")
    request, corrected = retrain_request(table, decisions, config, source_name="t.csv")
    pd.testing.assert_frame_equal(table, before)
    assert request.config == config and request.scheme == corrected.scheme
    assert request.table["category"].tolist() == ["billing", "billing", "login"]
    assert request.table["ticket_id"].tolist() == ["A1", "A3", "A4"]
    run = RunStore(tmp_path).create("parent")
    fields = retrain_fields(request, "u1", run, decisions.version)
    assert fields[UPLOAD_FIELD] == "u1" and fields[PARENT_FIELD] == run.id
    assert fields[DECISIONS_FIELD] == 1 and fields["method"] == "quick"


def test_a_correction_to_a_merged_away_label_is_a_clear_error():
    decisions = LabelDecisions(SCHEME).add(
        Merge(("billing", "login"), "account"), Correction(row=0, new_label="login")
    )
    with pytest.raises(ConfigError, match="'login'"):
        retrain_request(_table(), decisions, TrainConfig(), source_name="t.csv")


def test_new_tickets_take_the_text_of_the_columns_the_model_read():
    scored = pd.DataFrame({"title": ["x", "y"], "text": ["body x", None], "predicted_label": "a"})
    tickets = new_tickets(
        scored,
        {1: "login"},
        read_columns=["title", "text"],
        text_columns=["subject", "body"],
        upload="u2",
    )
    assert [(t.texts, t.label, t.upload, t.row) for t in tickets] == [
        ({"subject": "y", "body": ""}, "login", "u2", 1)
    ]
    with pytest.raises(ConfigError, match="2 text column"):
        new_tickets(
            scored, {0: "a"}, read_columns=["title"], text_columns=["subject", "body"], upload="u2"
        )
