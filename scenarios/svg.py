"""A tiny inline-SVG scatter for the sweep report (the run report draws with uPlot)."""

from __future__ import annotations

import html

import numpy as np

PAD = 45
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f")


def _scale(values: np.ndarray, lo: float, hi: float, size: float, flip: bool) -> np.ndarray:
    span = hi - lo or 1.0
    frac = (values - lo) / span
    return PAD + (1 - frac if flip else frac) * (size - 2 * PAD)


def scatter(title: str, x_label: str, y_label: str,
            points: list[tuple[float, float, str, str]]) -> str:
    """Labelled points (x, y, label, kind): kind 'front' (filled), 'dominated' (hollow) or
    'reference' (a square), each with a hover title."""
    size = 420
    xs = np.array([p[0] for p in points] or [0.0])
    ys = np.array([p[1] for p in points] or [0.0])
    x_lo, x_hi, y_lo, y_hi = float(xs.min()), float(xs.max()), float(ys.min()), float(ys.max())
    px, py = _scale(xs, x_lo, x_hi, size, False), _scale(ys, y_lo, y_hi, size, True)
    body = [f"<text x='{PAD}' y='15'>{html.escape(title)}</text>",
            f"<rect x='{PAD}' y='{PAD}' width='{size - 2 * PAD}' height='{size - 2 * PAD}' fill='none' stroke='#ccc'/>",
            f"<text x='2' y='{PAD + 4}'>{y_hi:.4g}</text><text x='2' y='{size - PAD}'>{y_lo:.4g}</text>",
            f"<text x='{PAD}' y='{size - PAD + 14}'>{x_lo:.4g}</text>"
            f"<text x='{size - PAD - 40}' y='{size - PAD + 14}'>{x_hi:.4g}</text>",
            f"<text x='{PAD + 60}' y='{size - 8}'>{html.escape(x_label)}</text>",
            f"<text x='{PAD}' y='{PAD - 6}'>{html.escape(y_label)}</text>"]
    for (x, y, label, kind), a, b in zip(points, px, py, strict=True):
        tip = f"<title>{html.escape(label)}: {y:,.0f} / {x:,.4g}</title>"
        if kind == "reference":
            body.append(f"<rect x='{a - 5:.1f}' y='{b - 5:.1f}' width='10' height='10' fill='#7f7f7f'>{tip}</rect>"
                        f"<text x='{a + 8:.1f}' y='{b + 4:.1f}'>{html.escape(label)}</text>")
        else:
            fill = COLOURS[0] if kind == "front" else "none"
            body.append(f"<circle cx='{a:.1f}' cy='{b:.1f}' r='5' fill='{fill}' stroke='{COLOURS[0]}'>{tip}</circle>"
                        f"<text x='{a + 7:.1f}' y='{b - 6:.1f}' font-size='9'>{html.escape(label)}</text>")
    return f"<svg width='{size}' height='{size}' font-size='11'>{''.join(body)}</svg>"
