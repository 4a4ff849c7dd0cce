"""Process start-up settings for the math libraries: thread behaviour and vector-unit limits.

Call ``configure_process()`` first thing in every entry point (``app.py``, ``python -m core``,
the bench scripts), before anything imports torch: OpenMP, MKL and oneDNN read these
variables once, when they start. So this module must not import torch when it is imported
(its per-thread helpers import it when they are called).

Why PASSIVE waiting: torch's OpenMP threads spin at the end of every parallel region waiting
for their siblings. When another CPU-bound process shares the cores, a spinning thread burns
the time slice the preempted sibling needs, and every one of the thousands of small operations
in a training step waits for the scheduler: fine-tuning ran ~20x slower next to one busy
process (fair sharing explains 2x). Sleeping waiters cost about nothing on a quiet machine.

``TICKETTUNE_CPU_ISA=avx2`` limits torch, MKL and oneDNN to AVX2 (and turns bf16 off, see
``core.device``), to see how the app behaves on an ordinary CPU while running on an AMX one.
ONNX Runtime has no such switch: it always uses the best instructions the CPU has.
"""

from __future__ import annotations

import ctypes
import functools
import glob
import os
import threading
from collections.abc import Callable, MutableMapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

ISA_ENV = "TICKETTUNE_CPU_ISA"
ISA_CHOICES = ("native", "avx2")
# Library variables per limit: ATen's own kernels, MKL's GEMMs, oneDNN's primitives.
ISA_LIBRARY_ENV = {
    "avx2": {
        "ATEN_CPU_CAPABILITY": "avx2",
        "MKL_ENABLE_INSTRUCTIONS": "AVX2",
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        # numpy/scipy's OpenBLAS (scikit-learn's fits) picks its kernels at load time too.
        "OPENBLAS_CORETYPE": "Haswell",
    },
}
THREAD_ENV = {
    "OMP_WAIT_POLICY": "PASSIVE",
    # numpy/scipy's OpenBLAS (scikit-learn's dense fits) on one thread: its own thread pool
    # next to scikit-learn's OpenMP one made every logistic-regression fit on embeddings
    # (the quick model's head, the label audit's folds) 2.4x slower than one thread
    # (3.9 s against 1.6 s for 4,400 tickets x 151 labels, same iterations). torch uses MKL.
    "OPENBLAS_NUM_THREADS": "1",
}


#: Freed blocks up to this size stay in the process (glibc malloc); 0 turns it off.
MALLOC_KEEP_ENV = "TICKETTUNE_MALLOC_KEEP_MB"
MALLOC_KEEP_MB = 32  # glibc's ceiling for its mmap threshold on 64-bit systems
#: Threads share this many malloc arenas (glibc's own MALLOC_ARENA_MAX, when set, wins).
MALLOC_ARENAS = 2
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8  # mallopt's numbers (malloc.h)


@dataclass(frozen=True)
class MallocSettings:
    """What ``configure_malloc`` set: megabytes kept for reuse and the arena cap (0: untouched)."""

    keep_mb: int = 0
    arenas: int = 0


def configure_malloc(environ: MutableMapping[str, str] | None = None) -> MallocSettings:
    """Keep freed activations for reuse, and let threads share two malloc arenas.

    *Keeping.* glibc hands every block above its mmap threshold (128 KB at start) back to the
    system when it is freed, so the next batch's activations of the same size come back as
    fresh pages, each zeroed on first touch. Reading the CLINC150 test file took 120,000 such
    page faults on its first pass and ~30,000 on every later one (about 300 with this setting),
    about a tenth of its time. A fixed threshold of ``MALLOC_KEEP_MB`` keeps those blocks;
    larger ones still go back.

    *Sharing arenas.* glibc gives each new thread its own arena (up to 8 per core), and each
    arena keeps its own freed memory: the training thread, the two reading threads and the
    fitting threads of a default run each held a few hundred MB that the others could not use.
    Capped at ``MALLOC_ARENAS``, a default run's sampled peak fell from 2,024 to 1,855 MB at the
    same speed (bench/RESULTS.md, session 13). No-op where the C library is not glibc.
    """
    env = os.environ if environ is None else environ
    try:
        megabytes = int(env.get(MALLOC_KEEP_ENV, MALLOC_KEEP_MB))
    except ValueError:
        megabytes = MALLOC_KEEP_MB
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (macOS, Windows, musl)
        return MallocSettings()
    keep_mb = 0
    if megabytes > 0 and mallopt(_M_MMAP_THRESHOLD, megabytes * 2**20):
        keep_mb = megabytes if mallopt(_M_TRIM_THRESHOLD, 2 * megabytes * 2**20) else 0
    arenas = 0
    if not env.get("MALLOC_ARENA_MAX") and mallopt(_M_ARENA_MAX, MALLOC_ARENAS):
        arenas = MALLOC_ARENAS
    return MallocSettings(keep_mb=keep_mb, arenas=arenas)


def cpu_isa_limit(environ: MutableMapping[str, str] | None = None) -> str | None:
    """``"avx2"`` when the vector units are limited to AVX2 (our switch or oneDNN's), else None."""
    env = os.environ if environ is None else environ
    ours = env.get(ISA_ENV, "").strip().lower()
    if ours and ours != "native":
        return ours
    onednn = env.get("ONEDNN_MAX_CPU_ISA", env.get("DNNL_MAX_CPU_ISA", "")).strip().upper()
    if onednn and not onednn.startswith(("AVX512", "AVX10", "ALL", "DEFAULT")):
        return onednn.lower()
    return None


def isa_environment(isa: str) -> dict[str, str]:
    """The variables that put a (child) process in ``isa`` mode; {} for ``native``."""
    isa = isa.strip().lower()
    if isa not in ISA_CHOICES:
        raise ValueError(f"Unknown instruction-set mode {isa!r}; use one of {ISA_CHOICES}.")
    if isa == "native":
        return {}
    return {ISA_ENV: isa, **ISA_LIBRARY_ENV[isa]}


def configure_process(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Set the thread and ISA variables this process needs, keeping any the user set.

    Returns what it set. Safe to call more than once.
    """
    env = os.environ if environ is None else environ
    wanted = dict(THREAD_ENV)
    limit = env.get(ISA_ENV, "").strip().lower()
    if limit in ISA_LIBRARY_ENV:
        wanted.update(ISA_LIBRARY_ENV[limit])
    applied = {}
    for key, value in wanted.items():
        if key not in env:
            env[key] = value
            applied[key] = value
    return applied


def compute_threads() -> int:
    """Threads for one compute job: the physical cores this process may use (at least 1).

    Hyper-threads share a core's vector units, so more threads than physical cores only add
    contention to matrix work.
    """
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        usable = os.cpu_count() or 1
    try:
        import psutil

        physical = psutil.cpu_count(logical=False) or usable
    except ImportError:  # psutil is a requirement; this only guards odd installs
        physical = usable
    logical = os.cpu_count() or usable
    per_core = max(1, logical // max(1, physical))
    return max(1, min(usable, max(1, usable // per_core)))


@functools.cache
def _omp_set_num_threads() -> Callable[[int], None] | None:
    """OpenMP's own ``omp_set_num_threads`` from the runtime torch loaded, or None."""
    import torch

    candidates = [None]  # the process's global symbols: Linux wheels load libgomp there
    libs = os.path.join(os.path.dirname(torch.__file__), "lib")
    candidates += sorted(glob.glob(os.path.join(libs, "lib*omp*")))
    for candidate in candidates:
        try:
            return ctypes.CDLL(candidate).omp_set_num_threads
        except (OSError, AttributeError):
            continue
    return None


def can_set_math_threads_per_thread() -> bool:
    """True when ``use_one_math_thread`` works here (torch on an OpenMP runtime we can reach)."""
    return _omp_set_num_threads() is not None


def use_one_math_thread() -> bool:
    """Make torch's operations in the calling thread run on one OpenMP thread; others keep theirs.

    ``torch.set_num_threads`` cannot do this: besides the calling thread it changes the count
    every thread started later begins with (a training job started afterwards would run on one
    core). OpenMP's own setting is per thread. torch's lazy per-thread set-up runs first, so it
    does not overwrite the setting on the thread's first operation. False where the OpenMP
    runtime could not be found; the thread then keeps torch's count.
    """
    import torch

    setter = _omp_set_num_threads()
    if setter is None:
        return False
    torch.get_num_threads()  # runs torch's per-thread initialisation now
    setter(1)
    return torch.get_num_threads() == 1


def in_background(work: Callable[[], T], *, name: str) -> Future:
    """Run ``work`` in a daemon thread of its own; its result, or the exception it raised,
    lands in the returned Future for the caller's thread (``result()`` raises it there).

    For one core's work beside the run's own thread (the word-count baseline, the quick head);
    daemon, so an abandoned one never holds the process open.
    """
    future: Future = Future()

    def run() -> None:
        try:
            result = work()
        except BaseException as exc:  # handed over, raised by future.result()
            future.set_exception(exc)
        else:
            future.set_result(result)

    threading.Thread(target=run, name=name, daemon=True).start()
    return future
