"""The Use page's scoring-service box shows the command and a curl call for the chosen run."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest


def render_hint(run_dir: str) -> None:
    from core.runs import Run
    from ui.serve_hint import show_serve_hint

    show_serve_hint(Run(run_dir))


def test_the_box_shows_the_serve_command_and_a_curl_call_with_the_runs_columns(trained_run):
    at = AppTest.from_function(render_hint, args=(str(trained_run.path),), default_timeout=30)
    at.run()
    assert not at.exception
    code = [block.value for block in at.code]
    assert code[0] == f"python -m core serve {trained_run.path} --port 8000"
    assert "curl -s http://127.0.0.1:8000/predict" in code[1]
    assert '"ticket": "<ticket>"' in code[1]  # the run's text column
