"""train(): every method really trains a (tiny, random-initialised) BERT on real text."""

import dataclasses
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from core.config import TrainConfig
from core.errors import JobCancelledError
from core.training import TRAINER_DIR_PREFIX, TicketTrainer, choose_max_length, train
from tests.helpers import topic_split


def accuracy(outcome, split) -> float:
    predicted = np.asarray(outcome.meta.labels)[outcome.test_probabilities.argmax(axis=1)]
    return float((predicted == split.test["label"].to_numpy()).mean())


@pytest.mark.parametrize("method", ["quick", "full", "lora", "bitfit", "head", "adapter", "prompt"])
def test_each_method_learns_the_topics(tiny_model_dir, method):
    """On keyword-separable tickets every method ends far above chance (1/3)."""
    split = topic_split()
    events = []
    config = TrainConfig(
        model=str(tiny_model_dir), method=method, epochs=4, batch_size=16, early_stopping_patience=0
    )
    outcome = train(config, split, progress=events.append)
    assert outcome.test_probabilities.shape == (len(split.test), 3)
    np.testing.assert_allclose(outcome.test_probabilities.sum(axis=1), 1.0, rtol=1e-4)
    assert accuracy(outcome, split) >= 0.7
    assert outcome.meta.labels == ["billing", "login", "shipping"]
    stages = {e.stage for e in events}
    assert {"loading", "embedding", "fitting"} <= stages
    if method != "quick":
        training = [e for e in events if e.stage == "training"]
        assert training[-1].step == training[-1].total_steps == outcome.steps > 0
        assert training[-1].message.startswith("Training finished")
        assert any(e.eval_metrics for e in training), "validation was checked during training"
        assert outcome.best_validation_macro_f1 is not None


def test_lora_is_merged_so_the_saved_encoder_is_plain(tiny_model_dir):
    outcome = train(TrainConfig(model=str(tiny_model_dir), method="lora", epochs=1), topic_split())
    assert type(outcome.model.encoder).__name__ == "BertModel"


@pytest.mark.parametrize(
    ("method", "encoder_trainable"),
    [
        ("full", "all"),
        ("bitfit", "biases"),
        ("head", "none"),
        ("lora", "lora"),
        ("adapter", "none"),
        ("prompt", "prompt"),
    ],
)
def test_methods_choose_which_weights_train(tiny_model_dir, method, encoder_trainable):
    steps = TicketTrainer(TrainConfig(model=str(tiny_model_dir), method=method), topic_split())
    steps.load()
    steps.prepare_method()
    model = steps.model
    trainable = [n for n, p in model.encoder.named_parameters() if p.requires_grad]
    assert all(p.requires_grad for p in model.head.parameters())
    if encoder_trainable == "all":
        assert len(trainable) == len(list(model.encoder.parameters()))
    elif encoder_trainable == "biases":
        assert trainable and all(n.endswith("bias") for n in trainable)
    elif encoder_trainable == "none":
        assert trainable == []
    elif encoder_trainable == "prompt":
        assert trainable and all("prompt_encoder" in n for n in trainable)
    else:
        assert trainable and all("lora_" in n for n in trainable)


def test_steps_share_state_on_the_object(tiny_model_dir):
    """load → embed → fit_head leave labels, embeddings and the quick model on the object."""
    split = topic_split()
    steps = TicketTrainer(TrainConfig(model=str(tiny_model_dir), method="quick"), split)
    steps.load()
    assert steps.labels == ["billing", "login", "shipping"]
    assert steps.label_ids == {"billing": 0, "login": 1, "shipping": 2}
    assert steps.max_length == choose_max_length(steps.tokenizer, split.train["text"].tolist())
    steps.embed()
    assert {name: len(e) for name, e in steps.embeddings.items()} == split.sizes()
    assert steps.embeddings["train"].shape[1] == 32, "the tiny BERT's hidden size"
    steps.fit_head()
    quick = steps.quick_test_probabilities
    assert quick.shape == (len(split.test), 3)
    head_logits = steps.model.head(torch.as_tensor(steps.embeddings["test"])).detach().numpy()
    np.testing.assert_array_equal(head_logits.argmax(axis=1), quick.argmax(axis=1))
    assert steps.hf_trainer is None, "quick never builds a Hugging Face Trainer"


def test_the_quick_head_fits_while_the_other_tickets_are_read(tiny_model_dir):
    """The head's fit starts once the training tickets are read, before the validation and
    test tickets are, and gives the head the same fit gives in the run's own thread."""
    from sklearn.linear_model import LogisticRegression

    from core.baseline import fit_interruptibly
    from core.training import LINEAR_PROBE_C

    split, cancel = topic_split(), threading.Event()
    steps = TicketTrainer(TrainConfig(model=str(tiny_model_dir), method="quick"), split)
    fit_started_when: dict[str, bool] = {}

    def watch(event):
        if event.message and event.message.startswith("Reading"):
            fit_started_when[event.message.split()[2]] = steps.head_fit is not None

    steps.progress = watch
    steps.load()
    steps.embed()
    assert fit_started_when == {"train": False, "validation": True, "test": True}
    steps.fit_head()
    here = LogisticRegression(C=LINEAR_PROBE_C, max_iter=2000, random_state=steps.config.seed)
    fit_interruptibly(here, steps.embeddings["train"], split.train["label"].to_numpy(), cancel)
    assert list(here.classes_) == steps.labels
    np.testing.assert_allclose(steps.model.head.weight.detach().numpy(), here.coef_, atol=1e-5)


def test_a_failing_quick_head_fit_is_raised_in_the_run(tiny_model_dir, monkeypatch):
    """An error inside the fitting thread reaches the run's own thread (and so the job)."""
    import core.training

    def broken_fit(*args, **kwargs):
        raise MemoryError("no memory for the quick head")

    monkeypatch.setattr(core.training, "fit_interruptibly", broken_fit)
    steps = TicketTrainer(TrainConfig(model=str(tiny_model_dir), method="quick"), topic_split())
    with pytest.raises(MemoryError, match="quick head"):
        steps.train()


class FailingFineTune(TicketTrainer):
    """A method whose fine-tuning step crashes after the Trainer has been built."""

    def fine_tune(self) -> None:
        self.folder_existed = Path(self.output_dir).is_dir()
        raise RuntimeError("out of memory in step 1")


def test_a_step_can_be_overridden(tiny_model_dir):
    steps = FailingFineTune(TrainConfig(model=str(tiny_model_dir), epochs=1), topic_split())
    with pytest.raises(RuntimeError, match="out of memory"):
        steps.train()
    assert steps.hf_trainer is not None and steps.folder_existed


def test_trainer_folder_is_removed_after_success_failure_and_cancel(tiny_model_dir):
    config = TrainConfig(model=str(tiny_model_dir), epochs=1, batch_size=16)
    done = TicketTrainer(config, topic_split())
    done.train()
    assert done.output_dir and Path(done.output_dir).name.startswith(TRAINER_DIR_PREFIX)
    assert not Path(done.output_dir).exists()

    failed = FailingFineTune(config, topic_split())
    with pytest.raises(RuntimeError):
        failed.train()
    assert failed.folder_existed and not Path(failed.output_dir).exists()

    cancel = threading.Event()

    def cancel_once_training(event):
        if event.stage == "training" and event.step >= 1:
            cancel.set()

    cancelled = TicketTrainer(
        dataclasses.replace(config, epochs=50, batch_size=8),
        topic_split(),
        progress=cancel_once_training,
        cancel=cancel,
    )
    with pytest.raises(JobCancelledError):
        cancelled.train()
    assert cancelled.hf_trainer.state.global_step >= 1
    assert not Path(cancelled.output_dir).exists()


def test_cancel_between_steps_raises_cancelled(tiny_model_dir):
    """Cancel is cooperative: the Trainer stops at the next step and the run is not saved."""
    cancel = threading.Event()

    def cancel_once_training(event):
        if event.stage == "training" and event.step >= 2:
            cancel.set()

    config = TrainConfig(model=str(tiny_model_dir), epochs=50, batch_size=8)
    with pytest.raises(JobCancelledError):
        train(config, topic_split(), progress=cancel_once_training, cancel=cancel)


def test_time_budget_stops_early_and_keeps_the_best(tiny_model_dir):
    config = TrainConfig(
        model=str(tiny_model_dir),
        epochs=100,
        batch_size=8,
        time_budget_minutes=0.05,
        early_stopping_patience=0,
    )
    outcome = train(config, topic_split())
    assert outcome.stop_reason == "time budget"
    assert outcome.steps < 100 * 13
    assert outcome.best_validation_macro_f1 is not None


def test_class_weighting_sets_balanced_weights(tiny_model_dir):
    split = topic_split()
    login = split.train["label"] == "login"
    split.train = pd.concat([split.train[~login], split.train[login].head(5)], ignore_index=True)
    config = TrainConfig(model=str(tiny_model_dir), method="head", epochs=1, class_weighting=True)
    weights = train(config, split).model.class_weights.numpy()
    assert weights[1] > 2 * weights[0], "the rare 'login' label weighs more"


def test_max_length_follows_the_data(tiny_model_dir):
    from core.modeling import load_tokenizer

    tokenizer = load_tokenizer(str(tiny_model_dir))
    assert choose_max_length(tokenizer, ["short ticket"] * 50) == 32
    long = ["word " * 400] * 50
    assert choose_max_length(tokenizer, long) == 402
    assert choose_max_length(tokenizer, ["word " * 900] * 50) == 512


def test_a_run_keeps_the_quick_model_when_fine_tuning_ends_below_it(tiny_model_dir):
    """A learning rate that wrecks the encoder: fine-tuning never beats the quick model on
    validation, so the run ships the quick model (same test labels) and says so."""
    split = topic_split()
    config = TrainConfig(
        model=str(tiny_model_dir), epochs=2, batch_size=8, learning_rate=0.5,
        early_stopping_patience=0,
    )  # fmt: skip
    outcome = train(config, split)
    assert outcome.quick_validation_macro_f1 is not None
    assert outcome.best_validation_macro_f1 < outcome.quick_validation_macro_f1
    assert outcome.kept_quick
    np.testing.assert_array_equal(
        outcome.test_probabilities.argmax(axis=1), outcome.quick_test_probabilities.argmax(axis=1)
    )


def test_the_kept_model_follows_the_validation_scores(tiny_model_dir):
    config = TrainConfig(model=str(tiny_model_dir), epochs=4, batch_size=16)
    outcome = train(config, topic_split())
    assert outcome.kept_quick == (
        outcome.quick_validation_macro_f1 > outcome.best_validation_macro_f1
    )


QUICK_IMPORT_PROBE = """
import sys
from core.config import TrainConfig
from core.training import train
from tests.helpers import topic_split
outcome = train(TrainConfig(model={model!r}, method="quick"), topic_split())
assert outcome.model is not None
print("trainer modules:", [m for m in ("transformers.trainer", "peft") if m in sys.modules])
"""


def test_a_quick_run_does_not_import_the_fine_tuning_machinery(tiny_model_dir):
    """transformers' Trainer (and the peft it pulls in) took ~5 s of a quick run's imports."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, "-c", QUICK_IMPORT_PROBE.format(model=str(tiny_model_dir))],
        cwd=root, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "trainer modules: []"
