"""Streaming file scoring: chunk by chunk, the same output as scoring the whole table."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from core.batch_scoring import iter_table_chunks, score_file
from core.errors import DataError
from core.inference import Predictor
from core.scoring import NEEDS_REVIEW, score_table, spreadsheet_safe
from core.tables import read_table
from tests.helpers import topic_frame

CONFIDENCE_COLUMNS = ["confidence", "top2_confidence", "top3_confidence"]


@pytest.fixture(scope="module")
def predictor(trained_run) -> Predictor:
    """fp32, so chunked and whole-table scores differ only by float summation order (bf16
    autocast on AMX CPUs rounds differently with each batch shape)."""
    return Predictor.load(trained_run.path, precision="fp32")


def new_tickets(n_per_label: int = 80) -> pd.DataFrame:
    """Real tickets plus the awkward ones: formula-like text, an empty ticket, accents."""
    frame = topic_frame(n_per_label, seed=7).rename(columns={"text": "ticket", "row": "id"})
    frame["id"] = [f"T-{i:05d}" for i in range(len(frame))]
    frame.loc[3, "ticket"] = '=HYPERLINK("http://x") refund please'
    frame.loc[10, "ticket"] = ""
    frame.loc[11, "ticket"] = "Facture payée deux fois; remboursement"
    return frame.drop(columns="label")


def whole_table_output(predictor, path, tmp_path, threshold=None) -> pd.DataFrame:
    scored = score_table(predictor, read_table(path), ["ticket"], threshold=threshold)
    out = tmp_path / "whole.csv"
    spreadsheet_safe(scored).to_csv(out, index=False)
    return pd.read_csv(out, dtype=str, keep_default_na=False)


def assert_same_output(streamed: pd.DataFrame, whole: pd.DataFrame) -> None:
    assert list(streamed.columns) == list(whole.columns)
    assert len(streamed) == len(whole)
    exact = [c for c in whole.columns if c not in CONFIDENCE_COLUMNS]
    pd.testing.assert_frame_equal(streamed[exact], whole[exact])
    for column in CONFIDENCE_COLUMNS:
        a = pd.to_numeric(streamed[column]).to_numpy()
        b = pd.to_numeric(whole[column]).to_numpy()
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)  # batch padding differs


def test_a_semicolon_cp1252_csv_bigger_than_a_chunk_scores_like_the_whole_table(
    predictor, tmp_path
):
    source = tmp_path / "new.csv"
    new_tickets().to_csv(source, sep=";", index=False, encoding="cp1252")
    out = tmp_path / "scored.csv"
    seen = []
    n = score_file(
        predictor, source, out, ["ticket"], threshold=0.5, chunk_rows=50, on_progress=seen.append
    )
    streamed = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert n == 240 and len(seen) == 5  # 240 rows in chunks of 50
    assert seen[-1].fraction == 1.0 and [p.rows for p in seen] == sorted(p.rows for p in seen)
    assert_same_output(streamed, whole_table_output(predictor, source, tmp_path, threshold=0.5))
    assert streamed.loc[3, "ticket"].startswith("'=")  # still safe to open in Excel
    assert streamed.loc[11, "ticket"] == "Facture payée deux fois; remboursement"
    assert streamed.loc[10, "predicted_label"] == ""  # an empty ticket gets no label
    assert set(streamed[NEEDS_REVIEW]) <= {"True", "False"}
    assert not (tmp_path / "scored.csv.partial").exists()


def test_json_lines_are_streamed_with_the_same_result(predictor, tmp_path):
    source = tmp_path / "new.jsonl"
    lines = [json.dumps(r, ensure_ascii=False) for r in new_tickets(30).to_dict("records")]
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "scored.csv"
    assert score_file(predictor, source, out, ["ticket"], chunk_rows=25) == 90
    streamed = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert_same_output(streamed, whole_table_output(predictor, source, tmp_path))


@pytest.mark.parametrize("extension", [".csv", ".jsonl"])
def test_the_share_read_is_right_from_the_first_chunk_of_a_small_file(tmp_path, extension):
    """Progress says "N of about M tickets": M = N / share read. pandas reads ~256 KB ahead,
    so the byte position made the first M of this 1.6 MB file about five times too low."""
    texts = [f"Ticket {i}: my card was charged twice for order {i * 7919}" for i in range(30_000)]
    source = tmp_path / f"week{extension}"
    frame = pd.DataFrame({"id": range(30_000), "text": texts})
    if extension == ".csv":
        frame.to_csv(source, index=False)
    else:
        frame.to_json(source, orient="records", lines=True)
    chunks = list(iter_table_chunks(source, chunk_rows=1000))
    first, shares = len(chunks[0][0]), [share for _, share in chunks]
    assert first <= 1000 and shares[0] == pytest.approx(first / 30_000, rel=0.01)
    assert shares[-1] == 1.0 and shares == sorted(shares)


def test_chunks_drop_blank_rows_and_pasted_header_copies_like_read_table(tmp_path):
    source = tmp_path / "pasted.csv"
    rows = ["id,ticket,"] + [f"{i},ticket number {i}," for i in range(30)]
    rows[12] = ",,"  # an empty row
    rows[20] = "id,ticket,"  # a header copy from pasting two exports together
    source.write_text("\n".join(rows) + "\n", encoding="utf-8")
    chunks = [frame for frame, _ in iter_table_chunks(source, chunk_rows=7)]
    assert len(chunks) > 3
    joined = pd.concat(chunks, ignore_index=True)
    pd.testing.assert_frame_equal(joined, read_table(source), check_dtype=False)


def test_a_file_with_a_data_row_as_header_names_the_file(tmp_path):
    source = tmp_path / "noheader.csv"
    source.write_text("\n".join(f"{i},same text" for i in range(20)) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"noheader\.csv"):
        list(iter_table_chunks(source, chunk_rows=5))


def test_a_ticket_as_header_is_refused_streamed_as_whole_even_when_spotted_late(tmp_path):
    """The header is judged on the same rows as read_table: here the first row's label recurs
    only after the first chunks, and both readers still refuse the file."""
    source = tmp_path / "noheader.csv"
    rows = ["Printer broken,hardware"]
    rows += [f"Refund {i} please,billing" for i in range(300)] + ["Laptop dead,hardware"]
    source.write_text("\n".join(rows) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match="looks like a ticket"):
        read_table(source)
    with pytest.raises(DataError, match=r"noheader\.csv.*looks like a ticket"):
        list(iter_table_chunks(source, chunk_rows=10))


def test_values_in_a_nameless_column_late_in_the_file_are_refused_like_read_table(tmp_path):
    source = tmp_path / "stray.csv"
    rows = ["id,ticket,"] + [f"{i},ticket number {i}," for i in range(2500)]
    rows[2200] = "2199,ticket number 2199,stray note"
    source.write_text("\n".join(rows) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"Column 3 .* has no name"):
        read_table(source)
    with pytest.raises(DataError, match=r"Column 3 .* has no name"):
        list(iter_table_chunks(source, chunk_rows=500))


def test_json_lines_fields_that_clash_once_stripped_are_refused_like_read_table(tmp_path):
    source = tmp_path / "clash.jsonl"
    lines = [json.dumps({"ticket": f"text {i}", " ticket": "again"}) for i in range(5)]
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match="more than once: 'ticket'"):
        read_table(source)
    with pytest.raises(DataError, match="more than once: 'ticket'"):
        list(iter_table_chunks(source, chunk_rows=2))


def test_a_header_only_file_streamed_says_it_has_no_tickets(tmp_path):
    source = tmp_path / "header.csv"
    source.write_text("id,ticket\n,\n", encoding="utf-8")
    with pytest.raises(DataError, match="no tickets"):
        list(iter_table_chunks(source, chunk_rows=1))


def test_bytes_that_do_not_match_the_encoding_of_the_start_are_a_plain_error(tmp_path):
    source = tmp_path / "mixed.csv"
    start = "id,ticket\n" + "".join(f"{i},plain ascii ticket {i}\n" for i in range(8000))
    source.write_bytes(start.encode("utf-8") + "9,caf\xe9\n".encode("cp1252"))
    with pytest.raises(DataError, match="CSV UTF-8"):
        list(iter_table_chunks(source, chunk_rows=1000))


def test_cli_predict_streams_and_uses_the_runs_saved_threshold(trained_run, tmp_path, capsys):
    from core.cli import main
    from core.runs import Run

    run_dir = tmp_path / "run"
    shutil.copytree(trained_run.path, run_dir)
    Run(run_dir).save_automation_threshold(0.99)
    source = tmp_path / "new.csv"
    new_tickets(20).to_csv(source, index=False)
    out = tmp_path / "scored.csv"
    args = ["predict", str(run_dir), "--data", str(source), "--out", str(out)]
    assert main([*args, "--chunk-rows", "16"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary == {"out": str(out), "n": 60, "threshold": 0.99}
    scored = pd.read_csv(out, keep_default_na=False)
    below = ~(scored["confidence"].replace("", np.nan).astype(float) >= 0.99)  # empty: review
    assert (scored[NEEDS_REVIEW].astype(str) == below.astype(str)).all()


def test_cli_predict_of_a_missing_file_is_one_line_and_exit_2(trained_run, tmp_path, capsys):
    from core.cli import main

    code = main(["predict", str(trained_run.path), "--data", str(tmp_path / "nope.csv"),
                 "--out", str(tmp_path / "o.csv")])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error:") and "nope.csv" in err[-1]


def test_an_output_folder_that_does_not_exist_is_a_plain_error(predictor, tmp_path):
    source = tmp_path / "new.csv"
    new_tickets(5).to_csv(source, index=False)
    with pytest.raises(DataError, match="no folder"):
        score_file(predictor, source, tmp_path / "missing" / "out.csv", ["ticket"])
