"""The training-time estimate grows with data, epochs and ticket length, and honours the budget."""

import json
from dataclasses import replace

import pytest

from core.config import TrainConfig
from core.estimate import (
    FIXED_SECONDS,
    SPEED_FILE,
    calibrate,
    estimate_training_seconds,
    fixed_seconds,
    machine_key,
    mean_tokens_from_report,
    record_run_speed,
    speed_factor,
    table_seconds,
)


def test_quick_is_much_faster_than_full(tmp_path):
    quick = estimate_training_seconds(15_000, TrainConfig(method="quick"), runs_dir=tmp_path)
    full = estimate_training_seconds(15_000, TrainConfig(), runs_dir=tmp_path)
    assert quick < 60 < full
    assert full < 15 * 60, "the default on CLINC-sized data is promised under 15 minutes"


def test_more_epochs_and_longer_tickets_take_longer(tmp_path):
    base = estimate_training_seconds(5_000, TrainConfig(epochs=1), runs_dir=tmp_path)
    assert estimate_training_seconds(5_000, TrainConfig(epochs=2), runs_dir=tmp_path) > base
    longer = estimate_training_seconds(
        5_000, TrainConfig(epochs=1), mean_tokens=64, runs_dir=tmp_path
    )
    assert longer > base


def test_time_budget_caps_the_estimate(tmp_path):
    capped = estimate_training_seconds(
        100_000, TrainConfig(time_budget_minutes=2), runs_dir=tmp_path
    )
    assert capped <= 2 * 60 + 30


def test_without_measurements_the_rate_table_is_used(tmp_path):
    config = TrainConfig()
    expected = FIXED_SECONDS + table_seconds(5_000, config)
    assert estimate_training_seconds(5_000, config, runs_dir=tmp_path) == pytest.approx(expected)


def test_an_estimate_after_a_finished_run_uses_that_runs_measured_speed(tmp_path):
    """A machine 4x slower than the table's: after one run the next estimate says so."""
    config = TrainConfig()
    table = estimate_training_seconds(5_000, config, runs_dir=tmp_path)
    measured = FIXED_SECONDS + 4 * table_seconds(5_000, config)
    record_run_speed(tmp_path, config, n_tickets=5_000, mean_tokens=16, total_seconds=measured)
    after = estimate_training_seconds(5_000, config, runs_dir=tmp_path)
    assert after == pytest.approx(measured, rel=1e-3)
    assert after > 3 * table
    # Twice the tickets at that measured speed: about twice the variable time.
    bigger = estimate_training_seconds(10_000, config, runs_dir=tmp_path)
    assert bigger - FIXED_SECONDS == pytest.approx(2 * (after - FIXED_SECONDS), rel=1e-3)
    # Another method (no run yet) and another model are not affected.
    quick = TrainConfig(method="quick")
    assert estimate_training_seconds(5_000, quick, runs_dir=tmp_path) == pytest.approx(
        fixed_seconds(quick) + table_seconds(5_000, quick)
    )
    assert fixed_seconds(quick) < FIXED_SECONDS, "quick fits its heads alongside the reading"


def test_a_finished_pipeline_run_records_its_speed_for_the_next_estimate(trained_run):
    """The real pipeline run of the tiny model wrote its rate; the estimate reproduces it."""
    runs_dir = trained_run.path.parent
    data = json.loads((runs_dir / SPEED_FILE).read_text(encoding="utf-8"))
    config = TrainConfig.from_dict(trained_run.read_json("config.json"))
    entry = data[machine_key(config)][config.model][config.method]
    assert entry["run_id"] == trained_run.id and entry["tickets_per_s"] > 0
    metrics = trained_run.read_json("metrics.json")
    sizes = metrics["training"]["split_sizes"]
    n_tickets = sum(sizes.values())
    batch_size = metrics["training"]["batch_size"]  # automatic: recorded as used
    assert batch_size == config.for_training_set(sizes["train"]).batch_size
    epochs_done = min(config.epochs, metrics["training"]["steps"] * batch_size / sizes["train"])
    tokens = mean_tokens_from_report(trained_run.read_json("report.json"))
    work = table_seconds(n_tickets, config, mean_tokens=tokens, epochs=epochs_done)
    total = fixed_seconds(config) + work * entry["factor"]
    assert entry["factor"] == pytest.approx(speed_factor(config, runs_dir))
    estimate = estimate_training_seconds(
        n_tickets, replace(config, epochs=epochs_done), mean_tokens=tokens, runs_dir=runs_dir
    )
    assert estimate == pytest.approx(total, rel=1e-3)


def test_calibration_measures_once_per_model_and_machine(tiny_model_dir, tmp_path):
    config = TrainConfig(model=str(tiny_model_dir), method="full")
    texts = [f"My parcel {i} never arrived, please help" for i in range(128)]
    factor = calibrate(texts, config, tmp_path)
    assert factor > 0
    assert speed_factor(config, tmp_path) == pytest.approx(factor, rel=1e-3)
    stamp = (tmp_path / SPEED_FILE).stat().st_mtime_ns
    assert calibrate(texts, config, tmp_path) == pytest.approx(factor, rel=1e-3)
    assert (tmp_path / SPEED_FILE).stat().st_mtime_ns == stamp
    # A finished run of the method replaces the calibration for it.
    record_run_speed(tmp_path, config, n_tickets=1_000, mean_tokens=16, total_seconds=500)
    assert speed_factor(config, tmp_path) != pytest.approx(factor)


def test_mean_tokens_from_a_report_in_tokens_or_words():
    assert (
        mean_tokens_from_report({"length_unit": "tokens", "length_percentiles": {"p50": 20}}) == 20
    )
    words = mean_tokens_from_report({"length_unit": "words", "length_percentiles": {"p50": 20}})
    assert words == pytest.approx(26)
