"""Suspicious labels: tickets whose label in the file is probably wrong.

Every ticket gets out-of-fold predicted probabilities — from models that never saw it — and
cleanlab scores how well its given label fits them. All tickets are ranked, most suspicious
first; cleanlab's own filter (``find_label_issues``) only marks the clearest cases, which is
far too few to review, so it is kept as the ``flagged`` column.

The out-of-fold model is the ``quick`` model (logistic regression on the frozen encoder's
embeddings), blended with the keyword baseline (TF-IDF + logistic regression): the two make
different mistakes, so a label both models doubt is more likely wrong. The default score is
cleanlab's ``normalized_margin`` (does another label clearly beat the given one?), which finds
annotator mix-ups of similar labels best. See the "Label audit" section of bench/RESULTS.md
for the measurements behind the defaults.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from core.errors import DataError
from core.progress import ProgressCallback, ProgressEvent, ignore_progress
from core.schema import PreparedData, sheet_row

SCORING_METHODS = ("self_confidence", "normalized_margin", "confidence_weighted_entropy")
MIN_FOLDS = 2


@dataclass(frozen=True)
class AuditConfig:
    """How the out-of-fold probabilities are made and scored.

    ``keyword_weight`` is the share of the keyword baseline in the averaged probabilities
    (0 = embeddings only); ``method`` is cleanlab's label-quality score.
    """

    model: str = "default"
    folds: int = 5
    method: str = "normalized_margin"
    keyword_weight: float = 0.3
    c: float = 10.0
    seed: int = 42


@dataclass
class AuditResult:
    """``tickets``: every ticket, most suspicious first, with row, sheet_row, the id columns,
    text, given_label, suggested_label (the likeliest other label), score (cleanlab's label
    quality: low = suspicious) and flagged (cleanlab's filter). ``folds`` actually used."""

    tickets: pd.DataFrame
    folds: int
    id_columns: tuple[str, ...] = ()

    @property
    def n_flagged(self) -> int:
        return int(self.tickets["flagged"].sum())


def embed_texts(
    texts: Sequence[str],
    model: str = "default",
    *,
    precision: str = "auto",
    progress: ProgressCallback = ignore_progress,
    cancel: threading.Event | None = None,
) -> np.ndarray:
    """The quick model's embeddings of ``texts``: the frozen encoder, mean-pooled, normalised.

    The one place the audit and the near-duplicate finder embed tickets; it uses the same
    pieces as the quick model in core.training (load_encoder, TicketClassifier.embed,
    choose_max_length, embed_tickets). ``precision`` as in ``core.device.resolve_placement``.
    """
    from core.device import resolve_placement
    from core.modeling import TicketClassifier, embed_tickets, for_reading, load_encoder
    from core.training import choose_max_length

    texts = list(texts)
    placement = resolve_placement(precision=precision)
    progress(ProgressEvent("loading", message=f"Loading the model on the {placement.describe()}."))
    encoder, tokenizer, _ = load_encoder(model)
    classifier = TicketClassifier(encoder, 2).to(placement.device).eval()
    classifier = for_reading(classifier, placement, copy=False)
    max_length = choose_max_length(tokenizer, texts)
    progress(ProgressEvent("embedding", message=f"Reading {len(texts)} tickets."))

    def report(n: int, of: int) -> None:
        progress(ProgressEvent("embedding", step=n, total_steps=of))

    return embed_tickets(
        classifier,
        tokenizer,
        texts,
        max_length=max_length,
        placement=placement,
        on_batch=report,
        cancel=cancel,
    )


def choose_folds(labels: Sequence[str], folds: int) -> int:
    """``folds``, or fewer when the smallest label has fewer tickets; DataError when it can't."""
    counts = Counter(map(str, labels))
    if len(counts) < 2:
        only = next(iter(counts), "")
        raise DataError(
            f"Every ticket has the label '{only}'. Finding wrong labels needs at least two "
            "labels to compare; pick another label column."
        )
    smallest = min(counts.values())
    if smallest >= folds:
        return folds
    if smallest >= MIN_FOLDS:
        return smallest
    few = sorted(label for label, n in counts.items() if n < MIN_FOLDS)
    raise DataError(
        f"The label(s) {', '.join(repr(x) for x in few)} have only one ticket, so no model can "
        "learn them without that very ticket and its label cannot be checked. Merge or drop "
        "those labels (or add tickets), then check again."
    )


@dataclass(frozen=True)
class OutOfFold:
    """Out-of-fold probabilities of the two models, columns in ``classes`` order."""

    embedding: np.ndarray
    keywords: np.ndarray | None
    classes: list[str]
    folds: int

    def blend(self, keyword_weight: float) -> np.ndarray:
        if self.keywords is None or keyword_weight <= 0:
            return self.embedding
        return (1 - keyword_weight) * self.embedding + keyword_weight * self.keywords


def out_of_fold(
    embeddings: np.ndarray,
    texts: Sequence[str],
    labels: Sequence[str],
    config: AuditConfig = AuditConfig(),
    *,
    progress: ProgressCallback = ignore_progress,
) -> OutOfFold:
    """Each ticket's probabilities from models fitted on the other folds: the embedding
    logistic regression and (when ``config.keyword_weight`` > 0) the keyword baseline."""
    y = np.asarray([str(v) for v in labels], dtype=object)
    classes = sorted(set(y.tolist()))
    folds = choose_folds(y, config.folds)
    index = {label: i for i, label in enumerate(classes)}
    y_int = np.array([index[v] for v in y])
    texts = list(texts)
    embedding = np.zeros((len(y), len(classes)))
    keywords = np.zeros((len(y), len(classes))) if config.keyword_weight > 0 else None
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=config.seed)
    for k, (fit, held) in enumerate(splitter.split(embeddings, y_int)):
        progress(
            ProgressEvent(
                "fitting", step=k, total_steps=folds, message=f"Checking part {k + 1} of {folds}."
            )
        )
        embedding[held] = _fold_probabilities(embeddings, y_int, fit, held, len(classes), config)
        if keywords is not None:
            keywords[held] = _keyword_probabilities(texts, y, fit, held, classes, config.seed)
    return OutOfFold(embedding, keywords, classes, folds)


def out_of_fold_probabilities(
    embeddings: np.ndarray,
    texts: Sequence[str],
    labels: Sequence[str],
    config: AuditConfig = AuditConfig(),
    *,
    progress: ProgressCallback = ignore_progress,
) -> tuple[np.ndarray, list[str], int]:
    """The blended out-of-fold probabilities, the classes (column order) and the folds used."""
    parts = out_of_fold(embeddings, texts, labels, config, progress=progress)
    return parts.blend(config.keyword_weight), parts.classes, parts.folds


def _fold_probabilities(
    x: np.ndarray,
    y: np.ndarray,
    fit: np.ndarray,
    held: np.ndarray,
    n_classes: int,
    config: AuditConfig,
) -> np.ndarray:
    model = LogisticRegression(C=config.c, max_iter=2000, random_state=config.seed)
    model.fit(x[fit], y[fit])
    out = np.zeros((len(held), n_classes))
    out[:, model.classes_] = model.predict_proba(x[held])
    return out


def _keyword_probabilities(
    texts: list[str],
    y: np.ndarray,
    fit: np.ndarray,
    held: np.ndarray,
    classes: list[str],
    seed: int,
) -> np.ndarray:
    from core.baseline import baseline_probabilities, fit_baseline

    model = fit_baseline([texts[i] for i in fit], y[fit].tolist(), seed=seed)
    probs, order = baseline_probabilities(model, [texts[i] for i in held])
    out = np.zeros((len(held), len(classes)))
    out[:, [classes.index(c) for c in order]] = probs
    return out


def rank_tickets(
    frame: pd.DataFrame,
    probabilities: np.ndarray,
    classes: Sequence[str],
    *,
    method: str = AuditConfig.method,
) -> pd.DataFrame:
    """Every ticket of ``frame`` (with "text", "label", optionally "row" and id columns), most
    suspicious first, by cleanlab's label-quality score of its given label."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    from core.evaluation import id_columns_of

    if method not in SCORING_METHODS:
        raise ValueError(f"method must be one of {SCORING_METHODS}, not {method!r}")
    classes = [str(c) for c in classes]
    index = {label: i for i, label in enumerate(classes)}
    given = frame["label"].astype(str).to_numpy()
    y = np.array([index[v] for v in given])
    probs = np.asarray(probabilities, dtype=float)
    probs = probs / probs.sum(axis=1, keepdims=True)
    scores = get_label_quality_scores(y, probs, method=method)
    others = probs.copy()
    others[np.arange(len(y)), y] = -1.0
    suggested = np.asarray(classes, dtype=object)[others.argmax(axis=1)]
    # n_jobs=1: by default cleanlab forks a process pool, and forking the app's threaded server
    # (torch, ONNX Runtime, web threads) can deadlock the child, leaving the audit waiting.
    flagged = find_label_issues(y, probs, n_jobs=1) if len(classes) > 1 else np.zeros(len(y), bool)
    out = pd.DataFrame(index=range(len(frame)))
    if "row" in frame:
        out["row"] = frame["row"].to_numpy()
        out["sheet_row"] = sheet_row(frame["row"].to_numpy())
    for column in id_columns_of(frame):
        out[column] = frame[column].to_numpy()
    out["text"] = frame["text"].to_numpy()
    out["given_label"] = given
    out["suggested_label"] = suggested
    out["suggested_probability"] = others.max(axis=1)
    out["given_probability"] = probs[np.arange(len(y)), y]
    out["score"] = scores
    out["flagged"] = np.asarray(flagged, dtype=bool)
    return out.sort_values("score", kind="stable").reset_index(drop=True)


def audit_labels(
    prepared: PreparedData,
    config: AuditConfig = AuditConfig(),
    *,
    embeddings: np.ndarray | None = None,
    progress: ProgressCallback = ignore_progress,
    cancel: threading.Event | None = None,
) -> AuditResult:
    """Rank every usable ticket of ``prepared`` by how likely its label is wrong."""
    frame = prepared.frame.reset_index(drop=True)
    labels = frame["label"].astype(str).tolist()
    choose_folds(labels, config.folds)  # fail before the slow part
    texts = frame["text"].astype(str).tolist()
    if embeddings is None:
        embeddings = embed_texts(texts, config.model, progress=progress, cancel=cancel)
    probs, classes, folds = out_of_fold_probabilities(
        embeddings, texts, labels, config, progress=progress
    )
    ranked = rank_tickets(frame, probs, classes, method=config.method)
    return AuditResult(ranked, folds, tuple(prepared.id_columns))
