"""A portable CPU inference engine: the trained model exported to ONNX, run by ONNX Runtime.

Why: on CPUs without fast bf16 (AVX2-only and most AVX-512 machines) torch scores in fp32, and
ONNX Runtime runs the same fp32 graph about 2x faster with identical labels (bench_scoring).

The graph is encoder → mean pooling → L2 normalise → head → softmax, with dynamic batch and
sequence axes. It is exported once per run, next to the model (``model/model.onnx``); when the
export fails the run keeps a note (``model/onnx.json``) and scoring stays on torch. Nothing here
is needed for correctness: every caller has a torch path.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ONNX_FILE = "model.onnx"
ENCODER_ONNX_FILE = "encoder.onnx"
NOTE_FILE = "onnx.json"
OPSET = 17
INPUT_NAMES = ("input_ids", "attention_mask")
ENGINE_ENV = "TICKETTUNE_ENGINE"
ENGINES = ("auto", "torch", "onnx")

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------ choice


def use_onnx(placement, engine: str = "auto") -> bool:
    """The one decision rule: score with ONNX Runtime, or with torch?

    ``auto`` (or ``$TICKETTUNE_ENGINE``): ONNX Runtime whenever torch would run in fp32 on the
    CPU, i.e. on every CPU without fast bf16 (bench_scoring: ~2x the batch throughput with the
    same labels, and a faster try-it box). Torch on a GPU, and on AMX / AVX-512-bf16 CPUs where
    torch's bf16 autocast outruns ORT's fp32.
    """
    engine = _engine_choice(engine)
    if engine != "auto":
        return engine == "onnx" and placement.device.type == "cpu"
    return placement.device.type == "cpu" and placement.precision == "fp32"


def use_onnx_for_one(placement, engine: str = "auto") -> bool:
    """Score a single ticket (the try-it box) with ONNX Runtime, or with torch?

    ``auto``: ONNX Runtime on every CPU, also where torch's bf16 wins on batches. One short
    text is dozens of tiny operations; ONNX Runtime's own thread pool runs them in 4.5 ms p50
    where torch takes 15-17 ms, fp32 or bf16 (bench_scoring, AMX CPU, sleeping OpenMP threads).
    Only a stored export is used for this: a single ticket never waits for an export.
    """
    return _engine_choice(engine) != "torch" and placement.device.type == "cpu"


def _engine_choice(engine: str) -> str:
    """``engine``, or for ``auto`` the one ``$TICKETTUNE_ENGINE`` names; checked."""
    if engine == "auto":
        engine = os.environ.get(ENGINE_ENV, "auto").strip().lower() or "auto"
    if engine not in ENGINES:
        raise ValueError(f"Unknown engine {engine!r}; use one of {ENGINES}.")
    return engine


# ------------------------------------------------------------------------------ export


def export_onnx(model_dir: str | os.PathLike) -> Path | None:
    """Export the saved classifier in ``model_dir`` to ``model_dir/model.onnx``.

    Returns the file, or None when the export failed; then ``onnx.json`` in the folder says
    why (best effort: the folder itself may be what failed) and callers use torch.
    """
    from core.modeling import load_classifier

    folder = Path(model_dir)
    target = folder / ONNX_FILE
    try:
        model, _tokenizer, _meta = load_classifier(folder, "cpu")
        _export(_pooling_graph(model.encoder, normalize=model.normalize, head=model.head), target)
    except Exception as exc:
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
        log.warning("ONNX export of %s failed, scoring stays on torch: %s", folder, reason)
        _write_note(folder, {"exported": False, "reason": reason})
        return None
    _write_note(folder, {"exported": True, "file": ONNX_FILE, "opset": OPSET})
    return target


def export_note(model_dir: str | os.PathLike) -> dict[str, Any] | None:
    """What the last export attempt recorded in ``model_dir`` (None: never attempted)."""
    try:
        return json.loads((Path(model_dir) / NOTE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def ensure_onnx(model_dir: str | os.PathLike) -> Path | None:
    """The stored export if there is one; else export once (runs older than the engine).

    A folder whose export already failed is not retried: the note says torch.
    """
    folder = Path(model_dir)
    if (folder / ONNX_FILE).is_file():
        return folder / ONNX_FILE
    note = export_note(folder)
    if note is not None and not note.get("exported", False):
        return None
    return export_onnx(folder)


def open_engine(
    model_dir: str | os.PathLike,
    tokenizer,
    *,
    max_length: int,
    export: bool = True,
    for_batches: bool = False,
):
    """The run's ONNX engine (exporting once if needed), or None: then torch scores.

    ``export=False`` opens only an export the run already has; ``for_batches``: see
    ``OnnxEngine``. A stored file ONNX Runtime
    cannot open (truncated, from an incompatible version) is treated like a failed export, not
    an error for the analyst.
    """
    if export:
        path = ensure_onnx(model_dir)
    else:
        path = Path(model_dir) / ONNX_FILE
        path = path if path.is_file() else None
    if path is None:
        return None
    try:
        return OnnxEngine(path, tokenizer, max_length=max_length, for_batches=for_batches)
    except Exception as exc:  # onnxruntime raises its own exception types
        log.warning("ONNX Runtime could not open %s, scoring stays on torch: %s", path, exc)
        return None


def export_encoder_onnx(source: str, target: str | os.PathLike) -> Path | None:
    """Export a plain pretrained encoder (mean pooling + normalise) for ``OnnxEngine.embed``.

    For the quick method's embedding pass; ``target`` is a file path (e.g. in a cache folder).
    """
    from transformers import AutoModel

    target = Path(target)
    try:
        encoder = AutoModel.from_pretrained(source, trust_remote_code=False).eval()
        target.parent.mkdir(parents=True, exist_ok=True)
        _export(_pooling_graph(encoder), target)
    except Exception as exc:
        log.warning("ONNX export of the encoder %s failed: %s", source, exc)
        return None
    return target


def encoder_engine(source: str, cache_dir: str | os.PathLike, *, max_length: int):
    """An ``OnnxEngine`` over the plain pretrained encoder ``source``, or None (use torch).

    For the embedding pass that fits the quick model and the head's starting point: exported
    once per model into ``cache_dir`` (e.g. ``<runs dir>/.cache/onnx``) and reused by later runs.
    """
    import hashlib

    from core.modeling import load_tokenizer

    stamp = source
    config = Path(source) / "config.json"
    if config.is_file():  # a local folder: a changed model gets a new export
        stamp += f"@{config.stat().st_mtime_ns}"
    key = hashlib.sha1(stamp.encode("utf-8")).hexdigest()[:16]
    target = Path(cache_dir) / key / ENCODER_ONNX_FILE
    if not target.is_file() and export_encoder_onnx(source, target) is None:
        return None
    return OnnxEngine(target, load_tokenizer(source), max_length=max_length, for_batches=True)


def _export(graph, target: Path) -> None:
    """TorchScript-based exporter: works offline without onnxscript; dynamic batch/sequence."""
    import torch

    # Unique per writer: two processes exporting the same run must not write one file.
    partial = target.with_name(f".{target.name}.{os.getpid()}-{threading.get_ident()}.partial")
    example = (torch.ones(2, 8, dtype=torch.long), torch.ones(2, 8, dtype=torch.long))
    axes = {"batch": 0, "sequence": 1}
    dynamic = {name: {i: n for n, i in axes.items()} for name in INPUT_NAMES}
    dynamic["output"] = {0: "batch"}
    try:
        # The tracer's warnings (SDPA's causal flag, advanced indexing) are about inputs this
        # graph never gets; the tests compare its outputs with torch's on real tickets.
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                graph.eval(),
                example,
                str(partial),
                input_names=list(INPUT_NAMES),
                output_names=["output"],
                dynamic_axes=dynamic,
                opset_version=OPSET,
                dynamo=False,
            )
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def _pooling_graph(encoder, *, normalize: bool = True, head=None):
    """encoder → mean pooling (→ L2 normalise) (→ head → softmax), as one traceable module:
    the classifier's probabilities with a head, the plain embeddings without. Built lazily so
    importing this module does not import torch."""
    import torch

    from core.modeling import mean_pool

    class PoolingGraph(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder, self.head = encoder, head

        def forward(self, input_ids, attention_mask):
            hidden = self.encoder(
                input_ids=input_ids, attention_mask=attention_mask
            ).last_hidden_state
            pooled = mean_pool(hidden, attention_mask)
            if normalize:
                pooled = torch.nn.functional.normalize(pooled, dim=-1)
            if self.head is None:
                return pooled
            return torch.softmax(self.head(pooled).float(), dim=-1)

    return PoolingGraph()


def _write_note(folder: Path, note: dict[str, Any]) -> None:
    try:
        (folder / NOTE_FILE).write_text(json.dumps(note, indent=2), encoding="utf-8")
    except OSError as exc:
        log.warning("Could not record the ONNX export note in %s: %s", folder, exc)


# ------------------------------------------------------------------------------ running


class OnnxEngine:
    """An ONNX Runtime CPU session over an exported graph, fed by the model's tokenizer.

    ``predict_proba`` has the contract of ``Predictor.predict_proba`` for a classifier export;
    ``embed`` returns the rows of an encoder export (same batching). Thread-safe.
    """

    def __init__(
        self, path: str | os.PathLike, tokenizer, *, max_length: int, for_batches: bool = False
    ) -> None:
        """``for_batches``: the engine reads files (batch scoring, the quick model's embedding
        pass), so each call runs on one thread and several batches are read at once, one per
        core. On a CPU shared with another busy process, one call on two threads waits at every
        operation for the thread that lost its core; two one-thread calls never wait for each
        other: next to one CPU-bound process they read 480-494 tickets/s against 373-401, at the
        same quiet speed (664-695 against 678-709; bench/RESULTS.md, session 14). Otherwise
        (single tickets only: the try-it box where torch reads the batches) one call uses every
        core, which answers one ticket sooner (4.7 against 5.8 ms p50)."""
        from core.threads import compute_threads

        threads = compute_threads()
        self.path = Path(path)
        self.concurrent_calls = threads if for_batches else 1
        self.session = self._session(1 if for_batches else threads)
        self.tokenizer = tokenizer
        self.max_length = max_length
        self._lock = threading.Lock()

    def _session(self, threads: int):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Spinning threads burn the cores while waiting for work: on a shared CPU that starves
        # training and other users for a few percent of speed on a quiet one.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        return ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])

    def predict_proba(
        self,
        texts: Sequence[str],
        *,
        batch_size: int = 128,
        on_batch: Callable[[int, int], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> np.ndarray:
        """The graph's output row per text: probabilities for a classifier export, embeddings
        for an encoder export (``embed`` is the same call under the name that says so)."""
        return self._run(texts, batch_size=batch_size, on_batch=on_batch, cancel=cancel)

    embed = predict_proba

    def _run(self, texts, *, batch_size, on_batch, cancel) -> np.ndarray:
        """Length-sorted batches padded to their own longest text, the same batches as torch
        reads (``core.reading.length_sorted_batches``); rows in input order."""
        from core.reading import in_order_on_threads, length_sorted_batches

        texts = [str(t) if t is not None else "" for t in texts]
        width = self.session.get_outputs()[0].shape[-1]
        if not texts:
            return np.zeros((0, width if isinstance(width, int) else 0), dtype=np.float32)
        encoded = self.tokenizer(texts, truncation=True, max_length=self.max_length)["input_ids"]
        if self.concurrent_calls > 1:  # a call of a few tickets (the service's) uses every core
            batch_size = min(batch_size, -(-len(texts) // self.concurrent_calls))
        batches = length_sorted_batches([len(ids) for ids in encoded], batch_size)
        feeds = (self._feed([encoded[i] for i in idx]) for idx in batches)  # in this thread
        if len(batches) > 1 and self.concurrent_calls > 1:
            outputs_in_order = in_order_on_threads(
                lambda feed: self.session.run(None, feed)[0],  # thread-safe: one thread a call
                feeds,
                threads=self.concurrent_calls,
                cancel=cancel,
                one_math_thread=False,  # the session has one thread; torch is not involved
            )
        else:
            outputs_in_order = (self._run_locked(feed, cancel) for feed in feeds)
        outputs = []
        done = 0
        for out in outputs_in_order:
            outputs.append(out.astype(np.float32, copy=False))
            done += len(out)
            if on_batch is not None:
                on_batch(done, len(encoded))
        result = np.empty((len(encoded), outputs[0].shape[1]), dtype=np.float32)
        result[np.concatenate(batches)] = np.concatenate(outputs)
        return result

    def _feed(self, ids: list[list[int]]) -> dict[str, np.ndarray]:
        length = max(len(row) for row in ids)
        pad = self.tokenizer.pad_token_id or 0
        input_ids = np.full((len(ids), length), pad, dtype=np.int64)
        mask = np.zeros((len(ids), length), dtype=np.int64)
        for i, row in enumerate(ids):
            input_ids[i, : len(row)] = row
            mask[i, : len(row)] = 1
        return {"input_ids": input_ids, "attention_mask": mask}

    def _run_locked(self, feed: dict[str, np.ndarray], cancel) -> np.ndarray:
        from core.errors import JobCancelledError

        if cancel is not None and cancel.is_set():
            raise JobCancelledError()
        with self._lock:
            (out,) = self.session.run(None, feed)
        return out
