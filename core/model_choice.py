"""Which model a fine-tuning run kept, in words the Review page and the command line share.

Fine-tuning starts from the quick model (frozen embeddings + logistic regression head). With
few tickets per label it can end below that starting point; the run then keeps the quick
model (core.callbacks.BestModelKeeper.set_floor) and says so here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def kept_quick(training: Mapping[str, Any]) -> bool:
    """True when a run's ``metrics.json["training"]`` says fine-tuning lost to the quick model."""
    return bool(training.get("kept_quick"))


def model_choice_note(training: Mapping[str, Any]) -> str | None:
    """One sentence for a run that kept the quick model; None when fine-tuning won."""
    if not kept_quick(training):
        return None
    quick = training.get("quick_validation_macro_f1")
    tuned = training.get("best_validation_macro_f1")
    scores = ""
    if quick is not None:
        tuned_text = "no better" if tuned is None else f"{tuned:.1%}"
        scores = f" (validation macro-F1: quick {quick:.1%}, fine-tuned {tuned_text})"
    return (
        "Fine-tuning did not beat the quick model it started from on the validation "
        f"tickets{scores}, so this run keeps the quick model. This happens with few tickets "
        "per label; more labelled tickets usually let fine-tuning pull ahead."
    )
