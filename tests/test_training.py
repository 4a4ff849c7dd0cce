"""train(): every method really trains a (tiny, random-initialised) BERT on real text."""

import threading

import numpy as np
import pandas as pd
import pytest

from core.config import TrainConfig
from core.errors import JobCancelledError
from core.training import choose_max_length, train
from tests.helpers import topic_split


def accuracy(outcome, split) -> float:
    predicted = np.asarray(outcome.meta.labels)[outcome.test_probabilities.argmax(axis=1)]
    return float((predicted == split.test["label"].to_numpy()).mean())


@pytest.mark.parametrize("method", ["quick", "full", "lora", "bitfit", "head"])
def test_each_method_learns_the_topics(tiny_model_dir, method):
    """On keyword-separable tickets every method ends far above chance (1/3)."""
    split = topic_split()
    events = []
    config = TrainConfig(
        model=str(tiny_model_dir), method=method, epochs=4, batch_size=16, early_stopping_patience=0
    )
    outcome = train(config, split, progress=events.append)
    assert outcome.test_probabilities.shape == (len(split.test), 3)
    np.testing.assert_allclose(outcome.test_probabilities.sum(axis=1), 1.0, rtol=1e-4)
    assert accuracy(outcome, split) >= 0.7
    assert outcome.meta.labels == ["billing", "login", "shipping"]
    stages = {e.stage for e in events}
    assert {"loading", "embedding", "fitting"} <= stages
    if method != "quick":
        training = [e for e in events if e.stage == "training"]
        assert training[-1].step == training[-1].total_steps == outcome.steps > 0
        assert training[-1].message.startswith("Training finished")
        assert any(e.eval_metrics for e in training), "validation was checked during training"
        assert outcome.best_validation_macro_f1 is not None


def test_lora_is_merged_so_the_saved_encoder_is_plain(tiny_model_dir):
    outcome = train(TrainConfig(model=str(tiny_model_dir), method="lora", epochs=1), topic_split())
    assert type(outcome.model.encoder).__name__ == "BertModel"


@pytest.mark.parametrize(
    ("method", "encoder_trainable"),
    [("full", "all"), ("bitfit", "biases"), ("head", "none"), ("lora", "lora")],
)
def test_methods_choose_which_weights_train(tiny_model_dir, method, encoder_trainable):
    from core.modeling import TicketClassifier, load_encoder
    from core.training import _prepare_method

    encoder = load_encoder(str(tiny_model_dir))[0]
    model = _prepare_method(TicketClassifier(encoder, 3), TrainConfig(method=method))
    trainable = [n for n, p in model.encoder.named_parameters() if p.requires_grad]
    assert all(p.requires_grad for p in model.head.parameters())
    if encoder_trainable == "all":
        assert len(trainable) == len(list(model.encoder.parameters()))
    elif encoder_trainable == "biases":
        assert trainable and all(n.endswith("bias") for n in trainable)
    elif encoder_trainable == "none":
        assert trainable == []
    else:
        assert trainable and all("lora_" in n for n in trainable)


def test_cancel_between_steps_raises_cancelled(tiny_model_dir):
    """Cancel is cooperative: the Trainer stops at the next step and the run is not saved."""
    cancel = threading.Event()

    def cancel_once_training(event):
        if event.stage == "training" and event.step >= 2:
            cancel.set()

    config = TrainConfig(model=str(tiny_model_dir), epochs=50, batch_size=8)
    with pytest.raises(JobCancelledError):
        train(config, topic_split(), progress=cancel_once_training, cancel=cancel)


def test_time_budget_stops_early_and_keeps_the_best(tiny_model_dir):
    config = TrainConfig(
        model=str(tiny_model_dir),
        epochs=100,
        batch_size=8,
        time_budget_minutes=0.05,
        early_stopping_patience=0,
    )
    outcome = train(config, topic_split())
    assert outcome.stop_reason == "time budget"
    assert outcome.steps < 100 * 13
    assert outcome.best_validation_macro_f1 is not None


def test_class_weighting_sets_balanced_weights(tiny_model_dir):
    split = topic_split()
    login = split.train["label"] == "login"
    split.train = pd.concat([split.train[~login], split.train[login].head(5)], ignore_index=True)
    config = TrainConfig(model=str(tiny_model_dir), method="head", epochs=1, class_weighting=True)
    weights = train(config, split).model.class_weights.numpy()
    assert weights[1] > 2 * weights[0], "the rare 'login' label weighs more"


def test_max_length_follows_the_data(tiny_model_dir):
    from core.modeling import load_tokenizer

    tokenizer = load_tokenizer(str(tiny_model_dir))
    assert choose_max_length(tokenizer, ["short ticket"] * 50) == 32
    long = ["word " * 400] * 50
    assert choose_max_length(tokenizer, long) == 402
    assert choose_max_length(tokenizer, ["word " * 900] * 50) == 512
