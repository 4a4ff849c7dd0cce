"""TicketTune engine: data, label schemes, training, jobs, evaluation, inference, run storage.

Nothing in this package imports streamlit; the app in ``pages/`` is a thin view over it.
"""

# Before any submodule imports torch: passive OpenMP waiting and the optional AVX2 limit
# (core/threads.py says why). Every entry point (app.py, python -m core, bench) imports core first.
from core.threads import configure_process as _configure_process

_configure_process()
