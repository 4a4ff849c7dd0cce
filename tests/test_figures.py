"""The figure builders return figures with the traces the pages rely on."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from core.inference import WordContribution
from ui import figures
from ui.html import highlight_words

LABELS = ["billing", "login", "shipping"]
CONFUSION = np.array([[5, 1, 0], [2, 7, 0], [0, 0, 4]])


def test_confusion_figure_has_heatmap_and_clickable_overlay():
    fig = figures.confusion_figure(CONFUSION, LABELS)
    heatmap, overlay = fig.data
    assert isinstance(heatmap, go.Heatmap) and isinstance(overlay, go.Scatter)
    assert np.array_equal(np.asarray(heatmap.z), CONFUSION)
    assert overlay.marker.symbol == "square" and overlay.marker.opacity == 0
    assert overlay.selected.marker.opacity == 0 and overlay.unselected.marker.opacity == 0
    assert overlay.hoverinfo != "skip"  # plotly neither hovers nor clicks a skipped point
    assert heatmap.hoverinfo == "skip"
    assert fig.layout.hoverdistance == -1  # a click anywhere in a cell picks that cell's point
    cells = [tuple(c) for c in overlay.customdata]
    assert len(cells) == 9
    for (true, predicted), x, y in zip(cells, overlay.x, overlay.y, strict=True):
        assert (y, x) == (true, predicted)
    assert ("login", "billing") in cells


def test_confusion_figure_normalised_rows_and_subset():
    fig = figures.confusion_figure(CONFUSION, LABELS, normalize=True, only=["billing", "login"])
    z = np.asarray(fig.data[0].z)
    assert z.shape == (2, 2)
    assert np.allclose(z.sum(axis=1), 1.0)
    assert {tuple(c) for c in fig.data[1].customdata} == {
        ("billing", "billing"),
        ("billing", "login"),
        ("login", "billing"),
        ("login", "login"),
    }


def test_selected_cell_is_outlined():
    fig = figures.confusion_figure(CONFUSION, LABELS, selected=("login", "billing"))
    (shape,) = fig.layout.shapes
    assert (shape.x0, shape.y0) == (-0.5, 0.5)


def test_most_confused_labels():
    assert figures.most_confused_labels(CONFUSION, LABELS, 2) == ["billing", "login"]


def test_other_figures_have_data():
    assert figures.label_counts_figure({"a": 3, "b": 5}).data[0].y == ("b", "a")
    assert len(figures.length_histogram([3, 4, 10]).data[0].x) == 3
    assert figures.loss_figure([(1, 0.9), (2, 0.5)]).data[0].y == (0.9, 0.5)
    val = figures.validation_figure([(10, {"macro_f1": 0.5}), (20, {"accuracy": 0.1})])
    assert val.data[0].y == (50.0,)
    top = figures.top_labels_figure([("billing", 0.8), ("login", 0.15)])
    assert top.data[0].x == (80.0, 15.0)
    curve = pd.DataFrame(
        {"threshold": [0.0, 0.5, 0.9], "coverage": [1.0, 0.8, 0.4], "accuracy": [0.8, 0.9, 1.0]}
    )
    fig = figures.coverage_figure(curve, threshold=0.5)
    assert len(fig.data) == 2 and fig.data[1].x == (80.0,)


def test_highlighted_words_are_escaped_and_coloured():
    text = "Refund <script>alert(1)</script> now"
    words = [
        WordContribution("Refund", 0, 6, 0.4),
        WordContribution("<script>alert(1)</script>", 7, 32, -0.2),
        WordContribution("now", 33, 36, 0.0),
    ]
    html = highlight_words(text, words)
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "rgba(22, 163, 74" in html and "rgba(220, 38, 38" in html  # for and against
    assert html.count("<span") == 2  # a word with no influence stays plain


def test_labels_from_the_file_are_escaped_in_charts_but_clicks_return_them_as_they_are():
    """Plotly draws <a>/<b> tags in tick text; a label such as '<a href=…>' must show as text."""
    evil = '<a href="http://evil">x</a>'
    labels = [evil, "billing"]
    fig = figures.confusion_figure(np.array([[3, 1], [0, 2]]), labels)
    heatmap, points = fig.data[0], fig.data[1]
    assert evil not in list(heatmap.x) and '&lt;a href="http://evil"&gt;x&lt;/a&gt;' in heatmap.x
    assert evil not in list(points.x) + list(points.y)
    assert [evil, evil] in [list(c) for c in points.customdata]
    assert evil not in list(figures.label_counts_figure({evil: 3, "billing": 1}).data[0].y)
    assert evil not in list(figures.top_labels_figure([(evil, 0.9), ("billing", 0.1)]).data[0].y)
