"""The classifier: embedded model found offline, mean pooling, save/load round trip."""

import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from core.device import resolve_placement
from core.errors import ConfigError
from core.modeling import (
    ModelMeta,
    TicketClassifier,
    classify,
    embedded_model_path,
    load_classifier,
    load_encoder,
    mean_pool,
    resolve_model_source,
    save_classifier,
    warm_up_loading,
)

ROOT = Path(__file__).resolve().parent.parent


def test_embedded_model_is_found_inside_the_package():
    folder = embedded_model_path()
    assert (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file()
    assert resolve_model_source("default") == str(folder)
    assert resolve_model_source("org/some-model") == "org/some-model"


def test_mean_pool_ignores_padding():
    hidden = torch.tensor([[[1.0, 1.0], [3.0, 3.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    assert torch.equal(mean_pool(hidden, mask), torch.tensor([[2.0, 2.0]]))


def test_unknown_model_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="Could not load the model"):
        load_encoder(str(tmp_path / "no-such-model-folder-xyz"))


def test_save_and_load_give_identical_predictions(tiny_model_dir, tmp_path):
    encoder, tokenizer, _ = load_encoder(str(tiny_model_dir))
    model = TicketClassifier(encoder, 3)
    meta = ModelMeta(["a", "b", "c"], 32, str(tiny_model_dir), "full")
    save_classifier(model, tokenizer, meta, tmp_path / "model")
    loaded, loaded_tokenizer, loaded_meta = load_classifier(tmp_path / "model")
    assert loaded_meta == meta
    placement = resolve_placement("cpu", "fp32")
    texts = ["refund my order", "a much longer ticket about a login problem today", ""]
    before = classify(model, tokenizer, texts, max_length=32, placement=placement)
    after = classify(loaded, loaded_tokenizer, texts, max_length=32, placement=placement)
    np.testing.assert_allclose(before, after, atol=1e-6)


def test_loss_uses_class_weights(tiny_model_dir):
    encoder, tokenizer, _ = load_encoder(str(tiny_model_dir))
    model = TicketClassifier(encoder, 2).eval()
    batch = tokenizer(["x", "y"], return_tensors="pt")
    labels = torch.tensor([0, 1])
    plain = model(**batch, labels=labels)["loss"]
    model.class_weights.copy_(torch.tensor([1.0, 0.0]))
    weighted = model(**batch, labels=labels)["loss"]
    assert not torch.isclose(plain, weighted)


def test_reading_in_bf16_converts_a_copy_and_leaves_add_ons_alone(tiny_model_dir):
    """for_reading: a bf16 copy of the encoder to read tickets with on a bf16 CPU placement,
    the training model untouched; fp32 placements and models with adapters (whose hooks run
    fp32 modules) read as they are."""
    from core.addons import add_adapters
    from core.device import Placement
    from core.modeling import embed_tickets, for_reading, in_bf16

    encoder, tokenizer, _ = load_encoder(str(tiny_model_dir))
    model = TicketClassifier(encoder, 3).eval()
    bf16, fp32 = Placement(torch.device("cpu"), "bf16"), Placement(torch.device("cpu"), "fp32")
    reader = for_reading(model, bf16, copy=True)
    assert reader is not model and in_bf16(reader) and not in_bf16(model)
    assert reader.head.weight.dtype == torch.float32
    ids = torch.tensor([[101, 2023, 2003, 1037, 3231, 102]])
    mask = torch.ones_like(ids)
    with torch.inference_mode():
        ours, theirs = reader.embed(ids, mask), model.embed(ids, mask)
    assert ours.dtype == torch.float32 and torch.allclose(ours, theirs, atol=0.05)
    texts = ["my parcel never arrived", "refund the double charge please", "reset my password"]
    read = {"max_length": 32, "batch_size": 2}
    in_bf16_rows = embed_tickets(reader, tokenizer, texts, placement=bf16, **read)
    in_fp32_rows = embed_tickets(model, tokenizer, texts, placement=fp32, **read)
    assert in_bf16_rows.shape == (3, encoder.config.hidden_size)
    np.testing.assert_allclose(in_bf16_rows, in_fp32_rows, atol=0.05)
    assert for_reading(model, fp32, copy=True) is model
    add_adapters(model, 8)
    assert for_reading(model, bf16, copy=True) is model


def test_warm_up_imports_the_model_code_in_a_background_thread(tiny_model_dir):
    """In a fresh process the model's code is not imported; once the warm-up thread is done it
    is, so the run's own load afterwards does not pay for that import (the ~3.5 s it hides
    behind the keyword baseline)."""
    code = (
        "import sys\n"
        "from core.modeling import warm_up_loading\n"
        "name = 'transformers.models.bert.modeling_bert'\n"
        "assert name not in sys.modules, 'imported before the warm-up'\n"
        f"thread = warm_up_loading({str(tiny_model_dir)!r})\n"
        "assert thread.daemon\n"
        "thread.join()\n"
        "print(name in sys.modules)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=180
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "True"


def test_warm_up_leaves_downloads_and_errors_to_the_real_load(tmp_path, monkeypatch):
    """A hub id starts nothing (no download in the background); a local folder that cannot be
    loaded ends its thread quietly: the run's own load says what is wrong."""
    assert warm_up_loading("some-org/not-on-this-machine") is None
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "bert", "hidden_size": "not a number"}')
    (broken / "model.safetensors").write_bytes(b"not safetensors")
    uncaught: list[threading.ExceptHookArgs] = []
    monkeypatch.setattr(threading, "excepthook", uncaught.append)
    thread = warm_up_loading(str(broken))
    assert thread is not None
    thread.join(timeout=120)
    assert not thread.is_alive() and uncaught == []
    with pytest.raises(ConfigError):
        load_encoder(str(broken))
