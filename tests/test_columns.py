"""Describing columns and guessing which hold the ticket text and which the label."""

from __future__ import annotations

import pandas as pd

from core.columns import describe_columns, guess_label_columns, guess_text_columns


def test_describe_columns_guesses_kinds():
    """Long varied text is 'text', a few repeated values 'label', unique short values 'id'."""
    n = 30
    df = pd.DataFrame(
        {
            "ticket_id": [f"T-{i}" for i in range(n)],
            "created": [f"2025-03-{1 + i % 28:02d} 10:{i:02d}" for i in range(n)],
            "body": [f"My card was charged twice for order {i}, please help" for i in range(n)],
            "category": ["billing", "login", "shipping"] * 10,
            "notes": [""] * n,
        }
    )
    described = {d["name"]: d for d in describe_columns(df)}
    assert {name: d["kind"] for name, d in described.items()} == {
        "ticket_id": "id",
        "created": "other",
        "body": "text",
        "category": "label",
        "notes": "other",
    }
    assert described["category"]["distinct"] == 3
    assert described["category"]["non_empty"] == n
    assert described["notes"]["non_empty"] == 0
    assert described["ticket_id"]["mean_length"] == 3.7


def test_sample_columns_are_guessed(sample_table):
    """On the sample export, body/subject are the text and category the best label."""
    assert guess_text_columns(sample_table) == ["body", "subject"]
    labels = guess_label_columns(sample_table)
    assert labels[0] == "category"
    assert set(labels) == {"category", "team", "priority", "customer_tier"}
