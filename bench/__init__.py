"""Benchmarks of TicketTune's engine (figures: bench/RESULTS.md). Run them with ``python -m``.

Importing the package sets the environment every benchmark needs, before transformers is
imported (``python -m bench.x`` imports this package first): the Rust tokenizer's own thread
pool must not compete with torch for the cores, and a benchmark must never wait on the network.
"""

import os

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

# Thread behaviour and the optional TICKETTUNE_CPU_ISA=avx2 limit, before torch loads (importing
# core does this too; explicit here because every bench child process starts in this package).
from core.threads import configure_process

configure_process()
