"""Kernel grids and pointwise kernels (:mod:`reportgen.sections.kernels` describes them)."""

from __future__ import annotations

import numpy as np

from reportgen.figures import painter
from reportgen.plots import WEIGHT_CMAP, colorize, labelled_grid, matrix_figure, mosaic, normalise, upscale

COLUMNS = 8
MARGIN = 3
TILE_PX = 24


@painter("kernels.grid")
def grid_figure(grid: dict, title: str, rgb: bool = False) -> str:
    """A layer's kernel slices (``grid``: :func:`reportgen.analyses.kernel_grid.kernel_grid`'s dict) on one
    symmetric scale, or (``rgb``) the first layer's filters as RGB composites."""
    lim = grid["limit"]
    if rgb:
        tiles = [
            upscale((np.nan_to_num(normalise(t, -lim, lim), nan=0.5) * 255).astype(np.uint8), TILE_PX)
            for t in grid["rgb_tiles"]
        ]
    else:
        tiles = [upscale(colorize(normalise(t, -lim, lim), WEIGHT_CMAP), TILE_PX) for t in grid["tiles"]]
    band = max(8, tiles[0].shape[0] // 3)
    image = mosaic(tiles, columns=COLUMNS, margin=MARGIN, fill=255, label_band=band)
    labels = list(grid.get("labels") or [str(i) for i in range(len(tiles))])
    colorbar = None if rgb else (-lim, lim, WEIGHT_CMAP)
    width = 6.8 if len(tiles) > 4 else 3.5
    return labelled_grid(
        image, tiles[0].shape[:2], labels, COLUMNS, MARGIN, title, colorbar, width_in=width, label_band=band
    )


@painter("kernels.pointwise")
def pointwise_figure(matrix: np.ndarray, limit: float, title: str) -> str:
    """A separable conv's pointwise kernel as one heatmap on a symmetric scale."""
    return matrix_figure(matrix, limit, title, "depthwise output", "output filter", WEIGHT_CMAP)
