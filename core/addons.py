"""Add-ons that stay beside the encoder: bottleneck adapters and prompt tuning.

LoRA merges into the encoder's weights, so its saved model is plain. These two cannot merge:

- ``adapter`` (Houlsby/Pfeiffer bottleneck): after the feed-forward output of every transformer
  block, ``h + up(gelu(down(h)))``. Built here, because peft has no bottleneck adapters and the
  ``adapters`` library (1.3) pins transformers ~=4.57, which does not install beside our 5.x.
  The adapters are attached with forward hooks, so the encoder's own modules and weight names
  stay untouched and it saves as a plain transformers model; the adapter weights go to
  ``adapter.safetensors``.
- ``prompt``: peft prompt tuning (``PromptTuningConfig``, feature extraction): learned virtual
  tokens put in front of every ticket, with the attention mask extended to cover them. The
  encoder's output then has the virtual positions first; ``TicketClassifier.embed`` pools only
  the last ``seq_len`` positions, i.e. the real tokens. Saved with peft's ``save_pretrained``
  into the ``prompt/`` sub-folder.

``ModelMeta.addon`` (in ``tickettune.json``) records which, e.g.
``{"kind": "adapter", "size": 64, "file": "adapter.safetensors"}`` or
``{"kind": "prompt", "tokens": 20, "folder": "prompt"}``; ``None`` for a plain model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

ADAPTER_FILE = "adapter.safetensors"
PROMPT_FOLDER = "prompt"


class Bottleneck(nn.Module):
    """``h + up(gelu(down(h)))``; ``up`` starts at zero so a new adapter changes nothing."""

    def __init__(self, hidden: int, size: int):
        super().__init__()
        self.down = nn.Linear(hidden, size)
        self.up = nn.Linear(size, hidden)
        nn.init.normal_(self.down.weight, std=1e-2)
        nn.init.zeros_(self.down.bias)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden + self.up(nn.functional.gelu(self.down(hidden)))


def _block_outputs(encoder: nn.Module) -> list[nn.Module]:
    """The feed-forward output projection of every block (BERT-family layout)."""
    layers = getattr(getattr(encoder, "encoder", None), "layer", None)
    if layers is None or not all(hasattr(getattr(b, "output", None), "dense") for b in layers):
        from core.errors import ConfigError

        raise ConfigError(
            "Adapters need a BERT-family model (encoder.layer[i].output.dense); "
            "choose another method for this model."
        )
    return [block.output.dense for block in layers]


def add_adapters(model: nn.Module, size: int) -> dict[str, Any]:
    """Attach one bottleneck per block to ``model.encoder``; ``model.addon_modules`` holds them."""
    outputs = _block_outputs(model.encoder)
    hidden = model.encoder.config.hidden_size
    device = next(model.encoder.parameters()).device
    adapters = nn.ModuleList(Bottleneck(hidden, size) for _ in outputs).to(device)
    model.addon_modules = adapters
    for dense, adapter in zip(outputs, adapters, strict=True):
        dense.register_forward_hook(lambda _m, _i, out, a=adapter: a(out))
    return {"kind": "adapter", "size": size, "file": ADAPTER_FILE}


def add_prompt(model: nn.Module, tokens: int) -> dict[str, Any]:
    """Wrap ``model.encoder`` in peft prompt tuning with ``tokens`` virtual tokens."""
    import warnings

    from peft import PromptTuningConfig, PromptTuningInit, TaskType, get_peft_model

    # Initialised from real word embeddings (not random vectors), so the virtual tokens start
    # inside the distribution the encoder knows.
    config = PromptTuningConfig(
        task_type=TaskType.FEATURE_EXTRACTION,
        num_virtual_tokens=tokens,
        prompt_tuning_init=PromptTuningInit.SAMPLE_VOCAB,
    )
    model.encoder = get_peft_model(model.encoder, config)
    # peft ignores token_type_ids under prompt tuning (all zero for single-text tickets).
    warnings.filterwarnings("ignore", message="Token type ids are not supported")
    return {"kind": "prompt", "tokens": tokens, "folder": PROMPT_FOLDER}


def plain_encoder(encoder: nn.Module) -> nn.Module:
    """The transformers model under a peft wrapper (or the encoder itself)."""
    return encoder.get_base_model() if hasattr(encoder, "get_base_model") else encoder


def save_addon(model: nn.Module, addon: dict[str, Any] | None, folder: Path) -> None:
    if not addon:
        return
    if addon["kind"] == "adapter":
        weights = {
            k: v.detach().float().contiguous().cpu()
            for k, v in model.addon_modules.state_dict().items()
        }
        save_file(weights, str(folder / addon["file"]))
    elif addon["kind"] == "prompt":
        model.encoder.save_pretrained(folder / addon["folder"], safe_serialization=True)


def load_addon(model: nn.Module, addon: dict[str, Any] | None, folder: Path) -> None:
    """Put the saved add-on back on a freshly loaded plain ``model`` (see the module doc)."""
    if not addon:
        return
    if addon["kind"] == "adapter":
        add_adapters(model, int(addon["size"]))
        model.addon_modules.load_state_dict(load_file(str(folder / addon["file"])))
    elif addon["kind"] == "prompt":
        import warnings

        from peft import PeftModel

        model.encoder = PeftModel.from_pretrained(model.encoder, str(folder / addon["folder"]))
        warnings.filterwarnings("ignore", message="Token type ids are not supported")
    else:
        from core.errors import ConfigError

        raise ConfigError(f"The saved model uses an add-on this version cannot read: {addon}.")
