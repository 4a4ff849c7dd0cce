"""Shared fixtures: a tiny random-initialised BERT for fast real training, and the sample data."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_TICKETS = ROOT / "assets" / "sample_tickets.csv"
SAMPLE_NEW_TICKETS = ROOT / "assets" / "sample_new_tickets.csv"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 32-wide BERT with random weights and the embedded model's real tokenizer.

    Training it is real training (real tokenizer, real gradients) but takes seconds.
    """
    import torch
    from transformers import BertConfig, BertModel

    from core.modeling import embedded_model_path, load_tokenizer

    folder = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = load_tokenizer(str(embedded_model_path()))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
    )
    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def sample_table() -> pd.DataFrame:
    from core.tables import read_table

    return read_table(SAMPLE_TICKETS)


@pytest.fixture(scope="session")
def trained_run(tiny_model_dir, tmp_path_factory: pytest.TempPathFactory):
    """A complete run folder: the tiny model fine-tuned through the real pipeline."""
    import threading

    from core.config import TrainConfig
    from core.pipeline import TrainingRequest, execute
    from core.runs import RunStore
    from core.schema import LabelScheme
    from tests.helpers import topic_frame

    table = topic_frame(40).drop(columns="row").rename(columns={"text": "ticket", "label": "team"})
    request = TrainingRequest(
        table=table,
        scheme=LabelScheme(text_columns=("ticket",), label_column="team"),
        config=TrainConfig(model=str(tiny_model_dir), epochs=4, batch_size=16),
        source_name="topics.csv",
    )
    store = RunStore(tmp_path_factory.mktemp("runs"))
    run = store.create("topics")
    result = execute(run, request, lambda event: None, threading.Event())
    run.set_status("succeeded", result=result)
    return run
