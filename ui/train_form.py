"""The training settings of the Train page: model, method and the advanced knobs.

Every widget keeps its value for the whole session (``persist_state="session"``), so a visit to
another page does not reset the settings.
"""

from __future__ import annotations

import streamlit as st

from core.config import (
    AUTO_BATCH_NOTE,
    AUTO_EPOCHS_NOTE,
    MAX_MODEL_LENGTH,
    TrainConfig,
    learning_rate_note,
)
from core.methods import ADVERSARIAL_GIST, METHOD_FACTS, METHODS

BUILTIN = "Built-in: all-MiniLM-L6-v2 (works offline)"
OTHER = "Another model: a Hugging Face id or a folder on this computer"
METHOD_NAMES = {key: facts.title for key, facts in METHOD_FACTS.items()}
KEEP = {"persist_state": "session"}  # settings survive a visit to another page
DEFAULTS = TrainConfig()  # what an analyst gets by pressing Train: the form starts there


def model_and_method() -> tuple[str, str]:
    choice = st.radio("Model", [BUILTIN, OTHER], key="train_model", **KEEP)
    model = DEFAULTS.model
    if choice == OTHER:
        model = st.text_input(
            "Hugging Face model id or local folder",
            key="train_model_path",
            placeholder="e.g. distilroberta-base",
            **KEEP,
        ).strip()
    method = st.radio(
        "Method",
        METHODS,
        index=METHODS.index(DEFAULTS.method),
        key="train_method",
        format_func=METHOD_NAMES.get,
        **KEEP,
        captions=[METHOD_FACTS[m].description for m in METHODS],
    )
    st.caption(f"What we measured: {METHOD_FACTS[method].gist}")
    return model, method


def advanced(method: str) -> dict:
    with st.expander("Advanced settings"):
        a, b, c = st.columns(3)
        values = {
            "epochs": a.number_input(
                "Epochs (passes over the tickets)",
                0.1,
                100.0,
                DEFAULTS.epochs,
                0.5,
                key="train_epochs",
                **KEEP,
                placeholder=AUTO_EPOCHS_NOTE,
            ),
            "learning_rate": b.number_input(
                "Learning rate",
                1e-7,
                0.5,
                DEFAULTS.learning_rate,
                format="%.1e",
                key="train_lr",
                **KEEP,
                placeholder=learning_rate_note(method),
            ),
            "batch_size": c.number_input(
                "Batch size",
                1,
                1024,
                DEFAULTS.batch_size,
                key="train_batch_size",
                **KEEP,
                placeholder=AUTO_BATCH_NOTE,
            ),
            "weight_decay": a.number_input(
                "Weight decay",
                0.0,
                0.99,
                DEFAULTS.weight_decay,
                0.01,
                key="train_weight_decay",
                **KEEP,
            ),
            "early_stopping_patience": b.number_input(
                "Stop after this many checks without improvement (0 = never)",
                0,
                100,
                DEFAULTS.early_stopping_patience,
                key="train_patience",
                **KEEP,
            ),
            "time_budget_minutes": c.number_input(
                "Time budget (minutes)",
                0.5,
                10_000.0,
                DEFAULTS.time_budget_minutes,
                key="train_time_budget",
                **KEEP,
                placeholder="no limit",
            ),
            "seed": a.number_input(
                "Random seed", 0, 2**31 - 1, DEFAULTS.seed, key="train_seed", **KEEP
            ),
            "max_length": b.number_input(
                "Maximum ticket length (tokens)",
                8,
                MAX_MODEL_LENGTH,
                DEFAULTS.max_length,
                key="train_max_length",
                placeholder="automatic",
                **KEEP,
            ),
            "class_weighting": c.checkbox(
                "Give rare labels more weight",
                value=DEFAULTS.class_weighting,
                key="train_class_weighting",
                **KEEP,
            ),
            "adversarial": a.checkbox(
                "Train against typos and odd spelling",
                value=DEFAULTS.adversarial,
                key="train_adversarial",
                help=ADVERSARIAL_GIST,
                **KEEP,
            ),
        }
    ints = ("batch_size", "early_stopping_patience", "seed", "max_length")
    return {k: (int(v) if k in ints and v is not None else v) for k, v in values.items()}
