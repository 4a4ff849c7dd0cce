"""Device and precision choice: CUDA paths exist and are exercised on a CPU-only machine."""

import pytest
import torch

from core import device as device_module
from core.device import resolve_placement
from core.errors import ConfigError


def test_cpu_auto_uses_bf16_only_where_the_cpu_is_fast_at_it(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(device_module, "cpu_has_fast_bf16", lambda: True)
    assert resolve_placement().precision == "bf16"
    monkeypatch.setattr(device_module, "cpu_has_fast_bf16", lambda: False)
    placement = resolve_placement()
    assert (placement.device.type, placement.precision) == ("cpu", "fp32")
    assert placement.autocast_dtype is None


def test_cuda_auto_picks_bf16_or_fp16_by_gpu(monkeypatch):
    """On a GPU 'auto' means mixed precision: bf16 where supported, else fp16."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    placement = resolve_placement()
    assert (placement.device.type, placement.precision) == ("cuda", "bf16")
    assert placement.describe() == "GPU (bf16)"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert resolve_placement().precision == "fp16"


def test_asking_for_a_missing_gpu_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        resolve_placement("cuda")
    with pytest.raises(ConfigError, match="fp16 needs a GPU"):
        resolve_placement("cpu", "fp16")


def test_bf16_autocast_runs_on_cpu():
    placement = resolve_placement("cpu", "bf16")
    with placement.autocast():
        out = torch.nn.Linear(4, 2)(torch.ones(1, 4))
    assert out.dtype == torch.bfloat16


def test_avx2_mode_turns_bf16_off_even_on_an_amx_cpu(monkeypatch):
    """TICKETTUNE_CPU_ISA=avx2 (or a oneDNN limit) must win over what the CPU reports."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("TICKETTUNE_CPU_ISA", "avx2")
    assert device_module.cpu_has_fast_bf16() is False
    assert resolve_placement().precision == "fp32"
    monkeypatch.delenv("TICKETTUNE_CPU_ISA")
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert device_module.cpu_has_fast_bf16() is False
