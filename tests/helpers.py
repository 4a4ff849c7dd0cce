"""Small real-text data sets for tests that must train in seconds."""

from __future__ import annotations

import random

import pandas as pd

from core.split import DataSplit

TOPICS: dict[str, tuple[list[str], list[str]]] = {
    "billing": (
        ["invoice", "charged twice", "refund", "payment failed", "credit card", "receipt"],
        ["I was {w} this month", "Question about my {w}", "Why is my {w} wrong", "{w} please"],
    ),
    "login": (
        ["password", "log in", "two-factor code", "locked out", "reset link", "sign in"],
        ["I cannot {w} to my account", "The {w} does not work", "Help with {w}", "{w} broken"],
    ),
    "shipping": (
        ["parcel", "delivery", "tracking number", "courier", "package", "shipment"],
        ["Where is my {w}", "The {w} is late", "My {w} never arrived", "{w} went missing"],
    ),
}


def topic_frame(n_per_label: int = 40, seed: int = 0) -> pd.DataFrame:
    """Tickets whose label is given away by a few keywords: learnable even by a tiny model."""
    rng = random.Random(seed)
    rows = []
    for label, (words, templates) in TOPICS.items():
        for _ in range(n_per_label):
            text = rng.choice(templates).format(w=rng.choice(words))
            rows.append({"text": f"{text} (ref {rng.randint(100, 999)})", "label": label})
    rng.shuffle(rows)
    frame = pd.DataFrame(rows)
    frame.insert(0, "row", range(len(frame)))
    return frame


def topic_split(n_per_label: int = 40, seed: int = 0) -> DataSplit:
    frame = topic_frame(n_per_label, seed)
    n = len(frame)
    a, b = int(n * 0.7), int(n * 0.85)
    parts = frame.iloc[:a], frame.iloc[a:b], frame.iloc[b:]
    train, validation, test = (p.reset_index(drop=True) for p in parts)
    return DataSplit(train=train, validation=validation, test=test, strategy="stratified")
