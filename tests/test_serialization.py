"""One policy for every saved dataclass: unknown keys are ignored (and logged), missing
required keys are a ConfigError that says what is missing."""

from __future__ import annotations

import json
import logging

import pytest

from core.config import TrainConfig
from core.errors import ConfigError
from core.modeling import ModelMeta
from core.report import DataReport
from core.schema import LabelScheme

REPORT = {
    "rows_read": 10,
    "rows_used": 9,
    "dropped": {"empty text": 1},
    "class_counts": {"a": 5, "b": 4},
    "imbalance_ratio": 1.25,
    "duplicate_texts": 0,
    "conflicting_duplicates": 0,
    "conflict_examples": [],
    "length_unit": "words",
    "length_percentiles": {"50": 7},
    "rare_labels": {},
}

#: (class, a saved dict it wrote, a key it cannot do without)
CASES = [
    (ModelMeta, ModelMeta(["a", "b"], 64, "default", "full").to_dict(), "labels"),
    (
        LabelScheme,
        LabelScheme(text_columns=("body",), label_column="team").to_dict(),
        "label_column",
    ),
    (DataReport, REPORT, "rows_used"),
]


@pytest.mark.parametrize(
    ("cls", "saved", "required"), CASES, ids=lambda c: getattr(c, "__name__", "")
)
def test_unknown_key_loads_and_is_logged(cls, saved, required, caplog) -> None:
    """A file from a newer version (an extra key) still loads; the extra key is noted."""
    newer = json.loads(json.dumps({**saved, "added_in_v9": [1, 2]}))
    with caplog.at_level(logging.INFO, logger="core.serialization"):
        loaded = cls.from_dict(newer)
    assert loaded == cls.from_dict(saved)
    assert loaded.to_dict() == cls.from_dict(saved).to_dict()
    assert "added_in_v9" in caplog.text


@pytest.mark.parametrize(
    ("cls", "saved", "required"), CASES, ids=lambda c: getattr(c, "__name__", "")
)
def test_missing_required_key_is_a_clear_error(cls, saved, required) -> None:
    broken = {k: v for k, v in saved.items() if k != required}
    with pytest.raises(ConfigError, match=f"{required} is missing"):
        cls.from_dict(broken)


def test_train_config_unknown_key_loads_and_is_logged(caplog) -> None:
    saved = TrainConfig(method="lora", epochs=2).to_dict()
    with caplog.at_level(logging.INFO, logger="core.serialization"):
        loaded = TrainConfig.from_dict({**saved, "colour": "blue"})
    assert loaded == TrainConfig(method="lora", epochs=2)
    assert "colour" in caplog.text


def test_train_config_has_no_required_keys_but_bad_values_still_fail() -> None:
    """Every training setting has a default, so {} loads; a bad value is still refused."""
    assert TrainConfig.from_dict({}) == TrainConfig()
    with pytest.raises(ConfigError, match="epochs"):
        TrainConfig.from_dict({"epochs": -1})


def test_not_a_json_object_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="expected a JSON object"):
        ModelMeta.from_dict(["a", "b"])  # type: ignore[arg-type]


def test_saved_model_from_a_newer_version_loads(tiny_model_dir, tmp_path) -> None:
    """Bug 5: load_classifier used ModelMeta(**json) and crashed on an unknown key."""
    from core.modeling import (
        META_FILE,
        TicketClassifier,
        load_classifier,
        load_encoder,
        save_classifier,
    )

    encoder, tokenizer, _ = load_encoder(str(tiny_model_dir))
    meta = ModelMeta(["a", "b"], 32, str(tiny_model_dir), "full")
    save_classifier(TicketClassifier(encoder, 2), tokenizer, meta, tmp_path)
    saved = json.loads((tmp_path / META_FILE).read_text(encoding="utf-8"))
    (tmp_path / META_FILE).write_text(json.dumps({**saved, "calibration": "isotonic"}))
    _, _, loaded = load_classifier(tmp_path)
    assert loaded == meta
