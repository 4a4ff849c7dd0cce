"""Adversarial training (FGM): a second, perturbed pass adds gradients; embeddings restored."""

import subprocess
import sys

import pandas as pd
import torch

from core.adversarial import adversarial_trainer, word_embeddings
from core.config import TrainConfig
from core.training import TicketTrainer, train
from tests.conftest import ROOT
from tests.helpers import topic_split


def built_steps(tiny_model_dir, tmp_path, **config):
    steps = TicketTrainer(
        TrainConfig(model=str(tiny_model_dir), epochs=1, batch_size=8, **config), topic_split()
    )
    steps.load()
    steps.embed()
    steps.fit_head()
    steps.prepare_method()
    steps.build_trainer(str(tmp_path))
    for module in steps.model.modules():  # no dropout: both passes see the same network
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    return steps


def one_step_gradients(steps) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    trainer = steps.hf_trainer
    trainer.current_gradient_accumulation_steps = 1  # set by Trainer.train() otherwise
    batch = next(iter(trainer.get_train_dataloader()))
    table = word_embeddings(steps.model).weight
    before = table.detach().clone()
    steps.model.zero_grad()
    trainer.training_step(steps.model, batch)
    torch.testing.assert_close(table.detach(), before, rtol=0, atol=0)
    grads = {n: p.grad.clone() for n, p in steps.model.named_parameters() if p.grad is not None}
    return grads, before


def test_the_option_picks_the_adversarial_step(tiny_model_dir, tmp_path):
    plain = built_steps(tiny_model_dir, tmp_path / "a")
    adversarial = built_steps(tiny_model_dir, tmp_path / "b", adversarial=True)
    assert type(plain.hf_trainer).training_step is not type(adversarial.hf_trainer).training_step
    assert type(adversarial.hf_trainer).adversarial_epsilon == 1.0


def test_second_pass_gradients_are_added_and_embeddings_restored(tiny_model_dir, tmp_path):
    plain = built_steps(tiny_model_dir, tmp_path / "a", seed=1)
    adversarial = built_steps(tiny_model_dir, tmp_path / "b", seed=1, adversarial=True)
    plain_grads, plain_table = one_step_gradients(plain)
    adv_grads, adv_table = one_step_gradients(adversarial)
    torch.testing.assert_close(plain_table, adv_table, rtol=0, atol=0)  # same start
    head = "head.weight"
    assert not torch.allclose(plain_grads[head], adv_grads[head]), "perturbed pass contributes"
    # The added part is the gradient at the perturbed point: of the same size, not a copy.
    extra = adv_grads[head] - plain_grads[head]
    assert 0.1 < extra.norm() / plain_grads[head].norm() < 10
    assert not torch.allclose(extra, plain_grads[head], rtol=1e-3)


def test_frozen_embeddings_stay_exactly_as_they_were(tiny_model_dir):
    """head/lora/...: the table is only perturbed for the direction, never trained or left off."""
    from transformers import AutoModel

    pretrained = AutoModel.from_pretrained(tiny_model_dir).get_input_embeddings().weight
    config = TrainConfig(model=str(tiny_model_dir), method="head", epochs=2, adversarial=True)
    outcome = train(config, topic_split())
    table = outcome.model.encoder.get_input_embeddings().weight
    torch.testing.assert_close(table.detach(), pretrained.detach(), rtol=0, atol=0)
    assert not table.requires_grad or table.grad is None


def test_full_training_changes_embeddings_only_by_the_optimizer(tiny_model_dir, tmp_path):
    """With SGD (no momentum, no decay), weights after a step = before − lr × (summed grads)."""
    steps = built_steps(tiny_model_dir, tmp_path, adversarial=True, weight_decay=0.0)
    table = word_embeddings(steps.model).weight
    lr = 0.5
    optimizer = torch.optim.SGD([table], lr=lr)
    grads, before = one_step_gradients(steps)
    optimizer.step()
    expected = before - lr * grads["encoder.embeddings.word_embeddings.weight"]
    torch.testing.assert_close(table.detach(), expected, rtol=0, atol=1e-7)


def test_adversarial_trainer_composes_with_another_subclass():
    from transformers import Trainer

    class Other(Trainer):
        pass

    cls = adversarial_trainer(Other, 0.5)
    assert issubclass(cls, Other) and cls.adversarial_epsilon == 0.5


def perturb(source, out, seed):
    subprocess.run(
        [
            sys.executable,
            "bench/perturb_tickets.py",
            source,
            out,
            "--seed",
            str(seed),
            "--text-column",
            "text",
        ],
        check=True,
        cwd=ROOT,
    )
    return pd.read_csv(out)


def test_perturbation_is_deterministic_for_a_seed(tmp_path):
    source = tmp_path / "test.csv"
    frame = topic_split().test[["text", "label"]]
    frame.to_csv(source, index=False)
    first = perturb(source, tmp_path / "a.csv", 3)
    again = perturb(source, tmp_path / "b.csv", 3)
    other = perturb(source, tmp_path / "c.csv", 4)
    pd.testing.assert_frame_equal(first, again)
    assert first["label"].tolist() == frame["label"].tolist()
    assert (first["text"] != frame["text"]).mean() > 0.8, "most tickets are changed"
    assert first["text"].tolist() != other["text"].tolist()
