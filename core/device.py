"""Where and in which number format the model runs: CUDA with mixed precision, else the CPU."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from core.errors import ConfigError
from core.threads import cpu_isa_limit


def cpu_has_fast_bf16() -> bool:
    """True on CPUs with AMX or AVX-512 bf16, where bf16 matrix work is measured faster.

    False when the vector units are limited below AVX-512 (``TICKETTUNE_CPU_ISA=avx2`` or
    ``ONEDNN_MAX_CPU_ISA``): bf16 matmuls then fall back to scalar code, ~100x slower than fp32.
    """
    if cpu_isa_limit() is not None:
        return False
    cpu = torch.cpu
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(getattr(cpu, name, lambda: False)() for name in checks)


@dataclass(frozen=True)
class Placement:
    device: torch.device
    precision: str  # "fp32", "bf16" or "fp16"

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)

    @property
    def reads_in_bf16(self) -> bool:
        """Read tickets (no training) with the weights themselves in bf16, not under autocast.

        On a CPU autocast converts every weight and activation at every call; bf16 weights skip
        that: about 1.3x the tickets per second at 99.84% of fp32's labels, against autocast's
        99.78% (bench/RESULTS.md, session 6). GPUs keep autocast.
        """
        return self.device.type == "cpu" and self.precision == "bf16"

    def describe(self) -> str:
        where = "GPU" if self.device.type == "cuda" else "CPU"
        return f"{where} ({self.precision})"

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        if self.autocast_dtype is None:
            yield
            return
        with torch.autocast(self.device.type, dtype=self.autocast_dtype):
            yield


def resolve_placement(device: str = "auto", precision: str = "auto") -> Placement:
    """Pick the device and precision.

    ``auto`` precision: bf16 on GPUs that support it, fp16 on older GPUs, bf16 autocast on CPUs
    with AMX/AVX-512-bf16 (about 2.5x faster scoring and faster training at equal accuracy in
    ``bench/``), fp32 elsewhere.
    """
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("You asked for the GPU, but no CUDA GPU is available here. Use 'auto'.")
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    target = torch.device("cuda" if use_cuda else "cpu")
    if precision == "auto":
        if use_cuda:
            precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        else:
            precision = "bf16" if cpu_has_fast_bf16() else "fp32"
    if precision == "fp16" and not use_cuda:
        raise ConfigError("fp16 needs a GPU. On the CPU use 'auto', 'bf16' or 'fp32'.")
    return Placement(device=target, precision=precision)
