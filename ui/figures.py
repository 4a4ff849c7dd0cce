"""Plotly figures for the app: pure builders (data in, ``go.Figure`` out), no Streamlit.

The confusion matrix is a heatmap for the colours plus an invisible scatter of one square
marker per cell: Streamlit returns no selection for a click on a heatmap, but does for a
scatter point, and each point's ``customdata`` is the cell's ``[true label, predicted label]``.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

ACCENT = "#2563eb"
GOOD = "#16a34a"
MUTED = "#94a3b8"
_MARGIN = {"l": 10, "r": 10, "t": 40, "b": 10}
CLICK_MARKER_PX = 8  # small: big markers overlap neighbouring cells and steal their clicks


CHART_HEIGHT = 320


def shown_label(label: object) -> str:
    """A label as plotly may draw it: plotly renders some HTML (links, bold) in tick and hover
    text, and labels come from the analyst's file, so ``<`` and ``&`` are escaped."""
    return html.escape(str(label), quote=False)


def _layout(fig: go.Figure, title: str, height: int = CHART_HEIGHT) -> go.Figure:
    fig.update_layout(title={"text": title, "x": 0}, height=height, margin=_MARGIN)
    return fig


def _bar_height(n_bars: int) -> int:
    return int(min(1200, max(220, 60 + 22 * n_bars)))


def label_counts_figure(class_counts: Mapping[str, int], title: str = "Tickets per label"):
    """Horizontal bars, the largest label on top."""
    items = sorted(class_counts.items(), key=lambda item: (-item[1], item[0]))
    labels = [shown_label(label) for label, _ in items]
    counts = [int(count) for _, count in items]
    fig = go.Figure(
        go.Bar(
            x=counts,
            y=labels,
            orientation="h",
            marker_color=ACCENT,
            hovertemplate="%{y}: %{x} tickets<extra></extra>",
        )
    )
    fig.update_yaxes(type="category", autorange="reversed")
    fig.update_xaxes(title="tickets")
    return _layout(fig, title, max(CHART_HEIGHT, _bar_height(len(labels))))


def length_histogram(lengths: Sequence[int], unit: str = "words", title: str | None = None):
    """Distribution of ticket lengths (words or tokens)."""
    fig = go.Figure(
        go.Histogram(
            x=list(lengths),
            nbinsx=40,
            marker_color=ACCENT,
            hovertemplate=f"%{{x}} {unit}: %{{y}} tickets<extra></extra>",
        )
    )
    fig.update_xaxes(title=f"ticket length ({unit})")
    fig.update_yaxes(title="tickets")
    return _layout(fig, title or f"How long tickets are ({unit})")


def most_confused_labels(confusion: np.ndarray, labels: Sequence[str], n: int) -> list[str]:
    """The ``n`` labels involved in the most mistakes (as true or predicted), in label order."""
    matrix = np.asarray(confusion, dtype=float)
    errors = matrix.sum(axis=0) + matrix.sum(axis=1) - 2 * np.diag(matrix)
    top = sorted(np.argsort(-errors, kind="stable")[: max(1, n)])
    return [str(labels[i]) for i in top]


def _subset(confusion: np.ndarray, labels: Sequence[str], only: Sequence[str] | None):
    labels = [str(label) for label in labels]
    if not only:
        return np.asarray(confusion), labels
    keep = [i for i, label in enumerate(labels) if label in set(map(str, only))]
    return np.asarray(confusion)[np.ix_(keep, keep)], [labels[i] for i in keep]


def confusion_figure(
    confusion: np.ndarray,
    labels: Sequence[str],
    *,
    normalize: bool = False,
    only: Sequence[str] | None = None,
    selected: tuple[str, str] | None = None,
) -> go.Figure:
    """Rows = true label, columns = predicted label; a click selects a cell.

    ``normalize`` shows each row as shares of that label's tickets; ``only`` keeps a subset of
    labels (e.g. the most confused); ``selected`` outlines one (true, predicted) cell.
    """
    counts, names = _subset(confusion, labels, only)
    counts = counts.astype(int)
    totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)
    z = shares if normalize else counts
    shown = [shown_label(name) for name in names]
    fig = go.Figure(_heatmap(z, counts, shares, shown, normalize))
    fig.add_trace(_click_targets(names, shown, counts, shares))
    if selected is not None and selected[0] in names and selected[1] in names:
        _outline(fig, names.index(selected[1]), names.index(selected[0]))
    n = len(names)
    row_px = 40 if n <= 12 else 28 if n <= 25 else 18
    height = min(1400, 180 + n * row_px)
    fig.update_xaxes(type="category", title="predicted as", side="bottom", tickangle=-45)
    fig.update_yaxes(type="category", title="true label", autorange="reversed")
    # hoverdistance -1: the point nearest to the mouse is hovered (so clicked) wherever the mouse
    # is; with one point in the middle of each cell, that is the cell under the mouse.
    fig.update_layout(showlegend=False, clickmode="event+select", dragmode=False, hoverdistance=-1)
    return _layout(fig, "Which labels the model mixes up (click a square)", height)


def _heatmap(z, counts, shares, names, normalize: bool) -> go.Heatmap:
    cell_text = np.where(counts > 0, (shares * 100).round(0).astype(int).astype(str) + "%", "")
    if not normalize:
        cell_text = np.where(counts > 0, counts.astype(str), "")
    return go.Heatmap(
        z=z,
        x=names,
        y=names,
        text=cell_text if len(names) <= 30 else None,
        texttemplate="%{text}" if len(names) <= 30 else None,
        colorscale="Blues",
        showscale=False,
        hoverinfo="skip",  # the overlay shows the hover (a skipped point cannot be clicked)
        xgap=1,
        ygap=1,
    )


def _click_targets(
    names: Sequence[str], shown: Sequence[str], counts: np.ndarray, shares: np.ndarray
) -> go.Scatter:
    """One invisible point in the middle of each cell; its customdata is [true, predicted]
    (the labels as they are; ``shown`` are the escaped names on the axes).

    The points must stay hoverable: plotly neither hovers nor clicks a point whose hoverinfo
    is "skip", so this trace, not the heatmap, carries the hover text.
    """
    true = [t for t in names for _ in names]
    predicted = [p for _ in names for p in names]
    true_shown = [t for t in shown for _ in shown]
    predicted_shown = [p for _ in shown for p in shown]
    hover = [
        f"{n} tickets ({share:.0%} of this label)"
        for n, share in zip(counts.ravel(), shares.ravel(), strict=True)
    ]
    invisible = {"marker": {"opacity": 0}}
    return go.Scatter(
        x=predicted_shown,
        y=true_shown,
        mode="markers",
        marker={"symbol": "square", "size": CLICK_MARKER_PX, "opacity": 0, "color": MUTED},
        selected=invisible,
        unselected=invisible,
        customdata=[[t, p] for t, p in zip(true, predicted, strict=True)],
        text=hover,
        hovertemplate="true: %{y}<br>predicted: %{x}<br>%{text}<extra></extra>",
        name="cells",
    )


def _outline(fig: go.Figure, column: int, row: int) -> None:
    fig.add_shape(
        type="rect",
        x0=column - 0.5,
        x1=column + 0.5,
        y0=row - 0.5,
        y1=row + 0.5,
        line={"color": "#dc2626", "width": 3},
    )


def loss_figure(loss_history: Sequence[tuple[int, float]]) -> go.Figure:
    """Training loss per step (lower is better)."""
    steps = [int(step) for step, _ in loss_history]
    values = [float(value) for _, value in loss_history]
    fig = go.Figure(
        go.Scatter(
            x=steps,
            y=values,
            mode="lines+markers",
            line_color=ACCENT,
            name="loss",
            hovertemplate="step %{x}: loss %{y:.3f}<extra></extra>",
        )
    )
    _step_axis(fig, steps)
    fig.update_yaxes(title="loss", rangemode="tozero")
    return _layout(fig, "Training loss (should go down)", 280)


def _step_axis(fig: go.Figure, steps: Sequence[int]) -> None:
    """A training-step axis from 0 whose ticks are whole steps (plotly would show 0.5 early on)."""
    few = max(steps, default=0) <= 10
    fig.update_xaxes(title="training step", rangemode="tozero", dtick=1 if few else None)


def validation_figure(
    eval_history: Sequence[tuple[int, Mapping[str, float]]], metric: str = "macro_f1"
) -> go.Figure:
    """A validation metric at each check during training (higher is better)."""
    points = [(int(step), m.get(metric)) for step, m in eval_history if m.get(metric) is not None]
    fig = go.Figure(
        go.Scatter(
            x=[step for step, _ in points],
            y=[float(value) * 100 for _, value in points],
            mode="lines+markers",
            line_color=GOOD,
            name=metric,
            hovertemplate="step %{x}: %{y:.1f}<extra></extra>",
        )
    )
    _step_axis(fig, [step for step, _ in points])
    fig.update_yaxes(title="macro-F1 (%)", range=[0, 100])
    return _layout(fig, "Score on the validation tickets (should go up)", 280)


def top_labels_figure(top: Sequence[tuple[str, float]]) -> go.Figure:
    """How sure the model is about each of its top labels, in percent."""
    labels = [shown_label(label) for label, _ in top]
    percents = [float(p) * 100 for _, p in top]
    fig = go.Figure(
        go.Bar(
            x=percents,
            y=labels,
            orientation="h",
            marker_color=[ACCENT] + [MUTED] * (len(labels) - 1),
            text=[f"{p:.0f}%" for p in percents],
            textposition="auto",
            hovertemplate="%{y}: %{x:.1f}%<extra></extra>",
        )
    )
    fig.update_yaxes(type="category", autorange="reversed")
    fig.update_xaxes(title="how sure the model is (%)", range=[0, 100])
    return _layout(fig, "Top labels", _bar_height(len(labels)))


def coverage_figure(curve: pd.DataFrame, threshold: float | None = None) -> go.Figure:
    """Accuracy on the automated tickets against the share automated, one point per threshold."""
    fig = go.Figure(
        go.Scatter(
            x=curve["coverage"] * 100,
            y=curve["accuracy"] * 100,
            customdata=curve["threshold"] * 100,
            mode="lines",
            line_color=ACCENT,
            name="all thresholds",
            hovertemplate="sure ≥ %{customdata:.0f}%: automate %{x:.0f}% "
            "at %{y:.1f}% accuracy<extra></extra>",
        )
    )
    if threshold is not None and len(curve):
        row = curve.iloc[int((curve["threshold"] - threshold).abs().to_numpy().argmin())]
        fig.add_trace(
            go.Scatter(
                x=[row["coverage"] * 100],
                y=[row["accuracy"] * 100],
                mode="markers",
                marker={"size": 14, "color": "#dc2626"},
                name="your choice",
                hovertemplate="your choice: automate %{x:.0f}% at %{y:.1f}%<extra></extra>",
            )
        )
    fig.update_xaxes(title="tickets handled automatically (%)", range=[0, 101])
    fig.update_yaxes(title="accuracy on those (%)")
    fig.update_layout(showlegend=False)
    return _layout(fig, "More automation, fewer correct answers", 340)
