"""python -m core: the interface scripts rely on, used as a person would type it."""

import json
import subprocess
import sys

import pandas as pd
import pytest

from core.cli import main
from tests.conftest import ROOT, SAMPLE_NEW_TICKETS, SAMPLE_TICKETS


def last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


def test_train_evaluate_predict_round_trip_on_the_embedded_model(tmp_path, capsys):
    """The built-in all-MiniLM-L6-v2, fine-tuned for real on the sample tickets, end to end."""
    runs = tmp_path / "runs"
    code = main(
        ["train", "--data", str(SAMPLE_TICKETS), "--text-column", "subject",
         "--text-column", "body", "--label-column", "category", "--epochs", "2",
         "--runs-dir", str(runs), "--name", "sample"]
    )  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    result = last_json(out)
    for key in ("run_id", "run_dir", "accuracy", "macro_f1", "baseline_accuracy",
                "baseline_macro_f1", "train_seconds"):  # fmt: skip
        assert key in result
    assert result["macro_f1"] >= 0.75, "the real model learns the sample categories"
    assert "Training started" in err

    assert main(["evaluate", result["run_dir"], "--data", str(SAMPLE_TICKETS)]) == 0
    evaluated = last_json(capsys.readouterr().out)
    assert set(evaluated) >= {"accuracy", "macro_f1", "weighted_f1", "n"}
    assert evaluated["accuracy"] >= result["accuracy"] - 0.05, "training tickets included"

    out_file = tmp_path / "scored.csv"
    assert main(["predict", result["run_dir"], "--data", str(SAMPLE_NEW_TICKETS),
                 "--out", str(out_file)]) == 0  # fmt: skip
    scored = pd.read_csv(out_file)
    new = pd.read_csv(SAMPLE_NEW_TICKETS)
    assert len(scored) == len(new)
    assert {"predicted_label", "confidence", "top2_label", "top3_label"} <= set(scored.columns)
    labels = set(pd.read_csv(SAMPLE_TICKETS)["category"].dropna())
    assert set(scored["predicted_label"]) <= labels

    assert main(["runs", "--runs-dir", str(runs)]) == 0
    assert result["run_id"] in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--data", "nope.csv", "--text-column", "body", "--label-column", "category"],
         "nope.csv"),
        (["--data", str(SAMPLE_TICKETS), "--text-column", "text", "--label-column", "category"],
         "No column"),
        (["--data", str(SAMPLE_TICKETS), "--text-column", "body", "--label-column", "category",
          "--epochs", "0"], "epochs must be between"),
    ],
)  # fmt: skip
def test_user_errors_are_one_line_without_traceback(tmp_path, capsys, args, words):
    code = main(["train", *args, "--runs-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and words in err
    assert "Traceback" not in err


def test_missing_run_is_a_clear_error(tmp_path, capsys):
    code = main(["predict", str(tmp_path), "--data", str(SAMPLE_NEW_TICKETS), "--out", "x.csv"])
    assert code == 2 and "No trained model" in capsys.readouterr().err


def test_module_entry_point_runs_as_a_process(tmp_path):
    """`python -m core` works from a shell: exit code and the one-line error on stderr."""
    proc = subprocess.run(
        [sys.executable, "-m", "core", "runs", "--runs-dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0 and "No runs yet" in proc.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "core", "train", "--data", str(tmp_path / "missing.csv"),
         "--text-column", "a", "--label-column", "b", "--runs-dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and bad.stderr.startswith("error:")


def test_encoding_option_reads_legacy_files(tmp_path, capsys, trained_run):
    """--encoding is how a file is read by predict, evaluate and train; a wrong or unknown one
    is a one-line error."""
    tickets = pd.DataFrame(
        {
            "тема": ["Принтер не печатает", "Не могу войти в почту"],
            "описание": ["Принтер на третьем этаже не печатает.", "Пароль не подходит."],
            "team": ["железо", "доступ"],
        }
    )
    data = tmp_path / "tickets.csv"
    data.write_bytes(tickets.to_csv(index=False).encode("cp1251"))
    out = tmp_path / "scored.csv"
    predict = ["predict", str(trained_run.path), "--data", str(data), "--out", str(out)]
    predict += ["--text-column", "описание"]

    assert main([*predict, "--encoding", "cp1251"]) == 0
    assert pd.read_csv(out)["описание"].tolist() == tickets["описание"].tolist()
    capsys.readouterr()
    assert main([*predict, "--encoding", "cp1252"]) == 2, "read as Western, the column is gone"
    assert "no column 'описание'" in capsys.readouterr().err
    evaluate = ["evaluate", str(trained_run.path), "--data", str(data), "--encoding", "klingon"]
    assert main(evaluate) == 2
    assert "does not know the text encoding 'klingon'" in capsys.readouterr().err
    train = ["train", "--data", str(data), "--text-column", "описание", "--label-column", "team"]
    assert main([*train, "--encoding", "utf-8", "--runs-dir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "cannot be read as Unicode (UTF-8)" in err
    assert err.strip().count("\n") == 0
