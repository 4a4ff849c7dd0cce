"""core.reading: length-sorted reading batches with a token cap, and the attention used to read
short batches in bf16."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.modeling import load_encoder
from core.reading import (
    PLAIN_ATTENTION_UP_TO_TOKENS,
    READING_ATTENTION,
    length_sorted_batches,
    use_reading_attention,
)


def test_batches_cover_every_ticket_once_shortest_first_within_both_limits():
    """Every index appears once; each batch holds at most max_tickets tickets and, padded to its
    longest ticket, at most max_tokens tokens; a ticket longer than the budget goes alone."""
    rng = np.random.default_rng(3)
    lengths = [*rng.integers(3, 200, size=500).tolist(), 5000]
    batches = length_sorted_batches(lengths, max_tickets=64, max_tokens=1024)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(len(lengths)))
    padded = [max(lengths[i] for i in batch) for batch in batches]
    assert padded == sorted(padded)
    for batch, longest in zip(batches, padded, strict=True):
        assert len(batch) <= 64
        assert len(batch) * longest <= 1024 or len(batch) == 1
    assert batches[-1].tolist() == [len(lengths) - 1]


def test_tickets_up_to_128_tokens_fill_the_batch_and_longer_ones_are_capped():
    """128 tickets a batch up to 128 tokens (as before the cap); 512-token tickets go 32 at a
    time, so a batch holds no more tokens than 128 tickets of 128."""
    short = length_sorted_batches([12] * 300, max_tickets=128)
    at_128 = length_sorted_batches([128] * 300, max_tickets=128)
    at_512 = length_sorted_batches([512] * 300, max_tickets=128)
    assert [len(b) for b in short] == [len(b) for b in at_128] == [128, 128, 44]
    assert {len(b) for b in at_512[:-1]} == {32}
    assert length_sorted_batches([], max_tickets=128) == []


@pytest.mark.parametrize("length", [7, PLAIN_ATTENTION_UP_TO_TOKENS, 40])
def test_reading_attention_gives_the_fused_kernels_result_with_padding(tiny_model_dir, length):
    """The plain-matrix branch (up to the threshold) and the fused branch (above it) give the
    encoder's usual (sdpa) output, padded positions masked: rows of different lengths in one
    batch, compared in fp32 so any masking error would show."""
    encoder, _, _ = load_encoder(str(tiny_model_dir))
    encoder.eval()
    torch.manual_seed(1)
    ids = torch.randint(1000, 5000, (3, length))
    mask = torch.ones_like(ids)
    mask[1, length // 2 :] = 0
    mask[2, 2:] = 0
    with torch.inference_mode():
        usual = encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        assert use_reading_attention(encoder)
        assert encoder.config._attn_implementation == READING_ATTENTION
        ours = encoder(input_ids=ids, attention_mask=mask).last_hidden_state
    kept = mask.bool()
    torch.testing.assert_close(ours[kept], usual[kept], atol=1e-5, rtol=1e-4)


def test_reading_in_bf16_uses_the_reading_attention_and_training_keeps_its_own(tiny_model_dir):
    """for_reading switches the bf16 copy's attention; the model it was copied from, which may
    still be trained, keeps transformers' default."""
    from core.device import Placement
    from core.modeling import TicketClassifier, for_reading

    encoder, _, _ = load_encoder(str(tiny_model_dir))
    model = TicketClassifier(encoder, 3)
    before = model.encoder.config._attn_implementation
    reader = for_reading(model, Placement(torch.device("cpu"), "bf16"), copy=True)
    assert reader.encoder.config._attn_implementation == READING_ATTENTION
    assert model.encoder.config._attn_implementation == before != READING_ATTENTION
