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


def test_audit_ranks_a_deliberately_wrong_label_first(tmp_path, capsys, tiny_model_dir):
    """`audit` writes every ticket, most suspicious first, with the file's row and id."""
    table = pd.read_csv(SAMPLE_TICKETS)
    labelled = table[table["category"].notna()].index
    wrong = {int(labelled[10]): "shipping", int(labelled[20]): "feature_request"}
    for row, label in wrong.items():
        assert table.loc[row, "category"] != label
        table.loc[row, "category"] = label
    data = tmp_path / "tickets.csv"
    table.to_csv(data, index=False)
    out = tmp_path / "audit.csv"
    code = main(
        ["audit", "--data", str(data), "--text-column", "subject", "--text-column", "body",
         "--label-column", "category", "--out", str(out), "--model", str(tiny_model_dir),
         "--folds", "4"]
    )  # fmt: skip
    stdout, err = capsys.readouterr()
    assert code == 0, err
    summary = last_json(stdout)
    ranked = pd.read_csv(out)
    assert summary["out"] == str(out) and summary["n_rows"] == len(ranked)
    assert summary["n_flagged"] == int(ranked["flagged"].sum()) > 0
    assert list(ranked.columns[:7]) == [
        "row", "ticket_id", "text", "given_label", "suggested_label", "score", "sheet_row"
    ]  # fmt: skip
    assert ranked["score"].is_monotonic_increasing
    top = ranked.head(30).set_index("row")
    assert set(wrong) <= set(top.index), "both wrong labels are among the 30 most suspicious"
    for row, label in wrong.items():
        assert top.loc[row, "given_label"] == label
        assert top.loc[row, "ticket_id"] == table.loc[row, "ticket_id"]
    assert "4 folds" in err


def test_audit_of_a_file_with_one_label_is_a_one_line_error(tmp_path, capsys, tiny_model_dir):
    data = tmp_path / "one.csv"
    pd.DataFrame({"text": [f"ticket {i}" for i in range(12)], "team": "finance"}).to_csv(
        data, index=False
    )
    code = main(
        ["audit", "--data", str(data), "--text-column", "text", "--label-column", "team",
         "--out", str(tmp_path / "x.csv"), "--model", str(tiny_model_dir)]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and "one label" in err.lower()
    assert err.strip().count("\n") == 0
    assert not (tmp_path / "x.csv").exists()
