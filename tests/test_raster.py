"""Charts drawn straight to pixels (reportgen.raster): the bars where the counts put them, Matplotlib's own
ticks."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from reportgen import raster
from reportgen.plots import fixed_figure


@pytest.mark.parametrize(
    "lo, hi", [(-0.23, 0.23), (0.0, 3150.0), (-3.1e-5, 2.9e-5), (0.5, 0.52), (-1200.0, 7.0)]
)
def test_ticks_are_the_ones_matplotlib_draws_on_an_axis_of_that_length(lo, hi):
    fig, axes = fixed_figure((4.2, 2.3), (0.62, 0.1, 0.45, 0.25))
    ax = axes[0, 0]
    ax.tick_params(labelsize=7)
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    fig.canvas.draw()
    box = ax.get_position()
    for axis, length, vertical in ((ax.xaxis, box.width * 4.2, False), (ax.yaxis, box.height * 2.3, True)):
        shown = [
            (t.get_loc(), t.label1.get_text()) for t in axis.get_major_ticks() if lo <= t.get_loc() <= hi
        ]
        values, labels, offset = raster.ticks(lo, hi, length, 7, vertical)
        np.testing.assert_allclose(values, [v for v, _ in shown], rtol=0, atol=1e-12 * (hi - lo))
        assert labels == [text for _, text in shown]
        assert offset == axis.get_major_formatter().get_offset()


def test_each_bar_reaches_its_count_in_its_colour():
    counts = np.array([0, 3, 10, 25, 40, 25, 10, 3, 1, 0], dtype=float)
    edges = np.linspace(-1.0, 1.0, counts.size + 1)
    png = raster.histogram_png(
        edges,
        [raster.Series(counts, "#1f5fa8", "trained")],
        "a layer / with ñ",
        "value",
        "count",
        xlim=(-1.1, 1.1),
        ylim=(0.0, 84.0),
        legend_at="upper left",
    )
    img = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    s = raster.SCALE
    assert img.shape == (round(2.3 * s), round(4.2 * s), 3)
    x0, x1, y0, y1 = 0.62 * s, (4.2 - 0.1) * s, (2.3 - 0.45) * s, 0.25 * s
    fill = np.array([255, 255, 255]) * 0.45 + np.array([0x1F, 0x5F, 0xA8]) * 0.55  # 55% over white
    for k, c in enumerate(counts):
        x = round(x0 + ((edges[k] + edges[k + 1]) / 2 + 1.1) / 2.2 * (x1 - x0))
        column = img[round(y1) + 2 : round(y0) - 2, x]
        filled = np.abs(column - fill).max(axis=1) <= 8
        top = round(y0 - c / 84.0 * (y0 - y1)) - (round(y1) + 2)  # the bar's top in the column's rows
        if c == 0:
            assert not filled.any()
            continue
        assert filled[top + 2 :].all() and not filled[: max(0, top - 2)].any(), (k, c)


@pytest.mark.parametrize("corner", ["clear", "upper left", "upper right"])
def test_bars_never_reach_into_the_legend(corner):
    """A uniform draw's flat top runs from edge to edge at 95% of the axes: the top is raised under the
    legend's two rows instead of drawing the bars over its text."""
    counts = np.full(40, 1000.0)
    edges = np.linspace(-0.02, 0.02, 41)
    series = [
        raster.Series(counts * 0.98, "#9aa5b1", "untrained (fresh init)"),
        raster.Series(counts, "#1f5fa8", "trained"),
    ]
    png = raster.histogram_png(
        edges, series, "flat", "value", "count", xlim=(-0.022, 0.022), ylim=(0.0, 1050.0), legend_at=corner
    )
    img = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    s, em = raster.SCALE, raster.font(7).size
    x0, x1, y1 = round(0.62 * s), round((4.2 - 0.1) * s), round(0.25 * s)
    legend_bottom = y1 + 0.7 * em + 2 * 1.4 * em
    fresh = np.array([255, 255, 255]) * 0.45 + np.array([0x9A, 0xA5, 0xB1]) * 0.55
    both = (
        fresh * 0.45 + np.array([0x1F, 0x5F, 0xA8]) * 0.55
    )  # the bars where they overlap (no swatch is this)
    inside = img[:, x0 + 3 : x1 - 3]
    rows = np.nonzero((np.abs(inside - both).max(axis=2) <= 8).any(axis=1))[0]
    assert rows.min() > legend_bottom  # the bars' top lies below the legend, all along the axes
    text = np.nonzero((inside[y1 + 2 : round(legend_bottom)].max(axis=2) < 90).any(axis=0))[0]
    assert text.size  # and the legend's text is there, inside the axes


def test_clear_puts_the_legend_inside_the_axes_over_the_lower_side():
    counts = np.linspace(5000.0, 100.0, 30)  # tall on the left
    edges = np.linspace(0.0, 1.0, 31)
    series = [raster.Series(counts, "#1f5fa8", "trained")]
    png = raster.histogram_png(
        edges, series, "falling", "value", "count", xlim=(-0.05, 1.05), ylim=(0.0, 5250.0)
    )
    img = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    s, em = raster.SCALE, raster.font(7).size
    x0, x1, y1 = round(0.62 * s), round((4.2 - 0.1) * s), round(0.25 * s)
    band = img[y1 + 2 : round(y1 + 0.7 * em + 1.4 * em), x0 + 3 : x1 - 3]  # the legend's row, inside the axes
    text = np.nonzero((band.max(axis=2) < 90).any(axis=0))[0] + x0 + 3  # its dark text
    assert text.size and text.min() > (x0 + x1) / 2  # over the right half, where the bars are low
