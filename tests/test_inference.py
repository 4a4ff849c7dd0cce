"""Predictor: loads a saved run, labels texts in any order and batch size, explains words."""

import numpy as np
import pytest
import torch

from core.errors import RunNotFoundError
from core.inference import Predictor


@pytest.fixture(scope="module")
def predictor(trained_run) -> Predictor:
    return Predictor.load(trained_run.path)


def test_loads_labels_and_predicts_the_obvious_ticket(predictor):
    assert predictor.labels == ["billing", "login", "shipping"]
    [prediction] = predictor.predict(["I cannot log in, password reset link does not work"])
    assert prediction.label == "login"
    assert 0 < prediction.confidence <= 1
    assert prediction.top[0][0] == "login"
    assert len(prediction.top) == 3


def test_batch_equals_single_and_keeps_input_order(predictor):
    """Length-sorted batching must return rows in the caller's order, same as one by one."""
    texts = ["Where is my parcel", "invoice " * 30, "password", "My package never arrived ok"]
    batch = predictor.predict_proba(texts, batch_size=2)
    single = np.vstack([predictor.predict_proba([t]) for t in texts])
    np.testing.assert_allclose(batch, single, atol=2e-2)
    np.testing.assert_allclose(batch.sum(axis=1), 1.0, rtol=1e-4)


def test_predict_frame_has_top_three(predictor):
    frame = predictor.predict_frame(["refund please", "tracking number?"])
    assert list(frame.columns) == [
        "predicted_label",
        "confidence",
        "top2_label",
        "top2_confidence",
        "top3_label",
        "top3_confidence",
    ]
    assert (frame["confidence"] >= frame["top2_confidence"]).all()


def test_explain_gives_each_word_a_weight(predictor):
    text = "My parcel never arrived"
    prediction, words = predictor.explain(text)
    assert [w.word for w in words] == ["My", "parcel", "never", "arrived"]
    assert all(text[w.start : w.end] == w.word for w in words)
    # A weight is the drop in confidence without the word, both scored in one batch.
    both = predictor.predict_proba([text, "My never arrived"])
    target = predictor.labels.index(prediction.label)
    assert words[1].weight == pytest.approx(both[0, target] - both[1, target], abs=1e-3)


def test_explain_groups_words_of_a_long_ticket(predictor):
    text = " ".join(f"word{i}" for i in range(300)) + " invoice"
    _, words = predictor.explain(text)
    assert len(words) == 301
    assert len({w.weight for w in words}) <= 64


def test_explain_empty_text(predictor):
    prediction, words = predictor.explain("   ")
    assert words == [] and prediction.label in predictor.labels


def test_missing_model_is_a_clear_error(tmp_path):
    with pytest.raises(RunNotFoundError, match="No trained model"):
        Predictor.load(tmp_path)


def test_a_long_ticket_says_how_much_of_it_the_model_read(predictor):
    text = " ".join(f"invoice{i}" for i in range(400))
    prediction, _ = predictor.explain(text)
    reading = prediction.reading
    fed = predictor.tokenizer(text, truncation=True, max_length=predictor.meta.max_length)
    specials = predictor.tokenizer.num_special_tokens_to_add(pair=False)
    assert reading.truncated
    assert reading.tokens_read == len(fed["input_ids"]) - specials
    assert reading.tokens_total == len(predictor.tokenizer(text)["input_ids"]) - specials
    assert reading.words_total == 400
    assert 0 < reading.words_read < 400
    # The words the model read are the ones the truncated tokens came from.
    shown = predictor.tokenizer.decode(fed["input_ids"], skip_special_tokens=True).split()
    assert shown[-1].startswith(f"invoice{reading.words_read - 1}"[: len(shown[-1])])


def test_a_short_ticket_is_read_whole(predictor):
    [prediction] = predictor.predict(["Where is my parcel"])
    assert not prediction.reading.truncated
    assert prediction.reading.words_read == prediction.reading.words_total == 4


def test_bf16_scoring_holds_bf16_weights_and_gives_fp32s_labels(trained_run, sample_table):
    """Where torch scores in bf16 (CPUs with AMX/AVX-512-bf16), the loaded encoder's weights
    are bf16 (no autocast conversions at each call) while pooling and the head stay fp32; the
    labels are those of fp32 scoring. Forced here with precision="bf16", so any CPU runs it."""
    fp32 = Predictor.load(trained_run.path, precision="fp32", engine="torch")
    bf16 = Predictor.load(trained_run.path, precision="bf16", engine="torch")
    assert bf16.model.encoder.embeddings.word_embeddings.weight.dtype == torch.bfloat16
    assert bf16.model.head.weight.dtype == torch.float32
    assert fp32.model.encoder.embeddings.word_embeddings.weight.dtype == torch.float32
    texts = sample_table["body"].tolist()  # 660 real tickets
    ours, theirs = bf16.predict_proba(texts), fp32.predict_proba(texts)
    assert ours.dtype == np.float32 and np.allclose(ours.sum(axis=1), 1.0, atol=1e-4)
    assert np.abs(ours - theirs).max() < 0.02  # measured 0.006
    assert (ours.argmax(axis=1) == theirs.argmax(axis=1)).mean() >= 0.99  # measured 99.6%
