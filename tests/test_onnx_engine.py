"""The ONNX Runtime engine: same labels as torch, a stored export, torch when export fails."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from core import inference, onnx_engine
from core.device import Placement
from core.inference import Predictor
from core.onnx_engine import (
    NOTE_FILE,
    ONNX_FILE,
    OnnxEngine,
    export_encoder_onnx,
    export_note,
    export_onnx,
    use_onnx,
    use_onnx_for_one,
)
from core.scoring import ticket_texts
from tests.conftest import SAMPLE_TICKETS


@pytest.fixture(scope="module")
def sample_texts() -> list[str]:
    from core.tables import read_table

    return ticket_texts(read_table(SAMPLE_TICKETS), ["subject", "body"])


@pytest.fixture()
def model_copy(trained_run, tmp_path):
    """The trained run's model folder without its export, to export (or fail to) afresh."""
    folder = tmp_path / "model"
    shutil.copytree(trained_run.model_dir, folder)
    (folder / ONNX_FILE).unlink(missing_ok=True)
    (folder / NOTE_FILE).unlink(missing_ok=True)
    return folder


def _assert_same_scores(expected: np.ndarray, actual: np.ndarray) -> None:
    assert actual.shape == expected.shape
    np.testing.assert_array_equal(actual.argmax(axis=1), expected.argmax(axis=1))
    np.testing.assert_allclose(actual, expected, atol=1e-4)


def test_the_pipeline_exports_where_onnx_will_score(tiny_model_dir, tmp_path, monkeypatch):
    """On a CPU where ONNX Runtime scores (forced here: this may be an AMX machine), the
    pipeline stores the export, and a fresh Predictor uses it."""
    import threading

    from core.config import TrainConfig
    from core.pipeline import TrainingRequest, execute
    from core.runs import RunStore
    from core.schema import LabelScheme
    from tests.helpers import topic_frame

    monkeypatch.setenv(onnx_engine.ENGINE_ENV, "onnx")
    request = TrainingRequest(
        table=topic_frame(20).drop(columns="row"),
        scheme=LabelScheme(text_columns=("text",), label_column="label"),
        config=TrainConfig(model=str(tiny_model_dir), epochs=1, batch_size=16, device="cpu"),
    )
    run = RunStore(tmp_path).create("onnx")
    execute(run, request, lambda event: None, threading.Event())
    assert (run.model_dir / ONNX_FILE).is_file()
    assert export_note(run.model_dir)["exported"] is True
    monkeypatch.setattr(onnx_engine, "export_onnx", _must_not_export)
    assert Predictor.load(run.path).backend == "onnx"


def test_onnx_and_torch_give_the_same_labels_on_the_sample_tickets(trained_run, sample_texts):
    torch_side = Predictor.load(trained_run.path, precision="fp32", engine="torch")
    onnx_side = Predictor.load(trained_run.path, precision="fp32", engine="onnx")
    assert (torch_side.backend, onnx_side.backend) == ("torch", "onnx")
    expected = torch_side.predict_proba(sample_texts)
    _assert_same_scores(expected, onnx_side.predict_proba(sample_texts, batch_size=64))
    # The try-it box: one text, and an empty batch.
    _assert_same_scores(expected[:1], onnx_side.predict_proba(sample_texts[:1]))
    assert onnx_side.predict_proba([]).shape == (0, len(onnx_side.labels))


def test_a_failed_export_scores_through_torch_and_keeps_a_note(model_copy, sample_texts):
    (model_copy / ONNX_FILE).mkdir()  # a real failure: the export cannot be written there
    assert export_onnx(model_copy) is None
    note = export_note(model_copy)
    assert note["exported"] is False and "Error" in note["reason"]

    predictor = Predictor.load(model_copy, precision="fp32", engine="onnx")
    assert predictor.backend == "torch"
    reference = Predictor.load(model_copy, precision="fp32", engine="torch")
    _assert_same_scores(
        reference.predict_proba(sample_texts), predictor.predict_proba(sample_texts)
    )


def test_a_failed_export_is_not_retried_on_every_load(model_copy, monkeypatch):
    (model_copy / ONNX_FILE).mkdir()
    export_onnx(model_copy)
    monkeypatch.setattr(onnx_engine, "export_onnx", _must_not_export)
    assert Predictor.load(model_copy, precision="fp32", engine="onnx").backend == "torch"


def test_the_stored_export_is_used_after_a_restart(model_copy, sample_texts, monkeypatch):
    path = export_onnx(model_copy)
    assert path == model_copy / ONNX_FILE
    stamp = path.stat().st_mtime_ns
    monkeypatch.setattr(onnx_engine, "export_onnx", _must_not_export)
    predictor = Predictor.load(model_copy, precision="fp32", engine="onnx")
    assert predictor.backend == "onnx" and predictor.onnx.path == path
    assert path.stat().st_mtime_ns == stamp
    assert predictor.predict(sample_texts[:3])[0].label in predictor.labels


def test_a_damaged_export_scores_through_torch(model_copy, sample_texts):
    path = export_onnx(model_copy)
    path.write_bytes(path.read_bytes()[:1000])  # a truncated file, as after a full disk
    predictor = Predictor.load(model_copy, precision="fp32", engine="onnx")
    assert predictor.backend == "torch"
    assert predictor.predict_proba(sample_texts[:5]).shape == (5, len(predictor.labels))


def test_a_run_without_an_export_gets_one_on_first_load(model_copy):
    """Runs trained before the engine existed: exported once, then reused."""
    predictor = Predictor.load(model_copy, precision="fp32", engine="onnx")
    assert predictor.backend == "onnx"
    assert (model_copy / ONNX_FILE).is_file()


def test_encoder_export_embeds_like_torch(tiny_model_dir, tmp_path, sample_texts):
    from transformers import AutoModel

    from core.modeling import TicketClassifier, load_tokenizer

    path = export_encoder_onnx(str(tiny_model_dir), tmp_path / "cache" / "encoder.onnx")
    assert path is not None and path.is_file()
    tokenizer = load_tokenizer(str(tiny_model_dir))
    engine = OnnxEngine(path, tokenizer, max_length=128)
    rows = engine.embed(sample_texts[:50], batch_size=16)
    model = TicketClassifier(AutoModel.from_pretrained(tiny_model_dir), 2).eval()
    batch = tokenizer(sample_texts[:50], padding=True, truncation=True, return_tensors="pt")
    with torch.inference_mode():
        expected = model.embed(batch["input_ids"], batch["attention_mask"]).numpy()
    np.testing.assert_allclose(rows, expected, atol=1e-4)


def test_batches_read_two_at_a_time_match_one_at_a_time_in_the_input_order(
    tiny_model_dir, tmp_path, sample_texts
):
    """An engine for batches runs each call on one thread and reads two batches at once (for
    shared CPUs): its rows are those of the single-ticket engine (one call at a time on every
    core), in the texts' order; progress counts every text once, and a cancel stops it."""
    import threading

    from core.errors import JobCancelledError
    from core.modeling import load_tokenizer

    path = export_encoder_onnx(str(tiny_model_dir), tmp_path / "cache" / "encoder.onnx")
    tokenizer = load_tokenizer(str(tiny_model_dir))
    texts = sample_texts[:60]
    for_one = OnnxEngine(path, tokenizer, max_length=128)
    assert for_one.concurrent_calls == 1
    expected = for_one.embed(texts, batch_size=8)

    for_batches = OnnxEngine(path, tokenizer, max_length=128, for_batches=True)
    assert for_batches.session.get_session_options().intra_op_num_threads == 1
    for_batches.concurrent_calls = 2  # as on a 2-core machine, whatever this one has
    seen: list[int] = []
    rows = for_batches.embed(texts, batch_size=8, on_batch=lambda done, total: seen.append(done))
    np.testing.assert_allclose(rows, expected, atol=1e-5)
    assert seen[-1] == len(texts) and seen == sorted(seen)

    cancel = threading.Event()
    cancel.set()
    with pytest.raises(JobCancelledError):
        for_batches.embed(texts, batch_size=8, cancel=cancel)


def test_the_encoder_export_is_cached_per_model(tiny_model_dir, tmp_path, monkeypatch):
    first = onnx_engine.encoder_engine(str(tiny_model_dir), tmp_path, max_length=64)
    assert first is not None and first.path.is_file()
    monkeypatch.setattr(onnx_engine, "export_encoder_onnx", _must_not_export)
    again = onnx_engine.encoder_engine(str(tiny_model_dir), tmp_path, max_length=64)
    assert again.path == first.path
    np.testing.assert_allclose(again.embed(["refund please"]), first.embed(["refund please"]))


def test_encoder_export_failure_returns_none(tmp_path):
    assert export_encoder_onnx(str(tmp_path / "no-such-model"), tmp_path / "e.onnx") is None


def test_onnx_is_chosen_exactly_where_torch_would_run_fp32_on_the_cpu(monkeypatch):
    monkeypatch.delenv(onnx_engine.ENGINE_ENV, raising=False)
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert use_onnx(Placement(cpu, "fp32")) is True
    assert use_onnx(Placement(cpu, "bf16")) is False
    assert use_onnx(Placement(gpu, "fp32")) is False
    assert use_onnx(Placement(cpu, "bf16"), "onnx") is True
    assert use_onnx(Placement(cpu, "fp32"), "torch") is False
    monkeypatch.setenv(onnx_engine.ENGINE_ENV, "torch")
    assert use_onnx(Placement(cpu, "fp32")) is False
    with pytest.raises(ValueError, match="engine"):
        use_onnx(Placement(cpu, "fp32"), "tensorrt")


def test_single_tickets_go_to_onnx_runtime_on_every_cpu(monkeypatch):
    monkeypatch.delenv(onnx_engine.ENGINE_ENV, raising=False)
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert use_onnx_for_one(Placement(cpu, "bf16")) is True  # batches stay on torch there
    assert use_onnx_for_one(Placement(cpu, "fp32")) is True
    assert use_onnx_for_one(Placement(gpu, "fp16")) is False
    assert use_onnx_for_one(Placement(cpu, "bf16"), "torch") is False


def test_where_batches_run_on_torch_one_ticket_is_scored_by_the_stored_export(
    model_copy, sample_texts, monkeypatch
):
    """The try-it box on an AMX CPU: torch bf16 for batches, ONNX Runtime for one ticket —
    the same label and scores as torch fp32, and no export made on the way."""
    monkeypatch.setattr(inference, "use_onnx", lambda placement, engine="auto": False)
    reference = Predictor.load(model_copy, precision="fp32", engine="torch")
    expected = reference.predict_proba(sample_texts[:1])

    monkeypatch.setattr(onnx_engine, "export_onnx", _must_not_export)
    without_export = Predictor.load(model_copy, precision="fp32")
    assert (without_export.backend, without_export.single_backend) == ("torch", "torch")
    _assert_same_scores(expected, without_export.predict_proba(sample_texts[:1]))

    monkeypatch.undo()
    export_onnx(model_copy)
    monkeypatch.setattr(inference, "use_onnx", lambda placement, engine="auto": False)
    predictor = Predictor.load(model_copy, precision="fp32")
    assert predictor.onnx is None and predictor.backend == "torch"
    assert predictor.single_backend == "onnx"
    _assert_same_scores(expected, predictor.predict_proba(sample_texts[:1]))
    assert predictor.predict(sample_texts[:1])[0].label == reference.labels[expected.argmax()]
    forced = Predictor.load(model_copy, precision="fp32", engine="torch")
    assert forced.single_backend == "torch"


def test_a_kept_predictor_exports_in_the_background_for_single_tickets(model_copy, sample_texts):
    """The app and the scoring service keep their predictor: on a bf16 CPU (batches on
    torch, so the pipeline stored no export) one ticket goes to torch while the export runs
    in a background thread, then to ONNX Runtime, with the same label and scores."""
    reference = Predictor.load(model_copy, precision="fp32", engine="torch")
    expected = reference.predict_proba(sample_texts[:1])
    predictor = Predictor.load(model_copy, precision="bf16")
    assert predictor.backend == "torch" and not (model_copy / ONNX_FILE).exists()
    export = predictor.prepare_single_tickets()
    assert export is not None and predictor.prepare_single_tickets() is None  # one export
    export.join(timeout=120)
    assert export_note(model_copy)["exported"] is True and (model_copy / ONNX_FILE).is_file()
    assert predictor.single_backend == "onnx"
    _assert_same_scores(expected, predictor.predict_proba(sample_texts[:1]))
    restarted = Predictor.load(model_copy, precision="bf16")  # stored: nothing to do
    assert restarted.prepare_single_tickets() is None and restarted.single_backend == "onnx"


@pytest.mark.slow
def test_embedded_model_scores_the_same_through_onnx(tmp_path, sample_texts):
    """The real default model with a head fitted on its own embeddings of the sample tickets."""
    from sklearn.linear_model import LogisticRegression
    from transformers import AutoModel

    from core.modeling import (
        ModelMeta,
        TicketClassifier,
        load_tokenizer,
        resolve_model_source,
        save_classifier,
    )
    from core.tables import read_table

    source = resolve_model_source("default")
    tokenizer = load_tokenizer(source)
    labels = read_table(SAMPLE_TICKETS)["team"].astype(str).tolist()
    names = sorted(set(labels))
    model = TicketClassifier(AutoModel.from_pretrained(source), len(names)).eval()
    batch = tokenizer(
        sample_texts, padding=True, truncation=True, max_length=128, return_tensors="pt"
    )
    with torch.inference_mode():
        embedded = model.embed(batch["input_ids"], batch["attention_mask"]).numpy()
    head = LogisticRegression(max_iter=500).fit(embedded, labels)
    model.set_head(torch.tensor(head.coef_).float(), torch.tensor(head.intercept_).float())
    meta = ModelMeta(labels=names, max_length=128, base_model="default", method="full")
    save_classifier(model, tokenizer, meta, tmp_path / "model")
    assert export_onnx(tmp_path / "model") is not None

    torch_side = Predictor.load(tmp_path / "model", precision="fp32", engine="torch")
    onnx_side = Predictor.load(tmp_path / "model", precision="fp32", engine="onnx")
    _assert_same_scores(
        torch_side.predict_proba(sample_texts), onnx_side.predict_proba(sample_texts)
    )


def _must_not_export(*_args, **_kwargs):
    raise AssertionError("the stored export should have been used, not made again")


def test_the_quick_models_reading_runs_on_onnx_runtime_where_chosen(
    tiny_model_dir, tmp_path, monkeypatch
):
    """Where ONNX Runtime is the engine (forced here; by default on CPUs without fast bf16),
    the embedding pass of training uses the exported encoder: same labels as torch's pass,
    and the export is kept in the reuse folder for the next run."""
    from core.config import TrainConfig
    from core.reuse import WorkCache
    from core.training import ONNX_CACHE, TicketTrainer
    from tests.helpers import topic_split

    split = topic_split()
    config = TrainConfig(model=str(tiny_model_dir), method="quick", precision="fp32")
    monkeypatch.setenv(onnx_engine.ENGINE_ENV, "torch")
    with_torch = TicketTrainer(config, split)
    with_torch.reuse = WorkCache(tmp_path / "torch")
    torch_outcome = with_torch.train()
    assert with_torch.engine_name == "torch"

    monkeypatch.setenv(onnx_engine.ENGINE_ENV, "onnx")
    with_onnx = TicketTrainer(config, split)
    with_onnx.reuse = WorkCache(tmp_path / "onnx")
    onnx_outcome = with_onnx.train()
    assert with_onnx.engine_name == "onnx"
    assert list((tmp_path / "onnx" / ONNX_CACHE).rglob("*.onnx")), "export kept for reuse"
    np.testing.assert_allclose(
        with_onnx.embeddings["train"], with_torch.embeddings["train"], atol=1e-4
    )
    np.testing.assert_array_equal(
        onnx_outcome.test_probabilities.argmax(axis=1),
        torch_outcome.test_probabilities.argmax(axis=1),
    )


def test_two_exports_of_one_run_at_once_both_leave_a_working_file(model_copy, sample_texts):
    """Two writers (the scoring service and a command line, say) export the same run at the
    same time: each writes its own partial file, the stored export is whole and scores."""
    import threading

    threads = [threading.Thread(target=export_onnx, args=(model_copy,)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert export_note(model_copy)["exported"] is True
    assert not list(model_copy.glob("*.partial"))
    predictor = Predictor.load(model_copy, precision="fp32", engine="onnx")
    assert predictor.onnx is not None
    expected = Predictor.load(model_copy, precision="fp32", engine="torch")
    _assert_same_scores(
        expected.predict_proba(sample_texts[:20]), predictor.predict_proba(sample_texts[:20])
    )
