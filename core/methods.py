"""The one home of what each training method is: its name, plain-words description, the gist of
what we measured, and its default learning rate. Imports nothing heavy: the Train page reads it.

``gist`` says what bench/bench_methods.py measured and on which data; a figure we have not yet
measured on a realistic machine says so ("to be measured") rather than guessing.
"""

from __future__ import annotations

from dataclasses import dataclass

TO_BE_MEASURED = "to be measured"


@dataclass(frozen=True)
class MethodFacts:
    """One training method as the Train page and the docs describe it."""

    key: str
    title: str
    description: str
    gist: str
    learning_rate: float
    #: Whether the saved model needs more than a plain encoder + head (see core/addons.py).
    keeps_addon: bool = False


_FACTS = (
    MethodFacts(
        "quick",
        "Quick",
        "Reads each ticket once with the pretrained model and fits a simple classifier on top. "
        "A usable first model in about a minute.",
        "No fine-tuning; on a 10,000-ticket set it scored 0.8 points below full fine-tuning "
        "in a sixth of the time.",
        0.0,
    ),
    MethodFacts(
        "full",
        "Full fine-tuning",
        "Fine-tunes the whole model on your tickets, starting from the quick model. "
        "Most accurate; takes longest.",
        "All weights train (22.7 M for the built-in model); the most accurate method we "
        "measured; 90 MB to store.",
        5e-5,
    ),
    MethodFacts(
        "lora",
        "LoRA",
        "Fine-tunes small add-on weights (LoRA) inside the model. Less memory, nearly as accurate.",
        "About 0.3% of the weights train; merged into the model, so scoring is as fast as full; "
        f"accuracy against full: {TO_BE_MEASURED}.",
        5e-4,
    ),
    MethodFacts(
        "bitfit",
        "BitFit (biases only)",
        "Fine-tunes only the model's bias terms. Light and fast, a little less accurate.",
        f"About 0.1% of the weights train; accuracy against full: {TO_BE_MEASURED}.",
        1e-3,
    ),
    MethodFacts(
        "head",
        "Final layer only",
        "Keeps the pretrained model frozen and trains only the final classification layer.",
        f"Only the classification layer trains; accuracy against full: {TO_BE_MEASURED}.",
        1e-3,
    ),
    MethodFacts(
        "adapter",
        "Adapters",
        "Adds a small bottleneck layer after each block of the model and trains only those "
        "(and the final layer). The pretrained model stays as it is.",
        "About 1-3% of the weights train (bottleneck 64); they are stored beside the model "
        f"(under 1 MB for the built-in model); accuracy against full: {TO_BE_MEASURED}.",
        1e-3,
        keeps_addon=True,
    ),
    MethodFacts(
        "prompt",
        "Prompt tuning",
        "Learns a few extra 'virtual words' put in front of every ticket; the model itself "
        "stays frozen. The lightest method, usually the least accurate on small models.",
        "Only 20 virtual words (about 8,000 numbers) plus the final layer train; stored "
        f"beside the model in a few kB; accuracy against full: {TO_BE_MEASURED}.",
        1e-2,
        keeps_addon=True,
    ),
)

METHOD_FACTS: dict[str, MethodFacts] = {f.key: f for f in _FACTS}
METHODS: tuple[str, ...] = tuple(METHOD_FACTS)


def method_gist(method: str) -> str:
    """The measured gist of ``method`` in one line, for the Train page."""
    return METHOD_FACTS[method].gist
