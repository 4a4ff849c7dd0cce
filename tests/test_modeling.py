"""The classifier: embedded model found offline, mean pooling, save/load round trip."""

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
)


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


def test_a_model_folder_with_a_broken_config_is_a_clear_error(tmp_path):
    """A config.json with a wrong value was a raw huggingface_hub validation error."""
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "bert", "hidden_size": "not a number"}')
    (broken / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ConfigError, match="Could not load the model"):
        load_encoder(str(broken))
