"""python -m core: the interface scripts rely on, used as a person would type it."""

import json
import os
import pty
import re
import subprocess
import sys

import pandas as pd
import pytest

from core.cli import main
from core.report import DataReport
from core.runs import Run
from tests.conftest import ROOT, SAMPLE_NEW_TICKETS, SAMPLE_TICKETS


def last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.slow
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


def run_in_terminal(args: list[str]) -> tuple[int, str, str]:
    """Run ``python -m core`` with stderr on a pseudo-terminal, as a person at a shell sees it."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "core", *args],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=slave, text=True,
    )  # fmt: skip
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    out = proc.stdout.read()
    return proc.wait(timeout=600), out, b"".join(chunks).decode("utf-8", "replace")


def terminal_lines(err: str) -> list[str]:
    """What stays visible: each \\r or newline starts a new line; erase codes removed."""
    return [line for line in re.split(r"[\r\n]+", err.replace("\x1b[K", "")) if line.strip()]


@pytest.fixture(scope="module")
def stopped_run(tiny_model_dir, tmp_path_factory):
    """The tiny model trained from the shell on the sample tickets, stopped by a time budget."""
    runs = tmp_path_factory.mktemp("cli-runs")
    code, out, err = run_in_terminal(
        ["train", "--data", str(SAMPLE_TICKETS), "--text-column", "subject",
         "--text-column", "body", "--label-column", "category", "--model", str(tiny_model_dir),
         "--method", "full", "--epochs", "20", "--time-budget", "0.02",
         "--runs-dir", str(runs)]
    )  # fmt: skip
    assert code == 0, err
    return last_json(out), err


def test_train_prints_the_data_report(stopped_run):
    """Bug 11: rows left out (here: no label) were dropped without a word on the CLI."""
    result, err = stopped_run
    table = pd.read_csv(SAMPLE_TICKETS, keep_default_na=False, na_values=[""])
    no_label = int(table["category"].isna().sum())
    no_text = int(
        (table["subject"].isna() & table["body"].isna() & table["category"].notna()).sum()
    )
    assert no_label > 0, "the sample file has tickets without a label"
    left_out = no_label + no_text
    lines = terminal_lines(err)
    assert f"Read {len(table)} rows: {len(table) - left_out} used, {left_out} left out" in err
    assert f"{no_label} with no label" in err
    report = DataReport.from_dict(Run(result["run_dir"]).read_json("report.json"))
    assert (report.rows_read, sum(report.dropped.values())) == (len(table), left_out)
    assert report.summary_lines() == [line for line in lines if line in report.summary_lines()]
    assert f"{report.conflicting_duplicates} texts carry conflicting labels" in err
    warnings = [w for w in report.warnings if "were left out" not in w]
    assert warnings and all(f"Warning: {w}" in lines for w in warnings)


def test_progress_ends_on_the_end_not_a_stale_bar(stopped_run):
    """Bug 11: a run stopped early left "67% saving 24/36 … ETA" as the last progress line."""
    result, err = stopped_run
    assert result["stop_reason"] == "time budget"
    last = terminal_lines(err)[-1]
    assert "100% done" in last and "training stopped: time budget" in last
    assert "ETA" not in last


def test_evaluate_warns_about_tickets_the_run_trained_on(stopped_run, tmp_path, capsys):
    """Bug 11: evaluate on the training tickets scored high without a warning."""
    run_dir = stopped_run[0]["run_dir"]
    assert main(["evaluate", run_dir, "--data", str(SAMPLE_TICKETS)]) == 0
    out, err = capsys.readouterr()
    everything = last_json(out)
    seen = everything["seen_in_training"]
    assert 0 < seen < everything["n"]
    assert f"warning: {seen} of {everything['n']} evaluated tickets" in err

    split = Run(run_dir).read_frame("split.csv")
    for part, expected in (("train", "all"), ("test", 0)):
        file = tmp_path / f"{part}.csv"
        split[split["split"] == part][["text", "label"]].to_csv(file, index=False)
        code = main(["evaluate", run_dir, "--data", str(file), "--text-column", "text",
                     "--label-column", "label"])  # fmt: skip
        out, err = capsys.readouterr()
        scored = last_json(out)
        assert code == 0
        assert scored["seen_in_training"] == (scored["n"] if expected == "all" else 0)
        assert ("warning:" in err) == (expected == "all")


IMPORT_PROBE = """
import sys
from core.cli import main
try:
    main({argv!r})
except SystemExit:  # --help exits after printing
    pass
print("heavy:", [m for m in ("torch", "transformers", "pandas") if m in sys.modules])
"""


@pytest.mark.parametrize("argv", [["--help"], ["runs", "--runs-dir", "{tmp}"]])
def test_commands_without_a_model_do_not_import_torch_or_pandas(tmp_path, argv):
    """--help and runs must answer within a second: torch + transformers take seconds to
    import, pandas (with pyarrow and charset-normalizer) 0.6-0.8 s on an ordinary 2-core CPU."""
    argv = [a.format(tmp=tmp_path) for a in argv]
    proc = subprocess.run(
        [sys.executable, "-c", IMPORT_PROBE.format(argv=argv)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "heavy: []"
    assert ("usage" in proc.stdout) if argv == ["--help"] else ("No runs yet" in proc.stdout)


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
