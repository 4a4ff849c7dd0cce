"""The one home of what each training method is: its name, plain-words description, the gist of
what we measured, and its default learning rate. Imports nothing heavy: the Train page reads it.

``gist`` says what bench/bench_methods.py measured and on which data (``BENCH``).

Weight counts are exact for the built-in all-MiniLM-L6-v2 (22.7 M weights) with 150 labels
(CLINC150 intents; the head is 384 × labels + labels), counted by bench_methods'
``trainable_weights``; "to store" is those weights in fp32. Quality and time figures quoted
come from bench/RESULTS.md.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The benchmark every gist quotes: bench/bench_methods.py, one run, same split and seed
#: (bench/RESULTS.md, "Training methods compared").
BENCH = "(CLINC150 intents, 20 tickets per label, 2 CPU cores)"


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
        "Only the final layer is fitted (58,000 weights, 0.2 MB to store); on our benchmark "
        f"{BENCH} it scored 0.920 macro-F1, 1.7 points below full, in 8 s instead of 87 s.",
        0.0,
    ),
    MethodFacts(
        "full",
        "Full fine-tuning",
        "Fine-tunes the whole model on your tickets, starting from the quick model. "
        "Most accurate; takes longest.",
        "All 22.7 M weights train (91 MB to store); the most accurate on our benchmark "
        f"{BENCH}: 0.936 macro-F1, 1.7 points above quick. Never ships below quick: if it "
        "does not beat quick on the validation tickets, the run keeps the quick model.",
        5e-5,
    ),
    MethodFacts(
        "lora",
        "LoRA",
        "Fine-tunes small add-on weights (LoRA) inside the model. Less memory, nearly as accurate.",
        "0.6% of the weights train (0.5 MB to store); merged into the model, so it scores as "
        f"fast as full. On our benchmark {BENCH} it did not beat quick on validation, so the "
        "run kept the quick model (1.7 points below full).",
        5e-4,
    ),
    MethodFacts(
        "bitfit",
        "BitFit (biases only)",
        "Fine-tunes only the model's bias terms. Light and fast, a little less accurate.",
        "0.4% of the weights train (0.3 MB to store); on our benchmark "
        f"{BENCH} 1.2 points below full, 0.4 above quick, in half full's time.",
        1e-3,
    ),
    MethodFacts(
        "head",
        "Final layer only",
        "Keeps the pretrained model frozen and trains only the final classification layer.",
        "0.25% of the weights train (the final layer, 0.2 MB to store); on our benchmark "
        f"{BENCH} no better than quick (the run kept the quick model), 1.7 points below full.",
        1e-3,
    ),
    MethodFacts(
        "adapter",
        "Adapters",
        "Adds a small bottleneck layer after each block of the model and trains only those "
        "(and the final layer). The pretrained model stays as it is.",
        "1.6% of the weights train (bottleneck 64; 1.4 MB to store beside the shared model); "
        f"on our benchmark {BENCH} the best of the light methods: 1.1 points below full, "
        "0.6 above quick, in 60% of full's time.",
        1e-3,
        keeps_addon=True,
    ),
    MethodFacts(
        "prompt",
        "Prompt tuning",
        "Learns a few extra 'virtual words' put in front of every ticket; the model itself "
        "stays frozen. The lightest method, usually the least accurate on small models.",
        "20 virtual words (7,680 weights) plus the final layer train: 0.3% (0.3 MB to store); "
        "every ticket gets 20 tokens longer to read, so it scores 3x slower; on our benchmark "
        f"{BENCH} 3.4 points below full and 1.7 below quick. Not recommended for this model.",
        1e-2,
        keeps_addon=True,
    ),
)

#: What training against typos (FGM, core/adversarial.py) bought on bench_adversarial: full on
#: CLINC150 intents (20 tickets per label), clean test and a copy with 10% of letters perturbed.
ADVERSARIAL_GIST = (
    "Each step also learns from slightly distorted tickets. On our benchmark "
    f"{BENCH} it changed little: +0.3 points on clean tickets, +0.1 on tickets with typos "
    "(0.683 → 0.684), for 1.7x the training time. Worth a try when tickets are full of typos."
)

METHOD_FACTS: dict[str, MethodFacts] = {f.key: f for f in _FACTS}
METHODS: tuple[str, ...] = tuple(METHOD_FACTS)


def method_gist(method: str) -> str:
    """The measured gist of ``method`` in one line, for the Train page."""
    return METHOD_FACTS[method].gist
