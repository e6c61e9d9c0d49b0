"""Figure plumbing shared by every section: colour scales, PNG encoding, mosaics.

Figures are drawn from the data the analyses return; nothing here computes an
analysis. Pixel content is always PNG (or JPEG), never SVG, and a grid is
composited into ONE image rather than hundreds of small ones, which keeps the
HTML and the PDF small and fast to render.
"""

from __future__ import annotations

import base64
import io
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

DPI = 110
# Colour maps, one place: diverging for signed weights, sequential for
# activations, "jet" over the image for Grad-CAM (as in the keras-io example).
WEIGHT_CMAP = "RdBu_r"
ACTIVATION_CMAP = "viridis"
HEATMAP_CMAP = "jet"


# --- colour scales -----------------------------------------------------------------

def symmetric_limit(values: np.ndarray, percentile: float = 100.0) -> float:
    """One symmetric scale [-v, v] for a whole layer, derived from its finite values.

    The tutorials hard-code ``vmin=-0.5, vmax=0.5``; a layer's own largest
    magnitude keeps every filter comparable without clipping.
    """
    finite = np.abs(np.asarray(values, dtype=np.float64))
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return 1.0
    v = float(np.percentile(finite, percentile)) if percentile < 100 else float(finite.max())
    return v if v > 0 else 1.0


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
    rgba = matplotlib.colormaps[cmap](np.nan_to_num(x01, nan=0.0))
    return (rgba[..., :3] * 255).astype(np.uint8)


HEATMAP_ALPHA = 0.45  # heatmap opacity over the image


def heatmap_overlay(pixels: np.ndarray, heatmap01: np.ndarray, alpha: float = HEATMAP_ALPHA) -> np.ndarray:
    """A [0, 1] heatmap at the image's size, coloured with the heatmap map, blended over the image."""
    base = pixels if pixels.shape[-1] == 3 else np.repeat(pixels, 3, axis=-1)
    blend = (1 - alpha) * base.astype(np.float32) + alpha * colorize(heatmap01, HEATMAP_CMAP).astype(np.float32)
    return np.clip(blend, 0, 255).astype(np.uint8)


# --- encoding ----------------------------------------------------------------------

def fig_to_uri(fig: "plt.Figure", dpi: int = DPI, fmt: str = "png") -> str:
    """Encode a Matplotlib figure as a PNG (or JPEG, for photo-like content) data URI and close it."""
    buf = io.BytesIO()
    if fmt == "jpeg":
        fig.savefig(buf, format="jpeg", dpi=dpi, bbox_inches="tight", pil_kwargs={"quality": 88})
        mime = "image/jpeg"
    else:
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
        mime = "image/png"
    plt.close(fig)
    return f"data:{mime};base64," + base64.b64encode(buf.getvalue()).decode("ascii")


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

def mosaic(tiles: Sequence[np.ndarray], columns: int = 8, margin: int = 2, fill: int = 0,
           label_band: int = 0) -> np.ndarray:
    """Stitch equally sized tiles (HxW or HxWx3, uint8) into one grid with margins.

    ``label_band`` reserves that many pixels above every row of tiles, so
    labels can sit beside the pixels instead of on top of them.
    """
    tiles = [np.asarray(t) for t in tiles]
    if not tiles:
        return np.zeros((1, 1, 3), dtype=np.uint8)
    h, w = tiles[0].shape[:2]
    colour = tiles[0].ndim == 3
    rows = -(-len(tiles) // columns)
    cols = min(columns, len(tiles))
    shape = (rows * (h + label_band) + (rows + 1) * margin, cols * w + (cols + 1) * margin) + ((3,) if colour else ())
    out = np.full(shape, fill, dtype=np.uint8)
    for i, t in enumerate(tiles):
        r, c = divmod(i, columns)
        y, x = margin + label_band + r * (h + label_band + margin), margin + c * (w + margin)
        out[y : y + h, x : x + w] = t
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
            ax.text(x + tw / 2, y - label_band / 2, label, color="#222", fontsize=fontsize, va="center",
                    ha="center")
        else:
            ax.text(x + 1, y + 1, label, color="white", fontsize=fontsize, va="top", ha="left",
                    bbox=dict(facecolor="black", alpha=0.55, pad=0.6, linewidth=0))
    if colorbar is not None:
        lo, hi, cmap = colorbar
        sm = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(lo, hi))
        cb = fig.colorbar(sm, ax=ax, fraction=0.035, pad=0.02)
        cb.ax.tick_params(labelsize=7)
    return fig_to_uri(fig)
