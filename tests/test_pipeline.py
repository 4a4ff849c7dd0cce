"""A run end to end through the job manager: files on disk, failures and cancel."""

import errno
import json

import pandas as pd
import pytest

from core.config import TrainConfig
from core.evaluation import Evaluation
from core.jobs import JobManager
from core.pipeline import TrainingRequest, execute
from core.runs import RunStore
from core.schema import LabelScheme
from tests.helpers import topic_frame

RUN_FILES = {
    "config.json",
    "scheme.json",
    "source.json",
    "report.json",
    "split.csv",
    "metrics.json",
    "evaluation.json",
    "predictions.csv",
    "history.json",
    "status.json",
}


def topics_request(model_dir, **config) -> TrainingRequest:
    table = topic_frame(30).drop(columns="row").rename(columns={"text": "ticket", "label": "team"})
    return TrainingRequest(
        table=table,
        scheme=LabelScheme(text_columns=("ticket",), label_column="team"),
        config=TrainConfig(model=str(model_dir), **config),
        source_name="topics.csv",
    )


@pytest.fixture
def manager(tmp_path):
    jobs = JobManager(RunStore(tmp_path / "runs"), execute)
    yield jobs
    jobs.shutdown()


def test_trained_run_folder_has_everything(trained_run):
    assert {p.name for p in trained_run.path.iterdir()} >= RUN_FILES - {"history.json"}
    metrics = trained_run.read_json("metrics.json")
    assert set(metrics) == {"model", "baseline", "quick", "training"}
    assert metrics["model"]["n"] == len(trained_run.read_frame("predictions.csv"))
    assert trained_run.read_json("scheme.json")["label_column"] == "team"
    report = trained_run.read_json("report.json")
    assert report["split_sizes"]["test"] == metrics["model"]["n"]
    evaluation = Evaluation.load(trained_run)
    assert evaluation.labels == ["billing", "login", "shipping"]
    labels = json.loads((trained_run.model_dir / "config.json").read_text())["id2label"]
    assert list(labels.values()) == ["billing", "login", "shipping"]


def test_job_succeeds_and_writes_history(manager, tiny_model_dir):
    run_id = manager.submit(topics_request(tiny_model_dir, method="quick"), name="quick")
    snapshot = manager.wait(run_id, timeout=120)
    assert snapshot.state == "succeeded", snapshot.reason
    assert snapshot.result["macro_f1"] > 0
    run = manager_store(manager).get(run_id)
    assert {p.name for p in run.path.iterdir()} >= RUN_FILES
    messages = [m for _, m in snapshot.events]
    assert any("Baseline" in m for m in messages)


def test_left_out_rows_are_in_the_report_and_the_run_log(manager, tiny_model_dir):
    """Rows without a label or text are counted in report.json and said in the run's log."""
    from core.report import DataReport

    request = topics_request(tiny_model_dir, method="quick")
    request.table.loc[[0, 1], "team"] = None
    request.table.loc[2, "ticket"] = "   "
    snapshot = manager.wait(manager.submit(request), timeout=120)
    assert snapshot.state == "succeeded", snapshot.reason
    report = DataReport.from_dict(
        manager_store(manager).get(snapshot.run_id).read_json("report.json")
    )
    assert report.rows_read == len(request.table)
    assert {k: n for k, n in report.dropped.items() if n} == {"missing label": 2, "empty text": 1}
    messages = [m for _, m in snapshot.events]
    summary = report.summary_lines()
    assert summary[0].startswith(f"Read {len(request.table)} rows: {len(request.table) - 3} used")
    assert "2 with no label" in summary[0] and "1 with empty text" in summary[0]
    assert all(line in messages for line in summary)


def test_one_label_only_fails_with_a_plain_reason(manager, tiny_model_dir):
    request = topics_request(tiny_model_dir, method="quick")
    request.table["team"] = "billing"
    snapshot = manager.wait(manager.submit(request), timeout=60)
    assert snapshot.state == "failed"
    assert "Only one label" in snapshot.reason
    assert "Traceback" not in snapshot.reason


def test_the_baseline_fits_alongside_the_model_and_is_announced_once(manager, tiny_model_dir):
    """The keyword baseline runs in its own thread: its score is the one run_baseline gives on
    the run's own split, said once in the log, and the stages still end where they should."""
    from core.baseline import run_baseline

    snapshot = manager.wait(manager.submit(topics_request(tiny_model_dir, method="quick")), 120)
    assert snapshot.state == "succeeded", snapshot.reason
    run = manager_store(manager).get(snapshot.run_id)
    split = run.read_frame("split.csv", dtype={"text": str, "label": str})
    train, test = (split[split["split"] == part] for part in ("train", "test"))
    direct = run_baseline(train, test, seed=TrainConfig().seed)
    assert run.read_json("metrics.json")["baseline"] == pytest.approx(direct.metrics)
    announced = [m for _, m in snapshot.events if m.startswith("Baseline (TF-IDF) test macro-F1")]
    assert announced == [f"Baseline (TF-IDF) test macro-F1: {direct.metrics['macro_f1']:.3f}."]


def test_a_failing_baseline_stops_the_run_before_fine_tuning(manager, tiny_model_dir):
    """Tickets of single letters leave the word-count baseline no words. Fitted alongside the
    model, that error must still stop the run with its plain reason, at the next progress step:
    before any fine-tuning, not after it."""
    stages: list[str] = []
    pipeline_fn = manager.train_fn

    def record_stages(run, request, progress, cancel):
        def relay(event):
            stages.append(event.stage)
            progress(event)

        return pipeline_fn(run, request, relay, cancel)

    manager.train_fn = record_stages
    request = topics_request(tiny_model_dir, epochs=50, batch_size=4)
    letters = "abcdefghijklmnopqrstuvwxyz"
    request.table["ticket"] = [  # all different, and no word of two letters or more
        f"{letters[i % 26]} {letters[i // 26 % 26]} {letters[i // 676]}"
        for i in range(len(request.table))
    ]
    snapshot = manager.wait(manager.submit(request), timeout=120)
    assert snapshot.state == "failed"
    assert "found no words" in snapshot.reason and "Traceback" not in snapshot.reason
    assert "baseline" in stages and "training" not in stages, stages


def test_full_disk_while_saving_fails_cleanly(manager, tiny_model_dir, monkeypatch):
    """Out of disk space at save time: a plain reason, the traceback kept, no half model."""
    import core.pipeline

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(core.pipeline, "save_classifier", no_space)
    run_id = manager.submit(topics_request(tiny_model_dir, method="quick"))
    snapshot = manager.wait(run_id, timeout=120)
    assert snapshot.state == "failed"
    assert "disk is full" in snapshot.reason
    run = manager_store(manager).get(run_id)
    assert "No space left" in run.read_text("error.txt")
    assert not run.model_dir.exists()
    assert [s.run_id for s in manager_store(manager).list()] == [run_id]


def test_cancel_during_training_marks_the_run_cancelled(manager, tiny_model_dir):
    """Cancelled as fine-tuning starts, before any validation check: nothing is kept.

    The cancel is sent from the job's own "training" event: polling for that stage from here
    let a loaded machine run steps and a check first (then the best model is kept, as
    test_faults proves), so the polled version failed whenever the CPU was busy."""
    pipeline_fn = manager.train_fn

    def cancel_as_training_starts(run, request, progress, cancel):
        def relay(event):
            progress(event)
            if event.stage == "training":
                assert manager.cancel(run.id)

        return pipeline_fn(run, request, relay, cancel)

    manager.train_fn = cancel_as_training_starts
    run_id = manager.submit(topics_request(tiny_model_dir, epochs=100, batch_size=4))
    snapshot = manager.wait(run_id, timeout=30)
    assert snapshot.state == "cancelled"
    assert not manager_store(manager).get(run_id).model_dir.exists()


def test_separate_test_file_is_used_as_the_test_set(tmp_path, tiny_model_dir):
    request = topics_request(tiny_model_dir, method="quick")
    test_table = request.table.sample(12, random_state=1).reset_index(drop=True)
    request.test_table = test_table
    run = RunStore(tmp_path).create("with-test-file")
    result = execute(run, request, lambda e: None, __import__("threading").Event())
    assert result["n_test"] == 12
    assert run.read_json("report.json")["split_sizes"]["test"] == 12


def test_test_file_missing_a_column_says_so(tmp_path, tiny_model_dir):
    from core.errors import DataError

    request = topics_request(tiny_model_dir, method="quick")
    request.test_table = pd.DataFrame({"text": ["a"], "team": ["billing"]})
    run = RunStore(tmp_path).create("bad-test-file")
    with pytest.raises(DataError, match="In the test file"):
        execute(run, request, lambda e: None, __import__("threading").Event())


def manager_store(manager: JobManager) -> RunStore:
    return manager.store
