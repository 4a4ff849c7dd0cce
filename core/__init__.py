"""TicketTune engine: data, label schemes, training, jobs, evaluation, inference, run storage.

Nothing in this package imports streamlit; the app in ``pages/`` is a thin view over it.
"""
