"""How the CPU reads tickets fast: length-sorted batches, plain attention for short ones.

* **Length-sorted batches with a token cap.** Each batch is padded only to its own longest
  ticket. At most 128 tickets go together, and at most ``READING_TOKENS_PER_BATCH`` padded
  tokens (128 tickets of 128 tokens), so a model read at 512 tokens does not hold four times
  the activations of one read at 128. A tighter cap was measured and rejected: 2,048 tokens
  read random 128-token batches 40% faster on the bare encoder, but real tickets of 20–103
  tokens 15% slower through the scoring path (``bench/RESULTS.md``, "Session 11").
* **Plain attention for short batches in bf16.** torch's fused attention kernel is built for
  long sequences; for a batch padded to 12 tokens it took 30% of the bf16 encoder's time, and
  the same arithmetic as plain matrix products read 2,997 tickets/s against 2,030 (24 tokens:
  1,622 against 1,353), but through the whole scoring path only 2–8% faster. At 32 tokens
  and more the fused kernel was as fast or faster, so above 24 tokens ``reading_attention``
  calls it, unchanged.
* **bf16 batches read two at a time on the CPU, one math thread each.** With bf16 weights the
  matrix products are quick and the encoder is many small operations; on two threads each of
  them ends in a wait for the other thread (core sets OpenMP's passive waiting, for shared
  CPUs: ``core.threads``), and those waits cost about a fifth of the time. Two batches on two
  threads of one math thread each never wait for each other: 2,716 tickets/s against 2,296
  (CLINC150 test file, same labels). torch in fp32 (MKL's matrix products) gained nothing and
  keeps one batch at a time. ONNX Runtime gained nothing on a quiet CPU either, but reads two
  at a time for shared CPUs (``core.onnx_engine.OnnxEngine``, ``for_batches``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, TypeVar

import numpy as np

if TYPE_CHECKING:  # torch is imported where it is used: core.onnx_engine batches without it
    import threading

    import torch
    from torch import nn

    from core.device import Placement

Item = TypeVar("Item")
Result = TypeVar("Result")

#: Most tokens (tickets × padded length) in one reading batch; see the module docstring.
READING_TOKENS_PER_BATCH = 128 * 128
#: Batches padded to at most this many tokens use plain attention when read in bf16.
PLAIN_ATTENTION_UP_TO_TOKENS = 24
#: The name ``reading_attention`` is registered under with transformers.
READING_ATTENTION = "tickettune_reading"


def length_sorted_batches(
    lengths: Sequence[int],
    max_tickets: int,
    max_tokens: int = READING_TOKENS_PER_BATCH,
) -> list[np.ndarray]:
    """Indices of the tickets in batches, shortest first, each padded only to its own longest
    ticket: at most ``max_tickets`` tickets and ``max_tokens`` padded tokens a batch (a single
    ticket longer than that still gets a batch of its own)."""
    order = np.argsort(np.asarray(lengths), kind="stable")
    ordered = np.asarray(lengths)[order]
    batches: list[np.ndarray] = []
    start = 0
    while start < len(order):
        end = start + 1
        # Lengths ascend, so the batch is padded to the length of its last ticket.
        while (
            end < len(order)
            and end - start < max_tickets
            and (end - start + 1) * int(ordered[end]) <= max_tokens
        ):
            end += 1
        batches.append(order[start:end])
        start = end
    return batches


def concurrent_readers(placement: Placement, *, bf16_weights: bool) -> int:
    """How many batches to read at once: one per math thread of the caller for bf16 weights on
    the CPU where each thread's math can run on one OpenMP thread; else 1 (see the docstring)."""
    import torch

    from core.threads import can_set_math_threads_per_thread

    if placement.device.type != "cpu" or not bf16_weights:
        return 1
    if not can_set_math_threads_per_thread():
        return 1
    return max(1, torch.get_num_threads())


def in_order_on_threads(
    work: Callable[[Item], Result],
    items: Iterable[Item],
    *,
    threads: int,
    cancel: threading.Event | None = None,
    one_math_thread: bool = True,
) -> Iterator[Result]:
    """``work(item)`` for each item, yielded in the items' order, computed on ``threads``
    threads, each of one torch math thread (``core.threads.use_one_math_thread``) unless
    ``one_math_thread`` is False; ``threads`` 1: in the calling thread. ``items`` is drawn in
    the calling thread, at most one item ahead of the threads. ``cancel``: stop before the next
    item (``JobCancelledError``); items already being read finish first. An exception in
    ``work`` is raised here."""
    from core.errors import JobCancelledError
    from core.threads import use_one_math_thread

    def check() -> None:
        if cancel is not None and cancel.is_set():
            raise JobCancelledError()

    if threads <= 1:
        for item in items:
            check()
            yield work(item)
        return
    with ThreadPoolExecutor(
        threads,
        thread_name_prefix="tickettune-reader",
        initializer=use_one_math_thread if one_math_thread else None,
    ) as pool:
        pending: deque = deque()
        try:
            for item in items:
                check()
                pending.append(pool.submit(work, item))
                if len(pending) > threads:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


def reading_attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """Attention for reading (never training): plain matrix products up to
    ``PLAIN_ATTENTION_UP_TO_TOKENS``, torch's fused kernel (transformers' ``sdpa``) above.
    ``attention_mask`` is transformers' boolean ``sdpa`` mask (True: attend) or None."""
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if key.shape[-2] > PLAIN_ATTENTION_UP_TO_TOKENS or module.training:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    scale = query.shape[-1] ** -0.5 if scaling is None else scaling
    weights = torch.matmul(query, key.transpose(2, 3)) * scale
    if attention_mask is not None:
        weights = weights.masked_fill(~attention_mask, torch.finfo(weights.dtype).min)
    weights = torch.softmax(weights, dim=-1)
    return torch.matmul(weights, value).transpose(1, 2).contiguous(), None


def use_reading_attention(encoder: nn.Module) -> bool:
    """Switch a transformers encoder to ``reading_attention``; False where the architecture
    does not take a registered attention function (it keeps its own)."""
    from transformers import AttentionInterface, AttentionMaskInterface
    from transformers.masking_utils import sdpa_mask

    AttentionInterface.register(READING_ATTENTION, reading_attention)
    AttentionMaskInterface.register(READING_ATTENTION, sdpa_mask)
    try:
        encoder.set_attn_implementation(READING_ATTENTION)
    except (AttributeError, ValueError, NotImplementedError):
        return False
    return getattr(encoder.config, "_attn_implementation", None) == READING_ATTENTION
