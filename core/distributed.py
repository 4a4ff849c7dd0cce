"""Training across processes (``torchrun ... -m core train``): who is who, and who writes.

torchrun starts one process per device and tells each its ``RANK`` and ``WORLD_SIZE``; the
Hugging Face Trainer then trains with DistributedDataParallel (gloo on CPUs, nccl on GPUs).
Every rank runs the same pipeline on the same data with the same seed, so all agree on the
split, the labels and the quick model; only rank 0 (the main process) writes the run folder
and prints the summary. The other ranks write into a scratch folder that is thrown away.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def world_size() -> int:
    """How many processes train together (1 without torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    """This process's global rank (0 without torchrun)."""
    return int(os.environ.get("RANK", "0"))


def is_distributed() -> bool:
    return world_size() > 1


def is_main_process() -> bool:
    """True in the process that writes the run and talks to the user."""
    return rank() == 0


def main_process_only(action: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
    """Run ``action`` (a write) on rank 0 only; other ranks skip it and get None."""
    return action(*args, **kwargs) if is_main_process() else None


def participants() -> int:
    """How many processes reached this point together (a collective: every rank must call it).

    1 when no process group is running. Recorded in the run's metrics as proof that every
    rank took part in training.
    """
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return 1
    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    one = torch.ones(1, device=device)
    dist.all_reduce(one)
    return int(one.item())


def agree_max(value: int) -> int:
    """The largest ``value`` any rank holds (a collective: every rank must call it as often).

    ``value`` itself when no process group is running. Ranks use it to take one decision
    together (stop training now?) where each would otherwise read its own clock.
    """
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return value
    on_gpu = dist.get_backend() == "nccl"
    device = torch.device("cuda", torch.cuda.current_device()) if on_gpu else torch.device("cpu")
    flag = torch.tensor([value], dtype=torch.int64, device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return int(flag.item())


def run_worker_rank(execute: Callable[..., Any], request: Any) -> int:
    """What a non-zero rank does for ``train``: the same pipeline, writing into scratch space.

    It takes part in every collective (training steps, evaluation) like rank 0 but leaves
    nothing behind; its progress is not printed (rank 0 reports for all).
    """
    from core.runs import Run

    scratch = Path(tempfile.mkdtemp(prefix=f"tickettune-rank{rank()}-"))
    try:
        execute(Run(scratch), request, lambda _event: None, threading.Event())
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0
