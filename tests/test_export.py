"""The model export is one zip that loads back into a working Predictor, threshold included,
and that an engineer can use with nothing but an installed TicketTune."""

import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from core.cli import main
from core.errors import RunNotFoundError
from core.export import README, model_archive
from core.inference import NEEDS_REVIEW, Predictor
from core.runs import Run
from tests.conftest import ROOT

TICKETS = ["refund my invoice", "I cannot log in, the reset link is broken"]


def unzip(data: bytes, folder: Path) -> set[str]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        zf.extractall(folder)
        return set(zf.namelist())


@pytest.fixture
def run_copy(trained_run, tmp_path) -> Run:
    """A private copy of the trained run (the shared one must keep no threshold)."""
    return Run(shutil.copytree(trained_run.path, tmp_path / trained_run.id))


def test_zip_holds_model_and_metrics_and_loads_back(trained_run, tmp_path):
    names = unzip(model_archive(trained_run), tmp_path)
    assert {"README.txt", "metrics.json", "config.json", "model/tickettune.json"} <= names
    assert "model/model.safetensors" in names and "model/head.safetensors" in names
    assert "model/threshold.json" not in names
    original = Predictor.load(trained_run.path).predict(["refund my invoice"])[0]
    restored = Predictor.load(tmp_path / "model")
    assert restored.threshold is None
    assert NEEDS_REVIEW not in restored.predict_frame(TICKETS).columns
    prediction = restored.predict(["refund my invoice"])[0]
    assert prediction.label == original.label
    assert prediction.confidence == pytest.approx(original.confidence, abs=1e-4)


def test_the_threshold_travels_with_the_export(run_copy, tmp_path):
    """Bug 4: the saved threshold is in the zip, and a Predictor from it marks needs_review."""
    sure = Predictor.load(run_copy.path).predict_frame(TICKETS)["confidence"]
    threshold = float(sure.mean())
    run_copy.save_automation_threshold(threshold, {"coverage": 0.5})
    assert Predictor.load(run_copy.path).threshold == threshold

    unzip(model_archive(run_copy), tmp_path / "export")
    for folder in (tmp_path / "export" / "model", tmp_path / "export"):
        predictor = Predictor.load(folder)
        assert predictor.threshold == threshold
        frame = predictor.predict_frame(TICKETS)
        assert frame[NEEDS_REVIEW].tolist() == (frame["confidence"] < threshold).tolist()
        assert NEEDS_REVIEW not in predictor.predict_frame(TICKETS, threshold=None)


def _cli_predict(run_dir: Path, tmp_path: Path, *extra: str) -> pd.DataFrame:
    data, out = tmp_path / "new.csv", tmp_path / "scored.csv"
    pd.DataFrame({"id": [1, 2, 3], "ticket": [*TICKETS, ""]}).to_csv(data, index=False)
    assert main(["predict", str(run_dir), "--data", str(data), "--out", str(out), *extra]) == 0
    return pd.read_csv(out, keep_default_na=False, na_values=[""])


def test_cli_predict_uses_the_runs_threshold_unless_told_otherwise(run_copy, tmp_path):
    """Default: the saved threshold; --threshold overrides it; --no-threshold drops the column."""
    assert NEEDS_REVIEW not in _cli_predict(run_copy.path, tmp_path)  # none saved yet
    run_copy.save_automation_threshold(1.0)  # nothing is that sure: every ticket to a person
    scored = _cli_predict(run_copy.path, tmp_path)
    assert scored[NEEDS_REVIEW].tolist() == [True, True, True]
    scored = _cli_predict(run_copy.path, tmp_path, "--threshold", "0")
    assert scored[NEEDS_REVIEW].tolist() == [False, False, True]  # the empty ticket still
    assert NEEDS_REVIEW not in _cli_predict(run_copy.path, tmp_path, "--no-threshold")


def test_cli_predict_rejects_a_threshold_out_of_range(run_copy, tmp_path, capsys):
    data = tmp_path / "new.csv"
    pd.DataFrame({"ticket": TICKETS}).to_csv(data, index=False)
    out = str(tmp_path / "x.csv")
    code = main(["predict", str(run_copy.path), "--data", str(data), "--out", out,
                 "--threshold", "80"])  # fmt: skip
    assert code == 2
    assert "between 0 and 1" in capsys.readouterr().err
    assert not Path(out).exists()


def test_run_without_model_cannot_be_exported(tmp_path):
    from core.runs import RunStore

    run = RunStore(tmp_path).create("empty")
    with pytest.raises(RunNotFoundError, match="no trained model"):
        model_archive(run)


@pytest.mark.slow  # 30-40 s on 2 shared cores: a pip install and a fresh Python with torch
def test_the_readme_lines_work_with_an_installed_tickettune(trained_run, tmp_path):
    """The export README's Python lines, run as an engineer would: TicketTune installed with
    pip into a fresh virtual environment, in the unzipped folder, far from this checkout."""
    export = tmp_path / "export"
    unzip(model_archive(trained_run), export)
    lines = [line[4:] for line in README.splitlines() if line.startswith(">>> ")]
    assert lines and "pip install tickettune" in README
    *setup, call = lines
    scored = f"[[x.label, x.confidence] for x in {call}]"
    script = "\n".join([*setup, "import core, json", f"print(core.__file__, json.dumps({scored}))"])

    source = tmp_path / "tickettune-src"  # a clean copy: the build leaves no files here
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", "runs", "build", "*.egg-info", "__pycache__", ".venv", "tests", "bench",
        "test-artifacts", ".*_cache"))  # fmt: skip
    venv = tmp_path / "venv"
    # No pip of its own: the system pip and setuptools (and torch & co) are used, offline.
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip",
                    str(venv)], check=True)  # fmt: skip
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PIP_NO_INDEX"] = "1"
    pip = [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation"]
    subprocess.run([*pip, str(source)], check=True, env=env, cwd=tmp_path)
    shutil.rmtree(source)

    done = subprocess.run([str(python), "-c", script], cwd=export, env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    where, printed = done.stdout.strip().splitlines()[-1].split(" ", 1)
    assert Path(where).is_relative_to(venv), "core must come from the installed package"
    scored = json.loads(printed)
    labels = json.loads((export / "model" / "tickettune.json").read_text())["labels"]
    assert len(scored) == 2
    assert all(label in labels and 0 < sure <= 1 for label, sure in scored)
