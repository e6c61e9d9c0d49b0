"""Figure plumbing the painters share: colour scales, PNG encoding, mosaics, laid-out charts.

Figures are drawn from the data the sections put in their :class:`reportgen.figures.Figure` specs;
nothing here computes an analysis, and nothing here runs in a JSON-only run -- CI's ``--format json``,
``Report(...).json`` -- which draws no figure and never imports Matplotlib (``matplotlib`` is imported
here on the first drawing, not at import). Figures are PNG (or JPEG), and a grid is
composited into ONE image rather than hundreds of small ones, which keeps the
HTML and the PDF small and fast to render. Small charts (histograms, bars,
depth charts) are laid out once, in inches (:func:`fixed_figure`), not by
``tight_layout`` -- which measured every label of every figure again, most of a
chart's cost. The kind drawn hundreds of times (the weight histograms) is drawn
without Matplotlib (:mod:`reportgen.raster`). SVG (``fmt="svg"``) was measured
for them and not taken: a histogram drew 11 ms faster, but WeasyPrint spent 47 ms
on it against 6 ms on the PNG, and its data URI was 47% larger (docs/benchmarks.md).
"""

from __future__ import annotations

import base64
import io
from typing import Any, Sequence

import numpy as np


def pyplot() -> Any:
    """``matplotlib.pyplot``, configured for reports on first use (no display; names never typeset)."""
    import matplotlib

    if "matplotlib.pyplot" not in __import__("sys").modules:
        matplotlib.use("Agg")
    # Layer names are text, never mathtext: Keras accepts "conv$_{$1", which Matplotlib would try to typeset.
    matplotlib.rcParams["text.parse_math"] = False
    import matplotlib.pyplot as plt

    return plt


DPI = 110
# Colour maps, one place: diverging for signed weights, sequential for
# activations, "jet" over the image for Grad-CAM (as in the keras-io example).
WEIGHT_CMAP = "RdBu_r"
ACTIVATION_CMAP = "viridis"
HEATMAP_CMAP = "jet"


# --- colour scales -----------------------------------------------------------------


def channel_range(channel: np.ndarray) -> tuple[float, float]:
    """Each feature-map channel on its own scale (min..max), flat channels kept flat."""
    c = np.asarray(channel, dtype=np.float64)
    c = c[np.isfinite(c)]
    if c.size == 0:
        return 0.0, 1.0
    lo, hi = float(c.min()), float(c.max())
    if hi - lo < 1e-12:
        return lo, lo + 1.0
    return lo, hi


def normalise(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return np.clip((np.asarray(x, dtype=np.float32) - lo) / (hi - lo), 0.0, 1.0)


def colorize(x01: np.ndarray, cmap: str) -> np.ndarray:
    """Values in [0, 1] to RGB uint8 through a Matplotlib colour map."""
    import matplotlib

    rgba = matplotlib.colormaps[cmap](np.nan_to_num(x01, nan=0.0))
    return (rgba[..., :3] * 255).astype(np.uint8)


HEATMAP_ALPHA = 0.45  # heatmap opacity over the image


def heatmap_overlay(pixels: np.ndarray, heatmap01: np.ndarray, alpha: float = HEATMAP_ALPHA) -> np.ndarray:
    """A [0, 1] heatmap at the image's size, coloured with the heatmap map, blended over the image."""
    base = pixels if pixels.shape[-1] == 3 else np.repeat(pixels, 3, axis=-1)
    blend = (1 - alpha) * base.astype(np.float32) + alpha * colorize(heatmap01, HEATMAP_CMAP).astype(
        np.float32
    )
    return np.clip(blend, 0, 255).astype(np.uint8)


# --- encoding ----------------------------------------------------------------------


def fig_to_uri(fig: Any, dpi: int = DPI, fmt: str = "png", tight: bool = True) -> str:
    """Encode a Matplotlib figure as a PNG, JPEG (photo-like content) or SVG data URI and close it.

    ``tight``: crop to the drawn content (a second drawing pass); a figure laid out by
    :func:`fixed_figure` is saved as laid out. SVG keeps its text as text (smaller, and
    searchable in the PDF) and is reproducible: no date, fixed element ids.
    """
    import matplotlib

    buf = io.BytesIO()
    bbox = "tight" if tight else None
    try:
        if fmt == "jpeg":
            fig.savefig(buf, format="jpeg", dpi=dpi, bbox_inches=bbox, pil_kwargs={"quality": 88})
            mime = "image/jpeg"
        elif fmt == "svg":
            with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "reportgen"}):
                fig.savefig(buf, format="svg", dpi=dpi, bbox_inches=bbox, metadata={"Date": None})
            mime = "image/svg+xml"
        else:
            fig.savefig(buf, format="png", dpi=dpi, bbox_inches=bbox)
            mime = "image/png"
    finally:
        pyplot().close(fig)
    return f"data:{mime};base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def fig_to_small_uri(fig: Any, limit: int, dpi: int = DPI) -> str:
    """A PNG data URI of ``fig``, or a JPEG of the same pixels when the PNG would exceed ``limit`` bytes
    (noisy feature maps and patterns): drawn once, the PNG re-encoded rather than the figure redrawn."""
    uri = fig_to_uri(fig, dpi=dpi)
    png = base64.b64decode(uri.split(",", 1)[1])
    if len(png) <= limit:
        return uri
    from PIL import Image

    buf = io.BytesIO()
    Image.open(io.BytesIO(png)).convert("RGB").save(buf, format="JPEG", quality=88)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def fixed_figure(
    size: tuple[float, float],
    margins: tuple[float, float, float, float],
    rows: int = 1,
    cols: int = 1,
    gaps: tuple[float, float] = (0.0, 0.0),
    **kwargs: Any,
) -> tuple[Any, np.ndarray]:
    """A figure and its (rows x cols) axes, laid out once in inches: ``margins`` (left, right, bottom,
    top) and ``gaps`` (between columns, between rows) are inches, whatever the figure's size.

    ``tight_layout`` measures every text of the figure to place the axes (a draw's worth
    of work, again for each figure); a chart whose labels are known in advance is placed
    by arithmetic. No pyplot figure manager either (nothing to register, nothing to close).
    """
    pyplot()  # the report's rcParams
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    w, h = size
    left, right, bottom, top = margins
    fig = Figure(figsize=size)
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False, **kwargs)
    pane_w = (w - left - right - gaps[0] * (cols - 1)) / cols
    pane_h = (h - bottom - top - gaps[1] * (rows - 1)) / rows
    fig.subplots_adjust(
        left=left / w,
        right=1 - right / w,
        bottom=bottom / h,
        top=1 - top / h,
        wspace=gaps[0] / max(pane_w, 1e-6),
        hspace=gaps[1] / max(pane_h, 1e-6),
    )
    return fig, axes


def text_width(text: str, points: float) -> float:
    """A generous estimate of a label's width in inches (DejaVu Sans averages ~0.6 em a character),
    for margins laid out without measuring."""
    return 0.62 * points / 72.0 * len(text)


def array_to_uri(pixels: np.ndarray, fmt: str = "png") -> str:
    """Encode an RGB or grey uint8 array as a PNG (or JPEG) data URI."""
    from PIL import Image

    arr = np.asarray(pixels)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    img = Image.fromarray(arr.astype(np.uint8))
    buf = io.BytesIO()
    if fmt == "jpeg":
        img.convert("RGB").save(buf, format="JPEG", quality=88)
        mime = "image/jpeg"
    else:
        img.save(buf, format="PNG", optimize=True)
        mime = "image/png"
    return f"data:{mime};base64," + base64.b64encode(buf.getvalue()).decode("ascii")


# --- mosaics -----------------------------------------------------------------------


def mosaic(
    tiles: Sequence[np.ndarray], columns: int = 8, margin: int = 2, fill: int = 0, label_band: int = 0
) -> np.ndarray:
    """Stitch equally sized tiles (HxW or HxWx3, uint8) into one grid with margins.

    ``label_band`` reserves that many pixels above every row of tiles, so
    labels can sit beside the pixels instead of on top of them. Cells past the
    last tile are white, never a row of dark filler tiles that reads as data.
    """
    tiles = [np.asarray(t) for t in tiles]
    if not tiles:
        return np.zeros((1, 1, 3), dtype=np.uint8)
    h, w = tiles[0].shape[:2]
    colour = tiles[0].ndim == 3
    rows = -(-len(tiles) // columns)
    cols = min(columns, len(tiles))
    shape = (rows * (h + label_band) + (rows + 1) * margin, cols * w + (cols + 1) * margin) + (
        (3,) if colour else ()
    )
    out = np.full(shape, fill, dtype=np.uint8)
    for i, t in enumerate(tiles):
        r, c = divmod(i, columns)
        y, x = margin + label_band + r * (h + label_band + margin), margin + c * (w + margin)
        out[y : y + h, x : x + w] = t
    left = len(tiles) % columns
    if rows > 1 and left:
        y = (rows - 1) * (h + label_band + margin) + margin
        out[y:, margin + left * (w + margin) :] = 255
    return out


def upscale(pixels: np.ndarray, min_size: int) -> np.ndarray:
    """Nearest-neighbour enlarge a small tile so each weight stays a crisp square."""
    h, w = pixels.shape[:2]
    k = max(1, int(np.ceil(min_size / max(h, w))))
    return np.repeat(np.repeat(pixels, k, axis=0), k, axis=1) if k > 1 else pixels


def labelled_grid(
    grid: np.ndarray,
    tile_shape: tuple[int, int],
    labels: Sequence[str],
    columns: int,
    margin: int,
    title: str,
    colorbar: tuple[float, float, str] | None = None,
    width_in: float = 7.0,
    label_band: int = 0,
) -> str:
    """Draw a composited mosaic with a title, tile labels and an optional colour bar.

    With ``label_band`` (as given to :func:`mosaic`) the labels sit in the band
    above each tile; without it they sit in the tile's corner on a dark box.
    """
    plt = pyplot()
    h, w = grid.shape[:2]
    height_in = max(1.2, width_in * h / w + 0.6)
    fig, ax = plt.subplots(figsize=(width_in, height_in))
    ax.imshow(grid, interpolation="nearest", cmap=None if grid.ndim == 3 else "gray")
    ax.set_axis_off()
    ax.set_title(title, fontsize=10)
    th, tw = tile_shape
    fontsize = 6 if columns >= 8 else 7
    for i, label in enumerate(labels):
        r, c = divmod(i, columns)
        y, x = margin + label_band + r * (th + label_band + margin), margin + c * (tw + margin)
        if label_band:
            ax.text(
                x + tw / 2,
                y - label_band / 2,
                label,
                color="#222",
                fontsize=fontsize,
                va="center",
                ha="center",
            )
        else:
            ax.text(
                x + 1,
                y + 1,
                label,
                color="white",
                fontsize=fontsize,
                va="top",
                ha="left",
                bbox=dict(facecolor="black", alpha=0.55, pad=0.6, linewidth=0),
            )
    if colorbar is not None:
        lo, hi, cmap = colorbar
        sm = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(lo, hi))
        cb = fig.colorbar(sm, ax=ax, fraction=0.035, pad=0.02)
        cb.ax.tick_params(labelsize=7)
    _fit_title(fig, ax)
    return fig_to_uri(fig)


def _fit_title(fig: Any, ax: Any, smallest: float = 8.0) -> None:
    """Fit an axes title that is wider than its axes (a long layer path), which would run under the colour
    bar beside them: a smaller font, down to ``smallest`` pt, then wrapped."""
    import textwrap

    title = ax.title
    renderer = fig.canvas.get_renderer()
    ax.apply_aspect()
    room, wide = ax.get_window_extent(renderer).width, title.get_window_extent(renderer).width
    if not wide > room > 0:
        return
    size = title.get_fontsize()
    title.set_fontsize(max(smallest, size * room / wide))
    text, wide = title.get_text(), title.get_window_extent(renderer).width
    chars = len(text)
    while wide > room and chars > 16:  # the widest line decides: shorter lines until it fits
        chars = max(16, min(chars - 1, int(chars * room / wide)))
        title.set_text("\n".join(textwrap.wrap(text, chars)))
        wide = title.get_window_extent(renderer).width


def matrix_figure(matrix: np.ndarray, limit: float, title: str, ylabel: str, xlabel: str, cmap: str) -> str:
    """A weight matrix as one heatmap on a symmetric scale (a separable conv's pointwise kernel), indices on
    the axes and a colour bar."""
    plt = pyplot()
    rows, cols = matrix.shape
    cell = min(0.22, 5.6 / max(cols, 1), 4.0 / max(rows, 1))
    width_in, height_in = max(3.0, cols * cell + 1.6), max(1.6, rows * cell + 0.9)
    fig, ax = plt.subplots(figsize=(width_in, height_in))
    shown = ax.imshow(matrix, cmap=cmap, vmin=-limit, vmax=limit, interpolation="nearest", aspect="equal")
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(xlabel, fontsize=7)
    ax.set_ylabel(ylabel, fontsize=7)
    ax.tick_params(labelsize=6)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=8))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=8))
    cb = fig.colorbar(shown, ax=ax, fraction=0.04, pad=0.02)
    cb.ax.tick_params(labelsize=6)
    return fig_to_uri(fig)


# --- charts across depth ------------------------------------------------------------


def _plain_log_formatter(**kwargs: Any) -> Any:
    """Log-axis labels as plain numbers ("0.01", "4"), choosing which ticks to label as Matplotlib does."""
    import matplotlib.ticker

    class PlainLogFormatter(matplotlib.ticker.LogFormatter):
        def __call__(self, x, pos=None):
            return f"{x:g}" if super().__call__(x, pos) else ""

    return PlainLogFormatter(**kwargs)


def plain_log_axis(axis: Any) -> None:
    """Label a log axis with plain numbers ("1e-06", "0.01", "4").

    Mathtext is off (see the top), so Matplotlib's default log labels would print
    ``$\\mathdefault{10^{-6}}$`` literally. Call after ``set_yscale("log")``.
    """
    axis.set_major_formatter(_plain_log_formatter())
    axis.set_minor_formatter(_plain_log_formatter(labelOnlyBase=False))


def depth_chart(
    labels: Sequence[str],
    panels: Sequence[dict],
    stages: Sequence[tuple[int, str]] = (),
    title: str | None = None,
    with_missing: bool = False,
) -> "str | tuple[str | None, list[str]]":
    """Several per-layer series against depth, one panel each, stage starts marked.

    ``panels``: ``{"name", "values" (None = not measured), "log" (bool),
    "lines" [(y, label)], "labels_outside" (the lines' labels right of the axes, where
    they hide no point), "margins" ((x, y) padding, so points and lines clear the frame),
    "highlight" (indices drawn in red), "open" (indices
    drawn as open circles: a value measured elsewhere, the caption says where),
    "empty" (why, when no layer has a value)}``. With many layers the x axis
    names only the stages; with few it names every layer.

    A panel without a single value to draw is left out (an empty chart is a
    defect) and named in the title; with ``with_missing`` the function returns
    ``(uri, [why each panel was left out])`` for the caption, and ``uri`` is
    None when no panel is left.
    """
    from reportgen.figures import chart_gaps, chartable

    missing = chart_gaps(panels)
    panels = [p for p in panels if chartable(p)]
    if not panels:
        return (None, missing) if with_missing else None
    import textwrap

    # Wrapped to the 7-inch width: the figure is laid out, not cropped to its content.
    title = "\n".join(textwrap.fill(t, 110) for t in ([title] if title else []) + missing) or None
    n = len(labels)
    x = np.arange(n)
    # Laid out in inches (no tight_layout): the x labels' length sets the bottom margin, the
    # title's lines the top one, the widest tick label and the axis name the left one.
    ticks = [lab[-22:] for lab in labels] if n <= 40 else [lab for _, lab in stages]
    tick_pt = 5.5 if n <= 40 else 6
    bottom_in = 0.12 + max([text_width(t, tick_pt) for t in ticks] + [0.0]) + (0.0 if n <= 40 else 0.2)
    lines = title.count("\n") + 1 if title else 0
    top_in = 0.12 + 0.16 * lines
    left_in, right_in, pane_in, gap_in = 0.72, 0.12, 1.2, 0.12
    outside_labels = [
        line
        for p in panels
        if p.get("labels_outside")
        for _y, label in p.get("lines", ())
        for line in str(label).split("\n")
    ]
    if (
        outside_labels
    ):  # threshold labels right of the plot: the margin holds their widest line, never clips it
        right_in = 0.2 + max(text_width(line, 6) for line in outside_labels)
    size = (7.0, bottom_in + top_in + pane_in * len(panels) + gap_in * (len(panels) - 1))
    fig, axes = fixed_figure(size, (left_in, right_in, bottom_in, top_in), len(panels), 1, (0.0, gap_in))
    for ax, panel in zip(axes[:, 0], panels):
        # One x range for all; only the bottom panel has x ticks (a shared axis made every panel
        # a tick per layer, unlabelled -- most of the chart's cost). The stage lines mark depth.
        ax.set_xlim(-0.5 - 0.03 * n, n - 0.5 + 0.03 * n)
        if ax is not axes[-1, 0]:
            ax.set_xticks([])
        vals = np.array([np.nan if v is None else float(v) for v in panel["values"]], dtype=np.float64)
        if panel.get("log"):
            vals = np.where(vals > 0, vals, np.nan)
            ax.set_yscale("log")
            plain_log_axis(ax.yaxis)
        ax.plot(x, vals, marker="o", markersize=2.2 if n > 60 else 3, linewidth=0.8, color="#1f5fa8")
        hollow = [i for i in panel.get("open", ()) if 0 <= i < n and np.isfinite(vals[i])]
        if hollow:
            ax.plot(
                hollow,
                vals[hollow],
                "o",
                markersize=3.6 if n > 60 else 4.4,
                markerfacecolor="white",
                markeredgecolor="#1f5fa8",
                markeredgewidth=0.9,
                linestyle="none",
            )
        hi = [i for i in panel.get("highlight", ()) if 0 <= i < n and np.isfinite(vals[i])]
        if hi:
            ax.plot(hi, vals[hi], "o", markersize=4, color="#b3261e", label="finding")
        outside = panel.get("labels_outside", False)
        for y, label in panel.get("lines", ()):
            ax.axhline(y, color="#b3261e", linestyle="--", linewidth=0.7)
            ax.text(
                1.01 if outside else 0.985,
                y,
                label,
                fontsize=6,
                color="#b3261e",
                va="center",
                ha="left" if outside else "right",
                transform=ax.get_yaxis_transform(),
                bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.6},
            )
        if panel.get("margins"):
            ax.margins(*panel["margins"])
        if panel.get("lines") and outside:  # every threshold line (and its label) inside the plot's y range
            lo, hi = ax.get_ylim()
            ys = [float(y) for y, _label in panel["lines"]]
            pad = 0.08 * (max([hi] + ys) - min([lo] + ys))
            ax.set_ylim(min([lo] + [y - pad for y in ys]), max([hi] + [y + pad for y in ys]))
        for start, _label in stages:
            ax.axvline(start - 0.5, color="#c8ccd4", linewidth=0.6, zorder=0)
        ax.set_ylabel(panel["name"], fontsize=7)
        ax.tick_params(which="both", labelsize=6.5)
        ax.grid(axis="y", color="#eceef2", linewidth=0.5)
    bottom = axes[-1, 0]
    if n <= 40:
        bottom.set_xticks(x)
        bottom.set_xticklabels([lab[-22:] for lab in labels], rotation=90, fontsize=5.5)
    else:
        bottom.set_xticks([s for s, _ in stages])
        bottom.set_xticklabels([lab for _, lab in stages], rotation=90, fontsize=6)
        bottom.set_xlabel(f"layer (depth order, {n} layers); ticks at stage starts", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=8.5, x=0.01, y=1 - 0.06 / size[1], ha="left", va="top")
    uri = fig_to_uri(fig, dpi=100, tight=False)
    return (uri, missing) if with_missing else uri
