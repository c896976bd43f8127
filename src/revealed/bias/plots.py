"""Plots of position curves: PNG with matplotlib (offline; no browser) and self-contained HTML
with Plotly's bundled JavaScript (no CDN)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["Curve", "plot_curves"]

#: one curve: a label, positions, values, and optionally (low, high) interval bounds
Curve = Mapping[str, Any]


def _png(curves: Sequence[Curve], title: str, ylabel: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display here or on servers
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7.5, 4.5), dpi=110)
    for curve in curves:
        x, y = list(curve["positions"]), list(curve["values"])
        style = "--" if curve.get("dashed") else "-"
        axes.plot(x, y, style, marker="o", markersize=3, label=curve["label"])
        if curve.get("low") is not None and curve.get("high") is not None:
            axes.fill_between(x, curve["low"], curve["high"], alpha=0.2)
    axes.set_xlabel("position (0 = top)")
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def _html(curves: Sequence[Curve], title: str, ylabel: str, path: Path) -> None:
    import plotly.graph_objects as go

    figure = go.Figure()
    for curve in curves:
        x, y = list(curve["positions"]), list(curve["values"])
        error = None
        if curve.get("low") is not None and curve.get("high") is not None:
            error = {
                "type": "data",
                "symmetric": False,
                "array": [h - v for h, v in zip(curve["high"], y, strict=True)],
                "arrayminus": [v - lo for lo, v in zip(curve["low"], y, strict=True)],
            }
        line = {"dash": "dash"} if curve.get("dashed") else {}
        figure.add_trace(
            go.Scatter(x=x, y=y, mode="lines+markers", name=str(curve["label"]), error_y=error, line=line)
        )
    figure.update_layout(title=title, xaxis_title="position (0 = top)", yaxis_title=ylabel)
    figure.write_html(str(path), include_plotlyjs=True, full_html=True)


def plot_curves(curves: Sequence[Curve], *, title: str, ylabel: str, out: Path, name: str) -> list[Path]:
    """Write ``<out>/<name>.png`` and ``<out>/<name>.html``; returns both paths."""
    out.mkdir(parents=True, exist_ok=True)
    png, html = out / f"{name}.png", out / f"{name}.html"
    _png(curves, title, ylabel, png)
    _html(curves, title, ylabel, html)
    return [png, html]
