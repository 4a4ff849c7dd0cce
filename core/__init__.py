"""TicketTune engine: data, label schemes, training, jobs, evaluation, inference, run storage.

Nothing in this package imports streamlit; the app in ``pages/`` is a thin view over it.
"""

# Before any submodule imports torch: passive OpenMP waiting, the optional AVX2 limit, and
# malloc keeping freed activations in two shared arenas (core/threads.py says why). Every
# entry point (app.py, python -m core, bench) imports core first.
from core.threads import configure_malloc as _configure_malloc
from core.threads import configure_process as _configure_process

_configure_process()
_configure_malloc()
