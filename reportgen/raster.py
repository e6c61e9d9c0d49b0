"""Small charts drawn straight to pixels: a filled-step histogram with axes, ticks, title and legend.

A report of a deep model draws hundreds of weight histograms (EfficientNetB7 at
``--weights none``: 272). Matplotlib lays out and rasterises every text of every
one of them again -- 25 to 40 ms a chart, most of it text layout -- though only
the bars, the title and the tick labels change. Here a chart is a few filled
polygons and a dozen strings drawn by Pillow with the font Matplotlib uses
(DejaVu Sans) and Matplotlib's own tick choice and tick labels, at the resolution
Matplotlib drew them at, on a palette of their own colours: about 3 ms a chart. A
sharper chart costs the PDF more than it saves here: WeasyPrint takes 7 ms to place
one at 100 px an inch, 12 at 150 and 19 at 200 (docs/benchmarks.md).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

SCALE = (
    100  # pixels per inch, as Matplotlib drew them: WeasyPrint places a chart in 7 ms, 12 at 150, 19 at 200
)


@functools.lru_cache(maxsize=None)
def font(points: float) -> Any:
    """DejaVu Sans at ``points`` (Matplotlib's own default font, from its data folder)."""
    import os

    import matplotlib
    from PIL import ImageFont

    path = os.path.join(matplotlib.get_data_path(), "fonts", "ttf", "DejaVuSans.ttf")
    return ImageFont.truetype(path, size=max(1, round(points * SCALE / 72)))


def ticks(
    lo: float, hi: float, length: float, points: float = 7, vertical: bool = False
) -> tuple[np.ndarray, list[str], str]:
    """(tick values within [lo, hi], their labels, the axis offset text): what a Matplotlib axis
    ``length`` inches long would show for this range, with ``points``-size labels (its
    ``AutoLocator`` given the tick count its axis would allow, and its ``ScalarFormatter``)."""
    from matplotlib.ticker import MaxNLocator, ScalarFormatter

    # Axis.get_tick_space: the axis length over 3 label heights (x) or 2 (y); MaxNLocator's "auto" caps it at
    # 9.
    space = max(1, min(9, int(np.floor(length * 72 / (points * (2 if vertical else 3))))))
    values = MaxNLocator(nbins=space, steps=[1, 2, 2.5, 5, 10]).tick_values(lo, hi)
    tol = 1e-10 * abs(hi - lo)
    values = values[(values >= lo - tol) & (values <= hi + tol)]
    fmt = ScalarFormatter()
    fmt.create_dummy_axis()
    fmt.axis.set_view_interval(lo, hi)
    fmt.axis.set_data_interval(lo, hi)
    labels = fmt.format_ticks(list(values))
    return values, labels, fmt.get_offset()


@dataclass(frozen=True)
class Series:
    """One filled step series of a histogram: bin counts on shared edges, its colour and legend text."""

    counts: np.ndarray
    colour: str
    label: str
    alpha: float = 0.55


def _rgb(colour: str) -> tuple[int, int, int]:
    c = colour.lstrip("#")
    return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)


def _blend(colour: tuple[int, ...], alpha: float, under: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(round(alpha * c + (1 - alpha) * u) for c, u in zip(colour, under))


def _palette(series: Sequence[Series]) -> Any:
    """A palette image: white and every stack of the series' fills over it, each with 16 steps to black."""
    from PIL import Image

    grounds = [(255, 255, 255)]
    for k in range(len(series)):  # each fill on white, and every later fill over the ones before it
        grounds += [_blend(_rgb(series[k].colour), series[k].alpha, g) for g in list(grounds)]
    colours = [_blend((0, 0, 0), step / 15, g) for g in grounds[:16] for step in range(16)]
    flat = [v for c in colours for v in c]
    pal = Image.new("P", (1, 1))
    pal.putpalette(flat + [0] * (768 - len(flat)))
    return pal


def histogram_png(
    edges: np.ndarray,
    series: Sequence[Series],
    title: str,
    xlabel: str,
    ylabel: str,
    xlim: tuple[float, float],
    ylim: tuple[float, float],
    legend_at: str = "clear",
    size: tuple[float, float] = (4.2, 2.3),
    margins: tuple[float, float, float, float] = (0.62, 0.1, 0.45, 0.25),
) -> bytes:
    """PNG bytes of a histogram laid out as :func:`reportgen.plots.fixed_figure` lays one out (inches):
    ``series`` drawn in order, each a translucent filled outline, and a legend in ``legend_at`` ("upper
    left", "upper right", or "clear": the upper corner whose bars reach least into it). The bars never
    reach into the legend: where they would, the top of ``ylim`` is raised until they clear it."""
    import io

    from PIL import Image, ImageDraw

    w, h = round(size[0] * SCALE), round(size[1] * SCALE)
    left, right, bottom, top = (round(m * SCALE) for m in margins)
    x0, x1, y0, y1 = left, w - right, h - bottom, top  # the axes box, y0 the bottom edge in pixels
    img = Image.new("RGB", (w, h), (255, 255, 255))
    draw = ImageDraw.Draw(img, "RGBA")  # fills with alpha are blended onto the white
    (xa, xb), (ya, yb) = xlim, ylim
    sx = (x1 - x0) / (xb - xa) if xb > xa else 0.0
    edges = np.asarray(edges, dtype=np.float64)
    px = np.clip(x0 + (edges - xa) * sx, x0, x1)
    # The legend, as Matplotlib's without a frame: a swatch 2 em wide, the text after it, a row per series.
    small = font(7)
    em = small.size
    rows = [(s, draw.textlength(s.label, font=small)) for s in series]
    width = 2 * em + 0.8 * em + max((t for _s, t in rows), default=0)
    below = 0.7 * em + 1.4 * em * len(rows) + 0.3 * em  # from the axes' top to under the legend's last row
    tallest = (
        np.max([np.asarray(s.counts, dtype=np.float64) for s in series], axis=0) if series else np.zeros(0)
    )

    def under(lx: float) -> float:  # the tallest bar beneath a legend starting at pixel ``lx``
        hit = (px[1:] > lx) & (px[:-1] < lx + width)
        return float(tallest[hit].max(initial=ya))

    corners = {"upper left": x0 + em, "upper right": x1 - em - width}
    corner = min(corners, key=lambda c: under(corners[c])) if legend_at == "clear" else legend_at
    legend_x = corners[corner]
    reach = under(legend_x) - ya
    if reach > 0 and yb > ya and reach > (yb - ya) * (1 - below / (y0 - y1)):
        yb = ya + reach / (1 - below / (y0 - y1))
    sy = (y0 - y1) / (yb - ya) if yb > ya else 0.0
    for s in series:
        counts = np.asarray(s.counts, dtype=np.float64)
        py = np.clip(y0 - (counts - ya) * sy, y1, y0)
        # The outline: up the first edge, along each bar's top, down the last edge, back along the base.
        xs = np.repeat(px, 2)[1:-1]
        ys = np.repeat(py, 2)
        points = (
            [(float(px[0]), float(y0))] + list(zip(xs.tolist(), ys.tolist())) + [(float(px[-1]), float(y0))]
        )
        draw.polygon(points, fill=_rgb(s.colour) + (round(255 * s.alpha),))
    line = max(1, round(0.8 * SCALE / 72))  # Matplotlib's 0.8 pt axes lines
    tick_len = round(3.5 * SCALE / 72)
    black = (0, 0, 0, 255)
    draw.rectangle([x0, y1, x1, y0], outline=black, width=line)
    label_font, title_font = font(8), font(9)
    pad = round(3.5 * SCALE / 72)  # tick label padding, as Matplotlib's
    xt, xl, x_offset = ticks(xa, xb, (x1 - x0) / SCALE)
    for v, text in zip(xt, xl):
        x = round(x0 + (v - xa) * sx)
        draw.line([(x, y0), (x, y0 + tick_len)], fill=black, width=line)
        draw.text((x, y0 + tick_len + pad), text, font=small, fill=black, anchor="mt")
    yt, yl, y_offset = ticks(ya, yb, (y0 - y1) / SCALE, vertical=True)
    for v, text in zip(yt, yl):
        y = round(y0 - (v - ya) * sy)
        draw.line([(x0 - tick_len, y), (x0, y)], fill=black, width=line)
        draw.text((x0 - tick_len - pad, y), text, font=small, fill=black, anchor="rm")
    if x_offset:
        draw.text((x1, y0 + tick_len + pad + small.size + pad), x_offset, font=small, fill=black, anchor="rt")
    if y_offset:
        draw.text((x0, y1 - pad), y_offset, font=small, fill=black, anchor="ld")
    draw.text(((x0 + x1) / 2, h - round(0.04 * SCALE)), xlabel, font=label_font, fill=black, anchor="md")
    widest = max((draw.textlength(t, font=small) for t in yl), default=0)
    label = Image.new(
        "RGBA", (round(draw.textlength(ylabel, font=label_font)) + 4, label_font.size + 6), (255, 255, 255, 0)
    )
    ImageDraw.Draw(label).text((2, 2), ylabel, font=label_font, fill=black, anchor="lt")
    label = label.rotate(90, expand=True)
    lx = max(0, round(x0 - tick_len - 2 * pad - widest - label.width))
    img.paste(label, (lx, round((y0 + y1) / 2 - label.height / 2)), label)
    draw.text(((x0 + x1) / 2, y1 - round(6 * SCALE / 72)), title, font=title_font, fill=black, anchor="md")
    ly = y1 + em * 0.7
    for s, _t in rows:
        box = [round(legend_x), round(ly + 0.15 * em), round(legend_x + 2 * em), round(ly + 0.85 * em)]
        draw.rectangle(box, fill=_rgb(s.colour) + (round(255 * s.alpha),))
        draw.text((legend_x + 2.8 * em, ly + 0.5 * em), s.label, font=small, fill=black, anchor="lm")
        ly += 1.4 * em
    buf = io.BytesIO()
    # A chart has few colours: the fills, their overlaps and black text's grey edges over each. Mapped
    # onto exactly those (white stays white), it takes 45% of the bytes, in less time than a full-colour
    # PNG takes to compress.
    img.quantize(palette=_palette(series), dither=Image.Dither.NONE).save(buf, format="PNG", compress_level=6)
    return buf.getvalue()
