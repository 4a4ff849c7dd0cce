"""core/reuse.py: work done for the same input is reused, anything different is recomputed."""

import dataclasses
import shutil

import numpy as np
import pandas as pd

from core.baseline import run_baseline
from core.config import TrainConfig
from core.reuse import REUSE_DIR, WorkCache, content_key, model_identity
from core.runs import RunStore
from core.training import train
from tests.helpers import topic_split


def test_stored_arrays_round_trip_and_damage_means_recompute(tmp_path):
    cache = WorkCache(tmp_path / REUSE_DIR)
    assert cache.load("k") is None
    cache.save("k", embeddings=np.arange(6, dtype=np.float32).reshape(2, 3))
    np.testing.assert_array_equal(cache.load("k")["embeddings"], [[0, 1, 2], [3, 4, 5]])
    (tmp_path / REUSE_DIR / "k.npz").write_bytes(b"not an npz file")
    assert cache.load("k") is None


def test_the_key_changes_with_any_text_setting_or_weight_byte(tmp_path):
    texts = ["printer is broken", "reset my password"]
    key = content_key("embeddings", "model", 64, texts)
    assert key == content_key("embeddings", "model", 64, list(texts))
    assert key != content_key(
        "embeddings", "model", 64, ["printer is broken", "reset my passwords"]
    )
    assert key != content_key("embeddings", "model", 128, texts)
    assert key != content_key("embeddings", "model", 64, ["printer is", "broken reset my password"])

    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"\x00" * 64)
    before = model_identity(str(folder))
    (folder / "model.safetensors").write_bytes(b"\x00" * 63 + b"\x01")
    assert model_identity(str(folder)) != before
    assert model_identity("org/some-hub-model") == "hub:org/some-hub-model"


def test_a_second_run_on_the_same_tickets_reuses_embeddings_and_quick_head(
    tiny_model_dir, tmp_path
):
    """Quick, then full on the same split: the full run reads no ticket again and fits the
    same quick head; a run with one changed test ticket re-reads the test tickets only."""
    split = topic_split()
    cache = WorkCache(tmp_path / REUSE_DIR)
    first_events, second_events, third_events = [], [], []
    quick = train(TrainConfig(model=str(tiny_model_dir), method="quick"), split,
                  progress=first_events.append, reuse=cache)  # fmt: skip
    assert not any("Reusing" in (e.message or "") for e in first_events)

    full = train(TrainConfig(model=str(tiny_model_dir), method="full", epochs=1, batch_size=16),
                 split, progress=second_events.append, reuse=cache)  # fmt: skip
    reused = [e.message for e in second_events if "Reusing" in (e.message or "")]
    assert len(reused) == 4, reused  # train, validation, test embeddings + the quick head
    assert not any(e.step for e in second_events if e.stage == "embedding"), "nothing re-read"
    np.testing.assert_allclose(full.quick_test_probabilities, quick.test_probabilities)

    changed = split.test.copy()
    changed.loc[changed.index[0], "text"] = changed["text"].iloc[0] + " again"
    split_changed = dataclasses.replace(split, test=changed)
    train(TrainConfig(model=str(tiny_model_dir), method="quick"), split_changed,
          progress=third_events.append, reuse=cache)  # fmt: skip
    reading = [e.message for e in third_events if e.message and "tickets" in e.message]
    assert any(m.startswith("Reading") and "test" in m for m in reading), reading
    assert any(m.startswith("Reusing") and "train" in m for m in reading), reading


def test_the_baseline_is_reused_only_for_the_same_tickets_and_labels(tmp_path):
    split = topic_split()
    cache = WorkCache(tmp_path / REUSE_DIR)
    first = run_baseline(split.train, split.test, reuse=cache)
    assert len(list((tmp_path / REUSE_DIR).glob("*.npz"))) == 1
    again = run_baseline(split.train, split.test, reuse=cache)
    pd.testing.assert_frame_equal(first.predictions, again.predictions)
    assert first.metrics == again.metrics
    assert len(list((tmp_path / REUSE_DIR).glob("*.npz"))) == 1, "the same fit: nothing new"
    relabelled = split.train.assign(label=np.roll(split.train["label"].to_numpy(), 1))
    run_baseline(relabelled, split.test, reuse=cache)
    assert len(list((tmp_path / REUSE_DIR).glob("*.npz"))) == 2, "other labels: fitted again"


def test_the_reuse_folder_is_not_a_run(tmp_path):
    store = RunStore(tmp_path)
    store.create("one")
    WorkCache.beside(tmp_path).save("k", x=np.zeros(2))
    assert [s.name for s in store.list()] == ["one"]
    shutil.rmtree(tmp_path / REUSE_DIR)  # deleting it is always safe
