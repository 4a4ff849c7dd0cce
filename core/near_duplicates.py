"""Near-duplicate tickets: (almost) the same text, found by the cosine of their embeddings.

Two uses: a test ticket with a near copy in training flatters the test score (leakage), and two
training tickets that say the same thing under different labels teach the model a
contradiction. Exact copies are a special case (cosine 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.schema import sheet_row
from core.split import DataSplit

# Measured on CLINC150 train and the sample tickets (bench/RESULTS.md, "Label audit"): at 0.95
# almost every pair is the same request reworded by a word or two or with a different
# signature; below ~0.9 pairs are merely on the same topic.
DEFAULT_THRESHOLD = 0.95
_BLOCK = 2048


def similar_pairs(
    a: np.ndarray, b: np.ndarray | None = None, *, threshold: float = DEFAULT_THRESHOLD
) -> pd.DataFrame:
    """Index pairs (i into ``a``, j into ``b``) with cosine >= ``threshold``, most similar first.

    Rows must be L2-normalised (as ``core.audit.embed_texts`` returns them). Without ``b``,
    pairs within ``a`` with i < j. Works in blocks, so memory stays small on big files.
    """
    same = b is None
    b = a if b is None else b
    found_i, found_j, found_s = [], [], []
    for start in range(0, len(a), _BLOCK):
        sims = a[start : start + _BLOCK] @ b.T
        if same:
            rows = np.arange(sims.shape[0])[:, None] + start
            sims = np.where(np.arange(len(b))[None, :] > rows, sims, -np.inf)
        i, j = np.nonzero(sims >= threshold)
        found_i.append(i + start)
        found_j.append(j)
        found_s.append(sims[i, j])
    pairs = pd.DataFrame(
        {
            "i": np.concatenate(found_i) if found_i else np.zeros(0, int),
            "j": np.concatenate(found_j) if found_j else np.zeros(0, int),
            "similarity": np.concatenate(found_s) if found_s else np.zeros(0),
        }
    )
    pairs["similarity"] = pairs["similarity"].clip(upper=1.0)
    return pairs.sort_values(["similarity", "i", "j"], ascending=[False, True, True]).reset_index(
        drop=True
    )


@dataclass
class NearDuplicateReport:
    """``leakage``: test tickets with a near copy in training. ``conflicts``: near-copies within
    training that carry different labels. Each row names both tickets (``_a`` = train side or
    first ticket, ``_b`` = the other) with row, sheet_row, id columns, text and label."""

    leakage: pd.DataFrame
    conflicts: pd.DataFrame
    threshold: float


def find_near_duplicates(
    split: DataSplit,
    *,
    embeddings: dict[str, np.ndarray] | None = None,
    model: str = "default",
    threshold: float = DEFAULT_THRESHOLD,
) -> NearDuplicateReport:
    """Near-copies across train and test, and within train with different labels.

    ``embeddings`` ({"train": ..., "test": ...}, rows in the split's order) saves embedding the
    tickets again; without it they are embedded with ``model``.
    """
    if embeddings is None:
        from core.audit import embed_texts

        texts = split.train["text"].tolist() + split.test["text"].tolist()
        both = embed_texts(texts, model)
        embeddings = {"train": both[: len(split.train)], "test": both[len(split.train) :]}
    train, test = split.train.reset_index(drop=True), split.test.reset_index(drop=True)
    leak = similar_pairs(embeddings["train"], embeddings["test"], threshold=threshold)
    within = similar_pairs(embeddings["train"], threshold=threshold)
    labels = train["label"].astype(str).to_numpy()
    within = within[labels[within["i"]] != labels[within["j"]]]
    return NearDuplicateReport(
        leakage=_describe(leak, train, test),
        conflicts=_describe(within, train, train),
        threshold=threshold,
    )


def _describe(pairs: pd.DataFrame, left: pd.DataFrame, right: pd.DataFrame) -> pd.DataFrame:
    from core.evaluation import id_columns_of

    parts = []
    for side, frame, index in (("a", left, pairs["i"]), ("b", right, pairs["j"])):
        rows = frame.iloc[index.to_numpy()].reset_index(drop=True)
        part = pd.DataFrame(index=range(len(rows)))
        if "row" in rows:
            part[f"row_{side}"] = rows["row"].to_numpy()
            part[f"sheet_row_{side}"] = sheet_row(rows["row"].to_numpy())
        for column in (*id_columns_of(frame), "text", "label"):
            part[f"{column}_{side}"] = rows[column].to_numpy()
        parts.append(part)
    out = pd.concat(parts, axis=1)
    out["similarity"] = pairs["similarity"].to_numpy()
    return out


def nearest_similarities(embeddings: np.ndarray, labels: Sequence[str]) -> pd.DataFrame:
    """Each ticket's highest cosine to another ticket, and whether that one has the same label:
    what the threshold was chosen from (see bench/bench_audit.py)."""
    labels = np.asarray([str(v) for v in labels], dtype=object)
    best = np.full(len(embeddings), -np.inf)
    best_j = np.zeros(len(embeddings), dtype=int)
    for start in range(0, len(embeddings), _BLOCK):
        sims = embeddings[start : start + _BLOCK] @ embeddings.T
        sims[np.arange(sims.shape[0]), np.arange(sims.shape[0]) + start] = -np.inf
        best_j[start : start + _BLOCK] = sims.argmax(axis=1)
        best[start : start + _BLOCK] = sims.max(axis=1)
    return pd.DataFrame({"similarity": best, "same_label": labels == labels[best_j]})
