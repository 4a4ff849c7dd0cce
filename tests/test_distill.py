"""Distillation: a shallower student learns the teacher's soft labels and loads like any model."""

import threading

import pytest
import torch

from core.distill import (
    SPEED_TICKETS,
    DistillTrainer,
    distillation_loss,
    request_distillation,
    timing_texts,
    truncate_layers,
)
from core.errors import ConfigError
from core.faster_copy import speed_up
from core.inference import Predictor
from core.pipeline import execute
from core.runs import RunStore


def test_distilled_student_is_smaller_and_loads_with_predictor(trained_run, tmp_path):
    request = request_distillation(
        trained_run, student_layers=1, epochs=4, unlabelled_texts=["where is my parcel"] * 5
    )
    store = RunStore(tmp_path)
    run = store.create("student", **request.describe())
    execute(run, request, lambda event: None, threading.Event())
    predictor = Predictor.load(run.path)
    assert predictor.model.encoder.config.num_hidden_layers == 1
    assert len(predictor.model.encoder.encoder.layer) == 1
    teacher = Predictor.load(trained_run.path)
    assert teacher.model.encoder.config.num_hidden_layers == 2
    assert predictor.labels == teacher.labels
    facts = run.metrics()["distillation"]
    assert facts["teacher_layers"] == 2 and facts["student_layers"] == 1
    assert facts["unlabelled_tickets"] == 5
    assert facts["speedup"] > 0 and facts["macro_f1_kept"] is not None
    assert facts["speed_tickets"] == SPEED_TICKETS, "a small test set is repeated for timing"
    assert facts["student_tickets_per_second"] > 0 and facts["teacher_tickets_per_second"] > 0
    assert facts["speedup"] == pytest.approx(
        facts["student_tickets_per_second"] / facts["teacher_tickets_per_second"]
    )
    figures = speed_up(run.metrics())
    assert figures.teacher_run == trained_run.id and figures.student_layers == 1
    assert figures.kept == pytest.approx(facts["student_macro_f1"] / facts["teacher_macro_f1"])
    assert figures.unlabelled_tickets == 5 and speed_up(trained_run.metrics()) is None
    assert facts["teacher_macro_f1"] == pytest.approx(trained_run.metrics()["model"]["macro_f1"])
    assert run.status()["teacher_run"] == str(trained_run.path)
    student_scheme, teacher_scheme = (
        run.read_json("scheme.json"),
        trained_run.read_json("scheme.json"),
    )
    assert run.text_columns() == trained_run.text_columns() == ["ticket"], "reads files alike"
    assert student_scheme["label_column"] == teacher_scheme["label_column"] == "team"
    assert run.summary().label_column == "team"
    previous = trained_run.read_frame("split.csv")
    assert run.metrics()["model"]["n"] == (previous["split"] == "test").sum(), "same test tickets"


def test_kl_to_the_teacher_decreases(trained_run, tmp_path):
    """Trained on soft labels only (alpha 1), from a blank head, the student's KL to the teacher
    on the training tickets (eval mode, whole set) is lower after training than before."""
    import tempfile

    from core.modeling import classify
    from core.preparation import prepare_split

    request = request_distillation(
        trained_run,
        student_layers=1,
        epochs=6,
        method="head",  # the linear head on a fixed student: the KL objective is convex
        learning_rate=5e-2,
        distill_alpha=1.0,
        distill_temperature=1.0,
        early_stopping_patience=0,
        batch_size=8,
    )
    _, split = prepare_split(
        request.table, request.scheme, config=request.config, split_column=request.split_column
    )
    steps = DistillTrainer(request.config, split)
    steps.load()
    steps.embed()
    steps.fit_head()
    head = steps.model.head
    steps.model.set_head(torch.zeros_like(head.weight), torch.zeros_like(head.bias))
    steps.prepare_method()
    teacher = torch.as_tensor(steps.soft_targets)

    def kl_now() -> float:
        probs = classify(
            steps.model,
            steps.tokenizer,
            split.train["text"].tolist(),
            max_length=steps.max_length,
            placement=steps.placement,
        )
        logits = torch.log(torch.as_tensor(probs).clamp_min(1e-12))
        labels = torch.full((len(probs),), -100)
        return float(distillation_loss(logits, teacher, labels, 1.0, 1.0)[1])

    before = kl_now()
    with tempfile.TemporaryDirectory() as folder:
        steps.build_trainer(folder)
        steps.hf_trainer.train()
    after = kl_now()
    assert steps.kl_history, "the training loss was the distillation loss"
    assert after < 0.75 * before, (before, after)


def test_loss_is_kl_plus_ce_and_unlabelled_rows_count_in_kl_only():
    student = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    teacher = torch.tensor([[1.0, 0.5, -1.0], [0.0, 3.0, 0.0]])
    labels = torch.tensor([0, -100])
    loss, kl = distillation_loss(student, teacher, labels, temperature=2.0, alpha=0.5)
    ce = torch.nn.functional.cross_entropy(student[:1], labels[:1])
    assert loss == pytest.approx(float(0.5 * kl + 0.5 * ce), rel=1e-5)
    _, kl_same = distillation_loss(teacher, teacher, torch.tensor([-100, -100]), 2.0, 1.0)
    assert float(kl_same) == pytest.approx(0.0, abs=1e-6)


def test_student_keeps_the_first_layers(tiny_model_dir):
    from transformers import AutoModel

    teacher = AutoModel.from_pretrained(tiny_model_dir)
    student = truncate_layers(teacher, 1)
    torch.testing.assert_close(
        student.encoder.layer[0].output.dense.weight, teacher.encoder.layer[0].output.dense.weight
    )
    assert len(teacher.encoder.layer) == 2, "the teacher is not changed"
    with pytest.raises(ConfigError, match="fewer layers"):
        truncate_layers(teacher, 2)


def test_distilling_a_run_without_a_model_is_a_clear_error(tmp_path):
    empty = RunStore(tmp_path).create("never finished")
    with pytest.raises(ConfigError, match="no trained model"):
        request_distillation(empty)


def test_cli_distils_a_run_with_unlabelled_tickets(trained_run, tmp_path, capsys):
    import json

    from core.cli import main

    extra = tmp_path / "unlabelled.csv"
    extra.write_text("ticket\nmy parcel is late\nrefund please\n", encoding="utf-8")
    runs = tmp_path / "runs"
    args = ["train", "--distill-from", str(trained_run.path), "--student-layers", "1"]
    code = main([*args, "--unlabelled", str(extra), "--epochs", "1", "--runs-dir", str(runs)])
    assert code == 0, capsys.readouterr().err
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    facts = RunStore(runs).get(result["run_id"]).metrics()["distillation"]
    assert facts["unlabelled_tickets"] == 2 and facts["student_layers"] == 1


def test_cli_says_what_is_wrong_with_an_unlabelled_file(trained_run, tmp_path, capsys):
    """The teacher's text column missing, or --unlabelled without a teacher: a plain message
    and the user-error exit code, before any training starts."""
    from core.cli import EXIT_USER_ERROR, main

    extra = tmp_path / "unlabelled.csv"
    extra.write_text("body\nmy parcel is late\n", encoding="utf-8")
    runs = tmp_path / "runs"
    args = ["train", "--distill-from", str(trained_run.path), "--unlabelled", str(extra)]
    assert main([*args, "--runs-dir", str(runs)]) == EXIT_USER_ERROR
    assert "The file has no column 'ticket'" in capsys.readouterr().err
    alone = ["train", "--unlabelled", str(extra), "--runs-dir", str(runs)]
    assert main(alone) == EXIT_USER_ERROR
    assert "--unlabelled is used with --distill-from only" in capsys.readouterr().err
    assert not runs.exists() or not any(runs.iterdir())


def test_student_of_an_adapter_teacher_carries_no_teacher_hooks(tiny_model_dir):
    from core.addons import add_adapters
    from core.modeling import TicketClassifier, load_encoder

    encoder, _, _ = load_encoder(str(tiny_model_dir))
    teacher = TicketClassifier(encoder, 3)
    add_adapters(teacher, 4)
    student = truncate_layers(teacher.encoder, 1)
    assert not any(m._forward_hooks for m in student.modules())
    assert any(m._forward_hooks for m in teacher.encoder.modules())


def test_timing_texts_repeat_a_small_set_and_cut_a_large_one():
    assert timing_texts(["a", "b", "c"]) == (["a", "b", "c"] * SPEED_TICKETS)[:SPEED_TICKETS]
    many = [str(i) for i in range(SPEED_TICKETS * 2)]
    assert timing_texts(many) == many[:SPEED_TICKETS]
    assert timing_texts([]) == []


def test_the_copy_trains_on_exactly_the_teachers_split(trained_run):
    from core.distill import SPLIT_COLUMN
    from core.preparation import prepare_split

    request = request_distillation(trained_run)
    _, split = prepare_split(
        request.table, request.scheme, config=request.config, split_column=SPLIT_COLUMN
    )
    saved = trained_run.read_frame("split.csv", dtype=str)
    for part, frame in (("train", split.train), ("validation", split.validation)):
        teacher = saved[saved["split"] == part]
        assert sorted(frame["text"]) == sorted(teacher["text"]), part
        assert sorted(frame["label"]) == sorted(teacher["label"]), part
    teacher_test = saved[saved["split"] == "test"]
    assert split.test["text"].tolist() == teacher_test["text"].tolist()
