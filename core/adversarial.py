"""Adversarial training (FGM, Miyato et al. 2017) as a Hugging Face Trainer training step.

Each step: the usual forward/backward; then the word-embedding table is pushed ``epsilon``
along its normalised gradient (the direction that hurts the model most, to first order), a
second forward/backward on the same batch adds the gradients of that perturbed pass, and the
table is put back exactly before the optimizer steps. The model so learns from tickets whose
words are slightly "off", which steadies it against typos and odd spelling.

Methods that freeze the word embeddings (head, bitfit, lora, adapter, prompt) still get the
perturbation: the table's gradient is computed for the direction (it is not in the optimizer,
so it never changes).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import Trainer


def word_embeddings(model: nn.Module) -> nn.Embedding:
    """The encoder's input word-embedding table (through any peft wrapper)."""
    return model.encoder.get_input_embeddings()


def adversarial_trainer(base: type[Trainer], epsilon: float) -> type[Trainer]:
    """``base`` with an FGM ``training_step``; a subclass, so it composes with others."""

    class AdversarialTrainer(base):
        adversarial_epsilon = epsilon

        def training_step(
            self, model: nn.Module, inputs: dict[str, Any], num_items_in_batch=None
        ) -> torch.Tensor:
            table = word_embeddings(self.model).weight
            frozen = not table.requires_grad
            if frozen:  # the gradient is only needed for the direction
                table.requires_grad_(True)
            try:
                loss = super().training_step(model, inputs, num_items_in_batch)
                fgm_second_pass(
                    table,
                    self.adversarial_epsilon,
                    lambda: super(AdversarialTrainer, self).training_step(
                        model, inputs, num_items_in_batch
                    ),
                )
            finally:
                if frozen:
                    table.grad = None
                    table.requires_grad_(False)
            return loss

    return AdversarialTrainer


def fgm_second_pass(table: torch.Tensor, epsilon: float, step) -> None:
    """Perturb ``table`` along its gradient, run ``step`` (forward + backward), restore it."""
    grad = table.grad
    if grad is None:
        return
    norm = torch.linalg.vector_norm(grad.float())
    if not torch.isfinite(norm) or norm == 0:
        return
    saved = table.detach().clone()
    with torch.no_grad():
        table.add_((epsilon / norm) * grad.to(table.dtype))
    try:
        step()
    finally:
        with torch.no_grad():
            table.copy_(saved)
