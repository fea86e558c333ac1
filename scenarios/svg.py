"""Tiny inline-SVG charts, so a report opens offline with no plotting library."""

from __future__ import annotations

import html

import numpy as np

W, H, PAD = 1000, 220, 45
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f")


def _scale(values: np.ndarray, lo: float, hi: float, size: float, flip: bool) -> np.ndarray:
    span = hi - lo or 1.0
    frac = (values - lo) / span
    return PAD + (1 - frac if flip else frac) * (size - 2 * PAD)


def lines(title: str, x: np.ndarray, series: dict[str, np.ndarray],
          hlines: list[tuple[float, str]] | None = None) -> str:
    hlines = hlines or []
    ys = np.concatenate([*series.values(), np.array([v for v, _ in hlines])])
    lo, hi = float(np.nanmin(ys)), float(np.nanmax(ys))
    xs = _scale(x, float(x[0]), float(x[-1]), W, flip=False)
    body = [_frame(title, lo, hi, float(x[-1] - x[0]))]
    for y, colour in zip(series.values(), COLOURS, strict=False):
        pts = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(xs, _scale(y, lo, hi, H, True), strict=True))
        body.append(f"<polyline fill='none' stroke='{colour}' stroke-width='1.2' points='{pts}'/>")
    for i, (name, _) in enumerate(series.items()):
        body.append(f"<text x='{PAD + 120 * i}' y='{H - 8}' fill='{COLOURS[i % 8]}'>{html.escape(name)}</text>")
    for value, label in hlines:
        yh = float(_scale(np.array([value]), lo, hi, H, True)[0])
        body.append(f"<line x1='{PAD}' x2='{W - PAD}' y1='{yh:.1f}' y2='{yh:.1f}' stroke='#999' "
                    f"stroke-dasharray='4'/><text x='{W - PAD + 2}' y='{yh:.1f}'>{html.escape(label)}</text>")
    return f"<svg width='{W}' height='{H}' font-size='11'>{''.join(body)}</svg>"


def timeline(title: str, x: np.ndarray, names: list[str], on: np.ndarray) -> str:
    row_h = 14
    height = PAD + row_h * len(names) + 10
    xs = _scale(x, float(x[0]), float(x[-1]), W, flip=False)
    step = float(xs[1] - xs[0]) if len(xs) > 1 else 1.0
    body = [f"<text x='{PAD}' y='15'>{html.escape(title)}</text>"]
    for j, name in enumerate(names):
        y = PAD + j * row_h
        body.append(f"<text x='2' y='{y + 10}'>{html.escape(name)}</text>")
        for k in np.flatnonzero(on[:, j]):
            body.append(f"<rect x='{xs[k] - step:.1f}' y='{y}' width='{step:.2f}' height='{row_h - 3}' "
                        f"fill='{COLOURS[j % 8]}'/>")
    return f"<svg width='{W}' height='{height}' font-size='11'>{''.join(body)}</svg>"


def _frame(title: str, lo: float, hi: float, hours: float) -> str:
    return (f"<text x='{PAD}' y='15'>{html.escape(title)}</text>"
            f"<rect x='{PAD}' y='{PAD}' width='{W - 2 * PAD}' height='{H - 2 * PAD}' fill='none' stroke='#ccc'/>"
            f"<text x='2' y='{PAD + 4}'>{hi:.4g}</text><text x='2' y='{H - PAD}'>{lo:.4g}</text>"
            f"<text x='{W - PAD - 60}' y='{H - PAD + 14}'>{hours:.0f} h</text>")


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
