"""Feature maps: one picture per (image, layer), the channels composited into ONE grid, each on its own
colour scale, the input image beside (:mod:`reportgen.sections.features` describes them)."""

from __future__ import annotations

from typing import Any

import numpy as np

from reportgen.figures import painter
from reportgen.plots import (
    ACTIVATION_CMAP,
    channel_range,
    colorize,
    fig_to_small_uri,
    mosaic,
    normalise,
    pyplot,
)

COLUMNS = 8
MARGIN = 2
TILE_PX = 64  # channels are resampled to about this many pixels a side
MAX_GRID_IN = 4.0  # the tallest channel grid, inches
JPEG_ABOVE = 350_000  # bytes: larger PNG grids (noisy early layers) are stored as JPEG


def _resample(channel: np.ndarray, size: int) -> np.ndarray:
    """A channel at about ``size`` px: area-averaged down, or nearest-neighbour up (crisp cells)."""
    from PIL import Image

    h, w = channel.shape
    if max(h, w) > size:
        scale = size / max(h, w)
        nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
        return np.asarray(Image.fromarray(channel.astype(np.float32)).resize((nw, nh), Image.Resampling.BOX))
    k = max(1, size // max(h, w))
    return np.repeat(np.repeat(channel, k, axis=0), k, axis=1) if k > 1 else channel


def channel_tiles(maps: np.ndarray, count: int) -> tuple[list[np.ndarray], list[str]]:
    """Coloured tiles for the first ``count`` channels of one image's (h, w, C) maps.

    Each channel is scaled to its own min..max (the tutorials' ``matshow`` per
    channel); a constant channel (e.g. all zero after ReLU) is labelled ``flat``.
    """
    tiles, labels = [], []
    for c in range(min(count, maps.shape[-1])):
        ch = maps[..., c]
        lo, hi = channel_range(ch)
        flat = float(np.nanmax(ch) - np.nanmin(ch)) < 1e-12 if ch.size else True
        tiles.append(colorize(normalise(_resample(ch, TILE_PX), lo, hi), ACTIVATION_CMAP))
        labels.append(f"{c} flat" if flat else str(c))
    return tiles, labels


def grid_chart(
    pixels: np.ndarray, maps: np.ndarray, path: str, class_name: str, shape: tuple[int, ...], count: int
) -> Any:
    """The input image on the left, the first ``count`` channels of the layer's (h, w, C) ``maps`` on the
    right, one figure (unsaved)."""
    plt = pyplot()

    tiles, labels = channel_tiles(maps, count)
    th, tw = tiles[0].shape[:2]
    band = max(6, th // 4)  # the index labels sit above each tile, never on a cell of a small map
    grid = mosaic(tiles, columns=COLUMNS, margin=MARGIN, fill=255, label_band=band)
    gh, gw = grid.shape[:2]
    width_in = 7.0
    grid_w = 5.2 if len(tiles) >= COLUMNS else min(5.2, 0.75 * len(tiles) + 0.4)
    if max(shape[:2]) <= 8:  # a few cells a side (a small ViT's token grid): smaller tiles show them all
        grid_w *= 0.7
    grid_w = min(
        grid_w, MAX_GRID_IN * gw / gh
    )  # 64 channels: two figures a page, not one on a half-empty page
    grid_h = grid_w * gh / gw
    height_in = max(1.9, grid_h + 0.55)
    fig = plt.figure(figsize=(width_in, height_in))
    top = 1 - 0.45 / height_in
    inp = fig.add_axes((0.0, top - 1.25 / height_in, 1.25 / width_in, 1.25 / height_in))
    inp.imshow(pixels[..., 0] if pixels.shape[-1] == 1 else pixels, cmap="gray", vmin=0, vmax=255)
    inp.set_axis_off()
    inp.text(0.5, -0.04, "input", transform=inp.transAxes, ha="center", va="top", fontsize=8)
    ax = fig.add_axes((1.4 / width_in, top - grid_h / height_in, grid_w / width_in, grid_h / height_in))
    ax.imshow(grid, interpolation="antialiased")
    ax.set_axis_off()
    h, w, c = shape
    shown = len(tiles)
    fig.suptitle(
        f"{path} ({class_name}) output {h}×{w}×{c}: channels 0–{shown - 1}"
        + (f" of {c}" if shown < c else ""),
        fontsize=9,
        x=0.02,
        ha="left",
        y=1 - 0.12 / height_in,
    )
    fontsize = 5.5 if tw < 48 else 6.5
    for i, label in enumerate(labels):
        r, col = divmod(i, COLUMNS)
        y, x = MARGIN + band + r * (th + band + MARGIN), MARGIN + col * (tw + MARGIN)
        ax.text(x + 1, y - band / 2, label, color="#222", fontsize=fontsize, va="center", ha="left")
    cax = fig.add_axes(
        ((1.4 + grid_w + 0.12) / width_in, top - grid_h / height_in, 0.1 / width_in, grid_h / height_in)
    )
    sm = plt.cm.ScalarMappable(cmap=ACTIVATION_CMAP, norm=plt.Normalize(0, 1))
    cb = fig.colorbar(sm, cax=cax, ticks=[0, 1])
    cb.ax.set_yticklabels(["channel\nmin", "channel\nmax"], fontsize=6.5)
    return fig


@painter("features.grid")
def grid_figure(*args: Any, **kwargs: Any) -> str:
    """ONE picture per (image, layer) (:func:`grid_chart`): PNG, or JPEG when the PNG would be large (noisy
    maps)."""
    return fig_to_small_uri(grid_chart(*args, **kwargs), JPEG_ABOVE)
