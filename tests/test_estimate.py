"""The training-time estimate grows with data, epochs and ticket length, and honours the budget."""

from core.config import TrainConfig
from core.estimate import estimate_training_seconds


def test_quick_is_much_faster_than_full():
    quick = estimate_training_seconds(15_000, TrainConfig(method="quick"))
    full = estimate_training_seconds(15_000, TrainConfig())
    assert quick < 60 < full
    assert full < 15 * 60, "the default on CLINC-sized data is promised under 15 minutes"


def test_more_epochs_and_longer_tickets_take_longer():
    base = estimate_training_seconds(5_000, TrainConfig(epochs=1))
    assert estimate_training_seconds(5_000, TrainConfig(epochs=2)) > base
    assert estimate_training_seconds(5_000, TrainConfig(epochs=1), mean_tokens=64) > base


def test_time_budget_caps_the_estimate():
    capped = estimate_training_seconds(100_000, TrainConfig(time_budget_minutes=2))
    assert capped <= 2 * 60 + 30
