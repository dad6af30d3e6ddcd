"""Small line charts drawn with PIL (per-frame metric curves of one clip)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

_COLOURS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14)]


def _fmt(v: float) -> str:
    return f"{v:.3g}"


def plot_series(series: Mapping[str, Sequence[float]], title: str, path: str | Path, *, width: int = 900) -> Path:
    """One panel per series (own y scale, x = frame index), stacked vertically, saved as a PNG."""
    font = ImageFont.load_default()
    panel_h, top, left, right, gap = 120, 28, 70, 20, 34
    names = [n for n in series if len(series[n]) > 0]
    height = top + len(names) * (panel_h + gap) + 10
    img = Image.new("RGB", (width, max(height, top + 40)), "white")
    draw = ImageDraw.Draw(img)
    draw.text((left, 8), title, fill="black", font=font)
    for k, name in enumerate(names):
        values = [float(v) for v in series[name]]
        y0 = top + k * (panel_h + gap) + 14
        x0, x1, y1 = left, width - right, y0 + panel_h
        lo, hi = min(values), max(values)
        if hi - lo < 1e-12:
            lo, hi = lo - 0.5, hi + 0.5
        mean = sum(values) / len(values)
        draw.text((x0, y0 - 13), f"{name}   mean {_fmt(mean)}", fill=_COLOURS[k % len(_COLOURS)], font=font)
        draw.rectangle((x0, y0, x1, y1), outline=(150, 150, 150))
        draw.text((4, y0 - 4), _fmt(hi), fill="black", font=font)
        draw.text((4, y1 - 8), _fmt(lo), fill="black", font=font)
        n = len(values)
        draw.text((x0, y1 + 3), "0", fill="black", font=font)
        draw.text((x1 - 24, y1 + 3), str(n - 1), fill="black", font=font)

        def xy(i: int, v: float, x0=x0, x1=x1, y0=y0, y1=y1, lo=lo, hi=hi, n=n) -> tuple[float, float]:
            x = x0 + (x1 - x0) * (i / (n - 1) if n > 1 else 0.5)
            return x, y1 - (y1 - y0) * (v - lo) / (hi - lo)

        ym = xy(0, mean)[1]
        draw.line((x0, ym, x1, ym), fill=(210, 210, 210))
        points = [xy(i, v) for i, v in enumerate(values)]
        if len(points) > 1:
            draw.line(points, fill=_COLOURS[k % len(_COLOURS)], width=2)
        for x, y in points if len(points) <= 60 else []:
            draw.ellipse((x - 2, y - 2, x + 2, y + 2), fill=_COLOURS[k % len(_COLOURS)])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path


def plot_curves(series: Mapping[str, Sequence[float]], title: str, path: str | Path, *, width: int = 900,
                height: int = 320, marks: Sequence[int] = (), x_step: float = 1, zero: bool = False) -> Path:
    """All series as curves in one panel (shared y scale, x = index * `x_step`, `marks` as vertical lines at
    indices, e.g. keyframes), with a legend; NaN values are gaps; `zero` puts 0 on the y scale. Saved as a PNG."""
    font = ImageFont.load_default()
    top, left, right, bottom = 28, 70, 20, 40
    names = [n for n in series if len(series[n]) > 0]
    values = [float(v) for n in names for v in series[n] if math.isfinite(float(v))]
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    lo = min(lo, 0.0) if zero else lo
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5, hi + 0.5
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    draw.text((left, 8), title, fill="black", font=font)
    x0, x1, y0, y1 = left, width - right, top, height - bottom
    draw.rectangle((x0, y0, x1, y1), outline=(150, 150, 150))
    draw.text((4, y0 - 4), _fmt(hi), fill="black", font=font)
    draw.text((4, y1 - 8), _fmt(lo), fill="black", font=font)
    n = max((len(series[k]) for k in names), default=1)

    def xy(i: int, v: float) -> tuple[float, float]:
        return x0 + (x1 - x0) * (i / (n - 1) if n > 1 else 0.5), y1 - (y1 - y0) * (v - lo) / (hi - lo)

    for m in marks:
        x = xy(m, lo)[0]
        draw.line((x, y0, x, y1), fill=(200, 200, 200))
    for k, name in enumerate(names):
        colour = _COLOURS[k % len(_COLOURS)]
        run: list[tuple[float, float]] = []
        for i, v in [*enumerate(series[name]), (-1, math.nan)]:  # a NaN ends a run of points
            if math.isfinite(float(v)):
                run.append(xy(i, float(v)))
                continue
            if len(run) > 1:
                draw.line(run, fill=colour, width=2)
            run = []
        finite = [float(v) for v in series[name] if math.isfinite(float(v))]
        mean = sum(finite) / len(finite) if finite else math.nan
        draw.text((x0 + 8 + 190 * k, y1 + 8), f"{name} (mean {_fmt(mean)})", fill=colour, font=font)
    draw.text((x1 - 40, y1 + 24), _fmt((n - 1) * x_step), fill="black", font=font)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path
