"""The model export is one zip that loads back into a working Predictor."""

import io
import zipfile

import pytest

from core.errors import RunNotFoundError
from core.export import model_archive
from core.inference import Predictor


def test_zip_holds_model_and_metrics_and_loads_back(trained_run, tmp_path):
    data = model_archive(trained_run)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = set(zf.namelist())
        zf.extractall(tmp_path)
    assert {"README.txt", "metrics.json", "config.json", "model/tickettune.json"} <= names
    assert "model/model.safetensors" in names and "model/head.safetensors" in names
    original = Predictor.load(trained_run.path).predict(["refund my invoice"])[0]
    restored = Predictor.load(tmp_path / "model").predict(["refund my invoice"])[0]
    assert restored.label == original.label
    assert restored.confidence == pytest.approx(original.confidence, abs=1e-4)


def test_run_without_model_cannot_be_exported(tmp_path):
    from core.runs import RunStore

    run = RunStore(tmp_path).create("empty")
    with pytest.raises(RunNotFoundError, match="no trained model"):
        model_archive(run)
