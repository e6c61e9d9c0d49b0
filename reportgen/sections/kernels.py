"""Kernel grids for every conv layer, one shared symmetric colour scale per layer."""

from __future__ import annotations

import numpy as np

from reportgen import graph
from reportgen.analyses.kernel_grid import kernel_grid
from reportgen.context import Context, SectionResult
from reportgen.errors import UserError
from reportgen.plots import WEIGHT_CMAP, colorize, labelled_grid, mosaic, normalise, upscale

TITLE = "Kernel grids"
COLUMNS = 8
MARGIN = 3
TILE_PX = 24


def validate(ctx: Context) -> None:
    if ctx.options.max_filters < 1:
        raise UserError("--max-filters must be at least 1")
    if ctx.options.kernel_channel < 0:
        raise UserError("--kernel-channel must be 0 or more")


def grid_figure(grid: dict, title: str, rgb: bool = False) -> str:
    lim = grid["limit"]
    if rgb:
        tiles = [upscale((normalise(t, -lim, lim) * 255).astype(np.uint8), TILE_PX) for t in grid["rgb_tiles"]]
    else:
        tiles = [upscale(colorize(normalise(t, -lim, lim), WEIGHT_CMAP), TILE_PX) for t in grid["tiles"]]
    band = max(8, tiles[0].shape[0] // 3)
    image = mosaic(tiles, columns=COLUMNS, margin=MARGIN, fill=255, label_band=band)
    labels = [str(i) for i in range(len(tiles))]
    colorbar = None if rgb else (-lim, lim, WEIGHT_CMAP)
    width = 6.8 if len(tiles) > 4 else 3.5
    return labelled_grid(image, tiles[0].shape[:2], labels, COLUMNS, MARGIN, title, colorbar, width_in=width,
                         label_band=band)


def run(ctx: Context) -> SectionResult:
    opts = ctx.options
    convs = graph.conv_layers(ctx.model)
    base = {r.path: r for r in graph.conv_layers(ctx.baseline)} if convs else {}
    layers, data = [], {}
    bar = ctx.progress(convs, desc="kernel grids") if ctx.progress else convs
    for i, ref in enumerate(bar):
        grid = kernel_grid(ref.layer, opts.max_filters, opts.kernel_channel, rgb=i == 0)
        entry = {
            "path": ref.path,
            "class_name": ref.class_name,
            "grid": grid,
            "figure": grid_figure(grid, f"{ref.path}: channel {grid['channel']}, ±{grid['limit']:.3g}"),
            "rgb_figure": None,
            "untrained_figure": None,
        }
        if grid["rgb_tiles"] is not None:
            entry["rgb_figure"] = grid_figure(grid, f"{ref.path}: RGB composites", rgb=True)
        if i == 0:
            fresh = kernel_grid(base[ref.path].layer, opts.max_filters, opts.kernel_channel, limit=grid["limit"])
            entry["untrained_figure"] = grid_figure(fresh, f"{ref.path} untrained: channel {fresh['channel']}, same scale")
        layers.append(entry)
        data[ref.path] = {k: grid[k] for k in ("limit", "channel", "in_channels", "shown", "total", "kernel_size")}
    return SectionResult(json={"kernels": data}, view={"layers": layers, "max_filters": opts.max_filters})
