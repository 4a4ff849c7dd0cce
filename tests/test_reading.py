"""core.reading: length-sorted reading batches with a token cap, the attention used to read
short batches in bf16, and bf16 batches read two at a time on threads of one math thread each."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from core.device import Placement
from core.errors import JobCancelledError
from core.modeling import load_encoder
from core.reading import (
    PLAIN_ATTENTION_UP_TO_TOKENS,
    READING_ATTENTION,
    concurrent_readers,
    in_order_on_threads,
    length_sorted_batches,
    use_reading_attention,
)
from core.threads import can_set_math_threads_per_thread

needs_per_thread_math = pytest.mark.skipif(
    not can_set_math_threads_per_thread(), reason="torch's OpenMP runtime is not reachable here"
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


@pytest.fixture
def two_math_threads():
    """torch on two math threads for the test (as on the 2-core machines this is built for)."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def _math_threads_of_a_new_thread() -> int:
    seen: list[int] = []
    thread = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
    thread.start()
    thread.join()
    return seen[0]


@needs_per_thread_math
def test_readers_run_on_one_math_thread_each_and_leave_every_other_thread_as_it_was(
    two_math_threads,
):
    """Results come back in the items' order; each item's work ran on a reader thread whose torch
    operations use one OpenMP thread, while the caller and threads started afterwards keep
    torch's count (torch.set_num_threads in the readers would change the latter)."""
    before = _math_threads_of_a_new_thread()

    def work(item: int) -> tuple[int, str, int]:
        torch.ones(64, 64).matmul(torch.ones(64, 64))  # the thread's torch set-up has run
        return item, threading.current_thread().name, torch.get_num_threads()

    results = list(in_order_on_threads(work, range(9), threads=2))
    assert [item for item, _, _ in results] == list(range(9))
    assert {name.startswith("tickettune-reader") for _, name, _ in results} == {True}
    assert {threads for _, _, threads in results} == {1}
    assert torch.get_num_threads() == 2
    assert _math_threads_of_a_new_thread() == before == 2


def test_one_reader_works_in_the_calling_thread():
    names = list(in_order_on_threads(lambda _: threading.current_thread().name, "ab", threads=1))
    assert names == [threading.current_thread().name] * 2


@pytest.mark.parametrize("threads", [1, 2])
def test_a_cancelled_read_stops_before_the_remaining_items(threads):
    """Cancelling after the first result raises JobCancelledError and leaves most items unread."""
    cancel = threading.Event()
    drawn: list[int] = []

    def items():
        for i in range(50):
            drawn.append(i)
            yield i

    read = in_order_on_threads(lambda i: i, items(), threads=threads, cancel=cancel)
    assert next(read) == 0
    cancel.set()
    with pytest.raises(JobCancelledError):
        list(read)
    assert len(drawn) <= threads + 2


@pytest.mark.parametrize("threads", [1, 2])
def test_an_error_in_a_reader_is_raised_to_the_caller(threads):
    def work(i: int) -> int:
        if i == 3:
            raise ValueError("ticket 3 is broken")
        return i

    with pytest.raises(ValueError, match="ticket 3"):
        list(in_order_on_threads(work, range(8), threads=threads))


def test_only_bf16_weights_on_the_cpu_are_read_concurrently():
    """torch in fp32 (MKL) gained nothing from two readers (ONNX Runtime reads its own way:
    core.onnx_engine); GPUs keep one stream."""
    cpu = Placement(torch.device("cpu"), "bf16")
    assert concurrent_readers(cpu, bf16_weights=False) == 1
    assert concurrent_readers(Placement(torch.device("cuda"), "bf16"), bf16_weights=True) == 1
    expected = torch.get_num_threads() if can_set_math_threads_per_thread() else 1
    assert concurrent_readers(cpu, bf16_weights=True) == expected


@needs_per_thread_math
def test_concurrent_bf16_reading_gives_the_rows_of_reading_one_batch_at_a_time(
    tiny_model_dir, monkeypatch, two_math_threads
):
    """The classifier's bf16 reading copy over many length-sorted batches: two readers return
    the same probabilities, row for row in input order, as one reader, with progress counted
    in the caller's thread up to every ticket."""
    import core.modeling as modeling
    from core.modeling import TicketClassifier, classify, for_reading, load_tokenizer

    encoder, _, _ = load_encoder(str(tiny_model_dir))
    torch.manual_seed(0)
    placement = Placement(torch.device("cpu"), "bf16")
    assert concurrent_readers(placement, bf16_weights=True) == 2
    reader = for_reading(TicketClassifier(encoder, 5), placement, copy=False)
    tokenizer = load_tokenizer(str(tiny_model_dir))
    words = ["printer", "login", "refund", "invoice", "password", "vpn", "screen", "delivery"]
    texts = [" ".join(words[: 1 + i % 8] * (1 + i % 5)) for i in range(300)]
    progress: list[tuple[int, int, str]] = []

    def on_batch(done: int, total: int) -> None:
        progress.append((done, total, threading.current_thread().name))

    kwargs = dict(max_length=64, placement=placement, batch_size=16)
    two = classify(reader, tokenizer, texts, on_batch=on_batch, **kwargs)
    monkeypatch.setattr(modeling, "concurrent_readers", lambda *a, **k: 1)
    one = classify(reader, tokenizer, texts, **kwargs)
    np.testing.assert_allclose(two, one, rtol=0, atol=1e-6)
    assert progress[-1][:2] == (300, 300)
    assert [done for done, _, _ in progress] == sorted(done for done, _, _ in progress)
    assert {name for _, _, name in progress} == {threading.current_thread().name}
