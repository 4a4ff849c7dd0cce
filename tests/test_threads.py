"""Process start-up settings: passive OpenMP waiting, the AVX2 switch, threads per job, and
work handed to a background thread."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from core.threads import (
    ISA_ENV,
    MALLOC_ARENAS,
    MALLOC_KEEP_ENV,
    MALLOC_KEEP_MB,
    compute_threads,
    configure_malloc,
    configure_process,
    cpu_isa_limit,
    isa_environment,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_configure_sets_passive_waiting_and_keeps_what_the_user_chose():
    env: dict[str, str] = {}
    assert configure_process(env) == {"OMP_WAIT_POLICY": "PASSIVE", "OPENBLAS_NUM_THREADS": "1"}
    assert configure_process(env) == {}  # idempotent
    mine = {"OMP_WAIT_POLICY": "ACTIVE"}
    configure_process(mine)
    assert mine["OMP_WAIT_POLICY"] == "ACTIVE"


def test_scikit_learns_blas_runs_on_one_thread_in_our_processes():
    """Set before numpy loads (importing core does it), so OpenBLAS starts with one thread."""
    code = (
        "import core, numpy, scipy.linalg, sklearn.linear_model\n"
        "from threadpoolctl import threadpool_info\n"
        "print(sorted({i['num_threads'] for i in threadpool_info() "
        "if i['internal_api'] == 'openblas'}))"
    )
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[1]"


def test_the_avx2_switch_sets_every_library_limit():
    env = {ISA_ENV: "avx2"}
    configure_process(env)
    assert env["ONEDNN_MAX_CPU_ISA"] == "AVX2"
    assert env["MKL_ENABLE_INSTRUCTIONS"] == "AVX2"
    assert env["ATEN_CPU_CAPABILITY"] == "avx2"
    assert env["OPENBLAS_CORETYPE"] == "Haswell"
    assert cpu_isa_limit(env) == "avx2"


def test_isa_limit_is_also_read_from_onednn_alone():
    assert cpu_isa_limit({}) is None
    assert cpu_isa_limit({ISA_ENV: "native"}) is None
    assert cpu_isa_limit({"ONEDNN_MAX_CPU_ISA": "AVX2"}) == "avx2"
    assert cpu_isa_limit({"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_AMX"}) is None
    assert isa_environment("native") == {}
    with pytest.raises(ValueError, match="avx2"):
        isa_environment("avx9000")


def test_compute_threads_is_within_the_usable_cores():
    assert 1 <= compute_threads() <= len(os.sched_getaffinity(0))


def _child(code: str, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", ISA_ENV)}
    clean.update(env)
    for key in ("ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS", "ONEDNN_MAX_CPU_ISA",
                "OPENBLAS_CORETYPE"):  # fmt: skip
        clean.pop(key, None)
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=clean, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_importing_core_applies_the_settings_before_torch_starts():
    """Any entry point (app, CLI, bench) imports core first; torch then sees the limit."""
    code = (
        "import core, os, torch\n"
        "from core.device import cpu_has_fast_bf16\n"
        "print(os.environ['OMP_WAIT_POLICY'], torch.backends.cpu.get_cpu_capability(),"
        " cpu_has_fast_bf16())"
    )
    policy, capability, bf16 = _child(code, **{ISA_ENV: "avx2"}).split()
    assert (policy, capability, bf16) == ("PASSIVE", "AVX2", "False")


def test_the_avx2_switch_reaches_scikit_learns_openblas():
    """scikit-learn's fits (quick head, audit) run on numpy/scipy's OpenBLAS kernels; with the
    switch set before core is imported, OpenBLAS loads its AVX2 (Haswell) kernels."""
    code = (
        "import core, numpy, scipy.linalg, threadpoolctl\n"
        "print(sorted({d['architecture'] for d in threadpoolctl.threadpool_info()"
        " if d['internal_api'] == 'openblas'}))"
    )
    assert _child(code, **{ISA_ENV: "avx2"}) == "['Haswell']"


_GLIBC = sys.platform.startswith("linux") and os.confstr("CS_GNU_LIBC_VERSION") is not None

_REUSE_CODE = """
import resource, threading, torch
import core
def work():
    for n in (300_000, 900_000, 2_000_000, 5_000_000) * 6:  # 1.2-20 MB, like a batch's
        a = torch.ones(n)
        b = a * 2
        del a, b
faults = {}
def reader():  # a reading thread, as in core/reading.py (its own malloc arena)
    work()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    work()
    faults["later"] = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
t = threading.Thread(target=reader)
t.start()
t.join()
print(faults["later"])
"""


@pytest.mark.skipif(not _GLIBC, reason="the setting is glibc's")
def test_malloc_settings_are_on_by_default_and_each_can_be_turned_off():
    assert configure_malloc({}).keep_mb == MALLOC_KEEP_MB
    assert configure_malloc({}).arenas == MALLOC_ARENAS
    assert configure_malloc({MALLOC_KEEP_ENV: "not a number"}).keep_mb == MALLOC_KEEP_MB
    assert configure_malloc({MALLOC_KEEP_ENV: "0"}).keep_mb == 0
    assert configure_malloc({"MALLOC_ARENA_MAX": "4"}).arenas == 0  # the user's own cap wins
    configure_malloc({})  # back to what importing core set for this process


@pytest.mark.skipif(not _GLIBC, reason="the setting is glibc's")
def test_freed_activations_are_reused_instead_of_faulted_in_again():
    """Once importing core set it, a thread that frees and re-allocates tensors of a batch's
    sizes gets the same memory back: its later passes take almost no page faults, against
    thousands with the setting off (glibc returns each freed block to the system)."""
    kept = int(_child(_REUSE_CODE))
    off = int(_child(_REUSE_CODE, **{MALLOC_KEEP_ENV: "0"}))
    assert off > 1000, off
    assert kept * 10 < off, (kept, off)


def test_in_background_hands_over_the_result_or_the_error():
    """Work runs in a named daemon thread; its value, or its exception, comes back through the
    Future in the caller's thread."""
    import threading

    from core.threads import in_background

    seen: list[threading.Thread] = []

    def work() -> int:
        seen.append(threading.current_thread())
        return 42

    assert in_background(work, name="tt-test").result(timeout=10) == 42
    assert seen[0] is not threading.current_thread()
    assert seen[0].daemon and seen[0].name == "tt-test"

    def fails() -> None:
        raise MemoryError("no memory here")

    with pytest.raises(MemoryError, match="no memory here"):
        in_background(fails, name="tt-test").result(timeout=10)
