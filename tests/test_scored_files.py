"""Scored files of a run: streamed into the run folder, with the rows the page shows kept."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from core.errors import DataError
from core.inference import Predictor
from core.runs import Run
from core.scored_files import (
    FIRST_ROWS,
    KEEP_SCORED,
    UNSURE_ROWS,
    get_scored,
    list_scored,
    new_scored_folder,
    score_into,
    scored_folder,
)
from core.scoring import NEEDS_REVIEW
from tests.helpers import topic_frame


@pytest.fixture
def run(trained_run, tmp_path) -> Run:
    """A copy of the trained run, so scored files stay out of the shared one."""
    return Run(shutil.copytree(trained_run.path, tmp_path / trained_run.id))


@pytest.fixture(scope="module")
def predictor(trained_run) -> Predictor:
    return Predictor.load(trained_run.path, precision="fp32")


def new_tickets(n_per_label: int, tmp_path, name: str = "new.csv"):
    frame = topic_frame(n_per_label, seed=3).rename(columns={"text": "ticket", "row": "id"})
    frame = frame.drop(columns="label")
    frame["id"] = [f"T-{i:05d}" for i in range(len(frame))]
    frame.loc[7, "ticket"] = "=SUM(A1) refund please"  # escaped in the download only
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return frame, path


def score(run, predictor, path, threshold=0.99, **kwargs):
    folder = new_scored_folder(run, path.name)
    return score_into(folder, predictor, path, path.name, ["ticket"], threshold=threshold, **kwargs)


def test_a_scored_file_keeps_the_first_rows_and_a_bounded_set_of_unsure_ones(
    run, predictor, tmp_path
):
    frame, path = new_tickets(250, tmp_path)  # 750 tickets, nearly all below 99 %
    scored = score(run, predictor, path, upload_id="0123456789abcdef", chunk_rows=100)
    assert scored.folder.parent == scored_folder(run) and list_scored(run) == [scored]
    assert (scored.rows, scored.upload_id, scored.text_columns) == (
        750,
        "0123456789abcdef",
        ("ticket",),
    )
    data = scored.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    output = pd.read_csv(
        scored.folder / "labelled.csv", encoding="utf-8-sig", keep_default_na=False
    )
    assert output["id"].tolist() == frame["id"].tolist()
    assert output.loc[7, "ticket"] == "'=SUM(A1) refund please"
    flagged = output[NEEDS_REVIEW].astype(str) == "True"
    assert scored.needs_review == int(flagged.sum()) > UNSURE_ROWS
    assert dict(scored.label_counts) == output["predicted_label"].value_counts().to_dict()

    first = scored.first_rows()
    assert first.index.tolist() == list(range(FIRST_ROWS))
    assert first.loc[7, "ticket"] == "=SUM(A1) refund please"  # as in the file, not escaped
    np.testing.assert_allclose(
        first["confidence"], output["confidence"].head(FIRST_ROWS), rtol=1e-6
    )

    unsure = scored.unsure_rows()
    assert unsure.index.tolist() == output.index[flagged].tolist()[:UNSURE_ROWS]
    assert unsure[NEEDS_REVIEW].all() and unsure["predicted_label"].notna().all()
    assert unsure["id"].tolist() == output.loc[unsure.index, "id"].tolist()


def test_without_a_threshold_nothing_is_marked_and_no_unsure_rows_are_kept(
    run, predictor, tmp_path
):
    _, path = new_tickets(5, tmp_path)
    scored = score(run, predictor, path, threshold=None)
    assert scored.needs_review is None and scored.unsure_rows().empty
    assert scored.download_name == "new-labelled.csv" and scored.labelled == 15


def test_a_file_that_fails_partway_leaves_no_scored_file(run, predictor, tmp_path):
    path = tmp_path / "broken.csv"
    rows = ["id,ticket"] + [f"{i},Where is my parcel {i}" for i in range(3000)]
    rows[2500] = "x,Where is,my parcel"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match="line 2501 has 3 values"):
        score(run, predictor, path, chunk_rows=500)
    assert list_scored(run) == [] and list(scored_folder(run).iterdir()) == []


def test_only_the_newest_scored_files_are_kept(run, predictor, tmp_path):
    _, path = new_tickets(1, tmp_path)
    made = [score(run, predictor, path).id for _ in range(KEEP_SCORED + 2)]
    assert [f.id for f in list_scored(run)] == made[::-1][:KEEP_SCORED]


@pytest.mark.parametrize("scored_id", ["..", "../status.json", "", "a/b"])
def test_a_scored_id_cannot_leave_the_scored_folder(run, scored_id):
    assert get_scored(run, scored_id) is None
