"""The machine a benchmark ran on, printed at the top of every bench script and RESULTS.md.

Numbers from two machines (or one machine under different load) are not comparable, so every
report starts with the CPU model, the cores this process may use, the library versions, and
the load average when the script started: a load near or above the core count means someone
else was using the CPU and the timings are pessimistic.

Run it on its own to get the header for RESULTS.md: ``python -m bench.machine``.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

BUSY_LOAD_PER_CORE = 0.5


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo (Linux), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def usable_cores() -> int:
    """Cores this process may run on (CPU affinity / container limits), not the host's count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def machine_info() -> dict[str, Any]:
    """Everything that changes the numbers: CPU, cores, memory, accelerator, versions, load."""
    import psutil
    import torch
    import transformers

    from core.device import cpu_has_fast_bf16
    from core.threads import cpu_isa_limit

    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "usable_cores": usable_cores(),
        "logical_cpus": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "memory_gb": round(psutil.virtual_memory().total / 1e9, 1),
        "cpu_fast_bf16": cpu_has_fast_bf16(),
        "isa_mode": cpu_isa_limit() or "native",
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "os": platform.platform(terse=True),
        "load_average_1min": load_average(),
    }
    return info


def target_column(info: dict[str, Any]) -> str:
    """Which column of issue #10's targets applies: "avx2" when the vector units are limited to
    AVX2 (``bench.isa avx2``) or when this CPU has nothing wider (an AVX2-only laptop or VM,
    e.g. AMD Zen 2/3), else "native"."""
    if info.get("isa_mode", "native") != "native":
        return "avx2"
    return "native" if str(info.get("torch_cpu_capability", "")).startswith("AVX512") else "avx2"


def is_busy(info: dict[str, Any]) -> bool:
    """True when the 1-minute load says other work shares the cores this benchmark uses."""
    load = info.get("load_average_1min")
    return load is not None and load > BUSY_LOAD_PER_CORE * info["usable_cores"]


def header_lines(info: dict[str, Any]) -> list[str]:
    gpu = info["gpu"] or "none"
    lines = [
        f"Machine: {info['cpu']}; {info['usable_cores']} usable cores "
        f"({info['physical_cores']} physical, {info['logical_cpus']} logical); "
        f"{info['memory_gb']} GB RAM; GPU: {gpu}",
        f"Software: Python {info['python']}, torch {info['torch']} "
        f"({info['torch_threads']} threads), transformers {info['transformers']}, {info['os']}; "
        f"fast CPU bf16 (AMX/AVX-512-bf16): {'yes' if info['cpu_fast_bf16'] else 'no'}",
        f"Instruction sets: {info.get('isa_mode', 'native')} "
        f"(torch kernels: {info.get('torch_cpu_capability', '?')}; ONNX Runtime always native)",
        f"Load average (1 min) at start: {info['load_average_1min']}",
    ]
    if is_busy(info):
        lines.append(
            "WARNING: the machine is busy (load above half the usable cores): other processes "
            "share the CPU, so timings here are pessimistic and not comparable to a quiet run."
        )
    return lines


def print_header(title: str, info: dict[str, Any] | None = None) -> dict[str, Any]:
    """Print the title and the machine header; returns the machine info for the JSON line."""
    info = info or machine_info()
    print(f"== {title}")
    for line in header_lines(info):
        print(line)
    print(flush=True)
    return info


def main() -> int:
    for line in header_lines(machine_info()):
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
