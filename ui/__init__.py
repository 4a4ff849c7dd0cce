"""Streamlit-side helpers shared by the pages: the job registry, session state, widgets.

Everything that does not need Streamlit lives in ``core/``; modules here may call ``st.*``,
except ``ui.html`` which only builds escaped HTML strings.
"""
