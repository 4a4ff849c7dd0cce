"""Adapters and prompt tuning: what trains, how they are saved and scored like every method."""

import numpy as np
import pytest
import torch

from core.config import METHOD_DESCRIPTIONS, METHODS, TrainConfig
from core.inference import Predictor
from core.methods import BENCH, METHOD_FACTS, method_gist
from core.modeling import ModelMeta, load_classifier, save_classifier
from core.training import TicketTrainer, train
from tests.helpers import topic_split


def test_every_method_has_facts_and_a_gist():
    assert set(METHOD_FACTS) == set(METHODS) >= {"adapter", "prompt"}
    for method in METHODS:
        assert METHOD_DESCRIPTIONS[method] and method_gist(method)
    assert all(BENCH in f.gist for f in METHOD_FACTS.values()), "each gist names its benchmark"


def test_new_adapters_start_as_the_identity(tiny_model_dir):
    """The up-projection starts at zero: adding adapters does not change the embeddings."""
    steps = TicketTrainer(TrainConfig(model=str(tiny_model_dir), method="adapter"), topic_split())
    steps.load()
    batch = steps.tokenizer(["my invoice is wrong"], return_tensors="pt")
    before = steps.model.embed(batch["input_ids"], batch["attention_mask"]).detach()
    steps.prepare_method()
    after = steps.model.embed(batch["input_ids"], batch["attention_mask"]).detach()
    torch.testing.assert_close(before, after)
    trainable = {n.split(".")[0] for n, p in steps.model.named_parameters() if p.requires_grad}
    assert trainable == {"head", "addon_modules"}


@pytest.mark.parametrize("method", ["adapter", "prompt"])
def test_saved_addon_scores_the_same_after_loading(tiny_model_dir, tmp_path, method):
    """The run stores its add-on beside a plain encoder; Predictor gives the same scores."""
    split = topic_split()
    config = TrainConfig(model=str(tiny_model_dir), method=method, epochs=2, batch_size=16)
    outcome = train(config, split)
    assert outcome.meta.addon["kind"] == method
    save_classifier(outcome.model, outcome.tokenizer, outcome.meta, tmp_path)
    meta = ModelMeta.from_dict(__import__("json").loads((tmp_path / "tickettune.json").read_text()))
    assert meta.addon == outcome.meta.addon
    assert (tmp_path / "model.safetensors").is_file()
    plain = type(load_classifier(tmp_path)[0].encoder).__name__
    assert plain in ("BertModel", "PeftModelForFeatureExtraction")
    predictor = Predictor.load(tmp_path)
    scored = predictor.predict_proba(split.test["text"].tolist())
    np.testing.assert_allclose(scored, outcome.test_probabilities, atol=1e-4)


def test_addon_changes_what_the_model_reads(tiny_model_dir, tmp_path):
    """Without its saved add-on the same encoder + head scores differently: it is really used."""
    split = topic_split()
    config = TrainConfig(model=str(tiny_model_dir), method="prompt", epochs=2, batch_size=16)
    outcome = train(config, split)
    save_classifier(outcome.model, outcome.tokenizer, outcome.meta, tmp_path)
    model, tokenizer, meta = load_classifier(tmp_path)
    texts = split.test["text"].tolist()[:8]
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        prompted = model(**batch)["logits"]
        plain = type(model)(model.encoder.get_base_model(), len(meta.labels))
        plain.head.load_state_dict(model.head.state_dict())
        unprompted = plain.eval()(**batch)["logits"]
    assert not torch.allclose(prompted, unprompted, atol=1e-4)


def test_every_method_has_a_training_time_estimate():
    """The Train page estimates the time of whichever method is chosen (was a KeyError)."""
    from core.estimate import estimate_training_seconds

    quick = estimate_training_seconds(5_000, TrainConfig(method="quick"))
    for method in METHODS:
        if method != "quick":
            assert estimate_training_seconds(5_000, TrainConfig(method=method)) > quick
