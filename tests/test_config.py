"""TrainConfig validates every setting once and round-trips through JSON."""

import json

import pytest

from core.config import (
    DEFAULT_EPOCHS,
    LARGE_BATCH,
    LARGE_BATCH_FROM_TICKETS,
    LARGE_BATCH_LEARNING_RATE,
    LARGE_SET_EPOCHS,
    METHOD_DESCRIPTIONS,
    METHODS,
    SMALL_BATCH,
    TrainConfig,
)
from core.errors import ConfigError


def test_defaults_are_valid_and_full_fine_tuning():
    """Pressing Train without touching anything gives full fine-tuning with its own rate."""
    config = TrainConfig()
    assert config.method == "full"
    assert config.effective_learning_rate == pytest.approx(5e-5)
    assert set(METHOD_DESCRIPTIONS) == set(METHODS)


def test_the_automatic_batch_size_depends_on_the_method_and_the_training_set():
    """Large sets train the default method 64 tickets a step at its own learning rate; small
    sets and other methods keep 32; whatever the analyst set by hand is kept."""
    auto = TrainConfig()
    assert auto.batch_size is None
    small = auto.for_training_set(LARGE_BATCH_FROM_TICKETS - 1)
    assert small.batch_size == SMALL_BATCH and small.effective_learning_rate == 5e-5
    large = auto.for_training_set(LARGE_BATCH_FROM_TICKETS)
    assert large.batch_size == LARGE_BATCH
    assert large.effective_learning_rate == LARGE_BATCH_LEARNING_RATE
    assert large.for_training_set(10) == large  # filled in once, then fixed
    lora = TrainConfig(method="lora").for_training_set(50_000)
    assert lora.batch_size == SMALL_BATCH and lora.learning_rate is None
    by_hand = TrainConfig(learning_rate=3e-5).for_training_set(50_000)
    assert (by_hand.batch_size, by_hand.effective_learning_rate) == (LARGE_BATCH, 3e-5)
    assert TrainConfig(batch_size=16).for_training_set(50_000).batch_size == 16


def test_the_automatic_epoch_count_depends_on_the_method_and_the_training_set():
    """Large sets train the default method LARGE_SET_EPOCHS passes (a third moved validation by
    less than the seeds' spread, for 40-60% more time); small sets and other methods
    keep DEFAULT_EPOCHS; epochs set by hand stay, also next to an automatic batch size."""
    assert TrainConfig().epochs is None
    assert TrainConfig().for_training_set(LARGE_BATCH_FROM_TICKETS).epochs == LARGE_SET_EPOCHS
    assert TrainConfig().for_training_set(LARGE_BATCH_FROM_TICKETS - 1).epochs == DEFAULT_EPOCHS
    assert TrainConfig(method="lora").for_training_set(50_000).epochs == DEFAULT_EPOCHS
    by_hand = TrainConfig(epochs=5).for_training_set(50_000)
    assert (by_hand.epochs, by_hand.batch_size) == (5, LARGE_BATCH)
    fixed_batch = TrainConfig(batch_size=16).for_training_set(50_000)
    assert (fixed_batch.epochs, fixed_batch.batch_size) == (LARGE_SET_EPOCHS, 16)
    assert LARGE_SET_EPOCHS < DEFAULT_EPOCHS
    saved = TrainConfig.from_dict(TrainConfig().to_dict())
    assert saved.epochs is None  # a retrain decides again for its own training set


def test_round_trip_through_json():
    config = TrainConfig(method="lora", epochs=1.5, time_budget_minutes=3, class_weighting=True)
    restored = TrainConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert restored == config


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("method", "magic", "method 'magic' is unknown"),
        ("epochs", 0, "epochs must be between"),
        ("learning_rate", 5.0, "learning rate"),
        ("batch_size", 0, "batch size"),
        ("time_budget_minutes", -1, "time budget"),
        ("max_length", 4, "maximum length"),
        ("precision", "fp8", "precision"),
        ("validation_fraction", 0.7, "validation fraction"),
    ],
)
def test_bad_values_are_named_in_the_message(field, value, words):
    with pytest.raises(ConfigError, match=words):
        TrainConfig(**{field: value})


def test_all_problems_reported_at_once():
    with pytest.raises(ConfigError) as info:
        TrainConfig(epochs=-1, batch_size=0)
    assert "epochs" in str(info.value) and "batch size" in str(info.value)


def test_config_is_frozen():
    with pytest.raises(AttributeError):
        TrainConfig().epochs = 9  # type: ignore[misc]
