"""bench/common.py: the helpers every benchmark measures with."""

from __future__ import annotations

import sys

import pytest

from bench.common import peak_rss_mb, run_child

_CHILD = """
import json
block = bytearray(40 * 2**20)
block[::4096] = b"1" * len(block[::4096])  # touch every page: ~40 MB resident
print("progress line")
print(json.dumps({"ok": True}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux's exec semantics")
def test_a_childs_peak_memory_is_its_own_not_the_benchmarks():
    """Linux copies the high-water mark of the process a child is started from into the child's
    ru_maxrss; run_child must report the child's own peak even when this process is far larger."""
    ballast = bytearray(300 * 2**20)
    ballast[::4096] = b"1" * len(ballast[::4096])
    assert peak_rss_mb() > 300
    child = run_child(["-c", _CHILD], what="a 40 MB child")
    assert child.payload == {"ok": True}  # the last JSON line, not the launcher's report
    assert 40 < child.peak_rss_mb < 150, child.peak_rss_mb
    del ballast


def test_a_failing_child_says_how_it_failed():
    with pytest.raises(RuntimeError, match=r"(?s)exit code 3\).*boom"):
        run_child(["-c", "import sys; print('boom'); sys.exit(3)"], what="a failing child")
