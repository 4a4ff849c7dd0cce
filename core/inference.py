"""Predictor: load a trained run once, label texts, and say which words drove a decision."""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from core.device import Placement, resolve_placement
from core.errors import RunNotFoundError
from core.modeling import (
    META_FILE,
    ModelMeta,
    TicketClassifier,
    classify,
    for_reading,
    load_classifier,
)
from core.onnx_engine import (
    OnnxEngine,
    ensure_onnx,
    export_note,
    open_engine,
    use_onnx,
    use_onnx_for_one,
)
from core.runs import Run
from core.scoring import NEEDS_REVIEW, needs_review

__all__ = ["NEEDS_REVIEW", "Predictor", "needs_review"]

WORD_PATTERN = re.compile(r"\S+")
MAX_OCCLUSIONS = 64
_SAVED: Any = object()


@dataclass(frozen=True)
class Reading:
    """How much of a ticket the model read: tickets longer than its maximum length are cut."""

    tokens_read: int
    tokens_total: int
    words_read: int
    words_total: int

    @property
    def truncated(self) -> bool:
        return self.tokens_read < self.tokens_total


@dataclass(frozen=True)
class Prediction:
    label: str
    confidence: float
    top: tuple[tuple[str, float], ...]
    reading: Reading | None = None  # set by predict() and explain()


@dataclass(frozen=True)
class WordContribution:
    """How much removing this word lowers the model's confidence in its chosen label."""

    word: str
    start: int
    end: int
    weight: float


class Predictor:
    """A loaded model ready to score tickets. Thread-safe; load once and reuse.

    ``threshold`` is the run's saved automation threshold (None if none was saved): when set,
    :meth:`predict_frame` marks the tickets the model is less sure about as ``needs_review``.
    """

    def __init__(
        self,
        model: TicketClassifier,
        tokenizer,
        meta: ModelMeta,
        placement: Placement,
        threshold: float | None = None,
        onnx: OnnxEngine | None = None,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.meta = meta
        self.placement = placement
        self.threshold = threshold
        self.onnx = onnx
        self._lock = threading.Lock()
        # Where single tickets go when batches run on torch (core.onnx_engine.use_onnx_for_one):
        # the folder of a stored export, opened on the first single ticket.
        self._one_folder: Path | None = None
        self._one: OnnxEngine | None = None
        self._export: threading.Thread | None = None  # see prepare_single_tickets

    @property
    def backend(self) -> str:
        """``"onnx"`` (ONNX Runtime on the CPU) or ``"torch"``: what scores the tickets."""
        return "onnx" if self.onnx is not None else "torch"

    @property
    def single_backend(self) -> str:
        """What scores one ticket at a time (the try-it box): ``"onnx"`` or ``"torch"``."""
        return "onnx" if self.onnx is not None or self._one_engine() is not None else "torch"

    def _one_engine(self) -> OnnxEngine | None:
        if self.onnx is not None:
            return self.onnx
        if self._export is not None and self._export.is_alive():
            return None  # torch until the background export is stored
        if self._one is None and self._one_folder is not None:
            folder, self._one_folder = self._one_folder, None  # one try only
            self._one = open_engine(
                folder, self.tokenizer, max_length=self.meta.max_length, export=False
            )
        return self._one

    def prepare_single_tickets(self) -> threading.Thread | None:
        """For a long-lived owner answering one ticket at a time (the scoring service): where
        single tickets go to ONNX Runtime but the run has no export yet, export it in a
        background thread (~7 s); single tickets are scored by torch until it is stored.

        Runs trained where torch scores the batches (CPUs with fast bf16) are not exported by
        the pipeline, so that a quick run does not wait for it; without this their single
        requests stayed on torch (p50 17 ms against ONNX Runtime's 4.5). The app's try-it box
        does not need it: it scores the ticket with its word-dropped variants as one batch
        (``explain``). Returns the thread, or None when there is nothing to do (an export
        stored or failed before, or none wanted)."""
        folder = self._one_folder
        if folder is None or self._export is not None or export_note(folder) is not None:
            return None
        self._export = threading.Thread(
            target=ensure_onnx, args=(folder,), name="tickettune-onnx-export", daemon=True
        )
        self._export.start()
        return self._export

    @classmethod
    def load(
        cls,
        run_dir: str | Path,
        *,
        device: str = "auto",
        precision: str = "auto",
        engine: str = "auto",
    ) -> Predictor:
        """``engine``: ``auto`` follows ``core.onnx_engine.use_onnx``; ``torch`` / ``onnx``
        force one (ONNX falls back to torch when the run has no usable export)."""
        folder = Path(run_dir)
        folder = folder / "model" if (folder / "model" / META_FILE).exists() else folder
        if not (folder / META_FILE).exists():
            raise RunNotFoundError(
                f"No trained model in '{run_dir}'. Pick a run that finished successfully."
            )
        placement = resolve_placement(device, precision)
        model, tokenizer, meta = load_classifier(folder, placement.device)
        # A run keeps its threshold beside the model; an export inside the model folder.
        threshold = Run(run_dir).automation_threshold()
        if threshold is None:
            threshold = Run(folder).automation_threshold()
        onnx = None
        if use_onnx(placement, engine):
            onnx = open_engine(folder, tokenizer, max_length=meta.max_length, for_batches=True)
        if onnx is None:  # torch scores: with bf16 weights where the CPU has fast bf16
            model = for_reading(model, placement, copy=False)
        predictor = cls(model, tokenizer, meta, placement, threshold, onnx)
        if onnx is None and use_onnx_for_one(placement, engine):
            predictor._one_folder = folder
        return predictor

    @property
    def labels(self) -> list[str]:
        return list(self.meta.labels)

    def predict_proba(
        self,
        texts: Sequence[str],
        *,
        batch_size: int = 128,
        on_batch: Callable[[int, int], None] | None = None,
    ) -> np.ndarray:
        texts = [str(t) if t is not None else "" for t in texts]
        if self.onnx is not None:
            return self.onnx.predict_proba(texts, batch_size=batch_size, on_batch=on_batch)
        if len(texts) == 1:
            with self._lock:
                one = self._one_engine()
            if one is not None:
                return one.predict_proba(texts, batch_size=1, on_batch=on_batch)
        with self._lock:
            if len(texts) == 1:
                probs = self._predict_one(texts[0])
                if on_batch is not None:
                    on_batch(1, 1)
                return probs
            return classify(
                self.model,
                self.tokenizer,
                texts,
                max_length=self.meta.max_length,
                placement=self.placement,
                batch_size=batch_size,
                on_batch=on_batch,
            )

    def _predict_one(self, text: str) -> np.ndarray:
        """One ticket (the try-it box). On a CPU it runs in fp32: for a single short text the
        bf16 casts cost more than they save (bench_scoring: p50 4.9 ms fp32 vs 8.4 ms bf16)."""
        batch = self.tokenizer(
            [text], truncation=True, max_length=self.meta.max_length, return_tensors="pt"
        ).to(self.placement.device)
        on_gpu = self.placement.device.type == "cuda"
        autocast = self.placement.autocast() if on_gpu else contextlib.nullcontext()
        with torch.inference_mode(), autocast:
            logits = self.model(**batch)["logits"].float()
        return torch.softmax(logits, dim=-1).cpu().numpy()

    def predict(self, texts: Sequence[str], *, top_k: int = 3) -> list[Prediction]:
        probs = self.predict_proba(texts)
        return [
            self._to_prediction(row, top_k, self.reading(str(text) if text is not None else ""))
            for row, text in zip(probs, texts, strict=True)
        ]

    def reading(self, text: str) -> Reading:
        """How many of the ticket's tokens (and words) fit in the model's maximum length."""
        encoded = self.tokenizer(
            text, add_special_tokens=False, return_offsets_mapping=self.tokenizer.is_fast
        )
        total = len(encoded["input_ids"])
        budget = self.meta.max_length - self.tokenizer.num_special_tokens_to_add(pair=False)
        read = max(0, min(total, budget))
        words_total = len(WORD_PATTERN.findall(text))
        words_read = words_total
        if read < total:
            offsets = encoded.get("offset_mapping")
            end = offsets[read - 1][1] if offsets and read else 0
            words_read = len(WORD_PATTERN.findall(text[:end])) if offsets else 0
        return Reading(read, total, words_read, words_total)

    def _to_prediction(self, row: np.ndarray, top_k: int, reading: Reading | None) -> Prediction:
        order = np.argsort(-row)[:top_k]
        top = tuple((self.meta.labels[i], float(row[i])) for i in order)
        return Prediction(label=top[0][0], confidence=top[0][1], top=top, reading=reading)

    def predict_frame(
        self,
        texts: Sequence[str],
        *,
        top_k: int = 3,
        threshold: float | None = _SAVED,
        **kwargs,
    ) -> pd.DataFrame:
        """One row per text: predicted_label, confidence and the top-k labels with theirs.

        With a threshold (by default the saved one; None for none) a ``needs_review`` column
        says which tickets a person should check.
        """
        threshold = self.threshold if threshold is _SAVED else threshold
        probs = self.predict_proba(texts, **kwargs)
        order = np.argsort(-probs, axis=1)[:, :top_k]
        columns: dict[str, list] = {}
        labels = np.asarray(self.meta.labels, dtype=object)
        for k in range(order.shape[1]):
            name = "predicted_label" if k == 0 else f"top{k + 1}_label"
            conf = "confidence" if k == 0 else f"top{k + 1}_confidence"
            columns[name] = labels[order[:, k]].tolist()
            columns[conf] = np.take_along_axis(probs, order[:, k : k + 1], axis=1)[:, 0].tolist()
        frame = pd.DataFrame(columns)
        if threshold is not None:
            frame[NEEDS_REVIEW] = needs_review(frame["confidence"].to_numpy(float), threshold)
        return frame

    def explain(self, text: str) -> tuple[Prediction, list[WordContribution]]:
        """Occlusion: drop each word (or group of words, for long texts) and re-score.

        A word's weight is the drop in confidence for the predicted label without it;
        negative weights are words that argued against the label.
        """
        spans = [(m.start(), m.end()) for m in WORD_PATTERN.finditer(text)]
        if not spans:
            return self._to_prediction(self.predict_proba([text])[0], 3, self.reading(text)), []
        groups = _group_spans(spans, MAX_OCCLUSIONS)
        variants = [text[:start] + text[end:] for start, end in groups]
        # The text and its variants in one batch: one precision for all, so a weight is the
        # word's effect and not a rounding difference between two code paths.
        scored = self.predict_proba([text, *variants])
        base, probs = scored[0], scored[1:]
        prediction = self._to_prediction(base, 3, self.reading(text))
        target = self.meta.labels.index(prediction.label)
        contributions = []
        for (start, end), row in zip(groups, probs, strict=True):
            weight = float(base[target] - row[target])
            for w_start, w_end in spans:
                if start <= w_start and w_end <= end:
                    contributions.append(
                        WordContribution(text[w_start:w_end], w_start, w_end, weight)
                    )
        return prediction, contributions


def _group_spans(spans: list[tuple[int, int]], limit: int) -> list[tuple[int, int]]:
    """Merge neighbouring word spans into at most ``limit`` groups."""
    size = max(1, -(-len(spans) // limit))
    return [
        (spans[i][0], spans[min(i + size, len(spans)) - 1][1]) for i in range(0, len(spans), size)
    ]
