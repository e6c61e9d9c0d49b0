"""Kernel grids for every conv layer (a selection in deep models), one shared symmetric colour scale per
layer."""

from __future__ import annotations

import numpy as np

from reportgen import graph
from reportgen.analyses.kernel_grid import kernel_grid
from reportgen.anchors import anchor_id
from reportgen.context import Context, SectionResult
from reportgen.errors import UserError
from reportgen.plots import (
    WEIGHT_CMAP,
    Later,
    colorize,
    labelled_grid,
    matrix_figure,
    mosaic,
    normalise,
    upscale,
)

TITLE = "Kernel grids"
NEEDS = ("kernel_grids",)
COLUMNS = 8
MARGIN = 3
TILE_PX = 24


def validate(ctx: Context) -> None:
    if ctx.options.max_filters < 1:
        raise UserError("--max-filters must be at least 1")
    c = ctx.options.kernel_channel
    if c is not None and (isinstance(c, bool) or not isinstance(c, (int, np.integer)) or c < 0):
        raise UserError(
            f"--kernel-channel must be a whole number, 0 or more (got {c!r}); leave it out to show "
            "each layer's input channel with the largest kernel norm"
        )


def grid_figure(grid: dict, title: str, rgb: bool = False) -> str:
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


def _untrained_figure(ref: graph.LayerRef, max_filters: int, grid: dict, fresh: dict) -> str:
    untrained = kernel_grid(ref.layer, max_filters, grid["channel"], limit=grid["limit"], values=fresh)
    what = (
        "depthwise filters"
        if untrained["channel_chosen_by"] == "depthwise"
        else f"channel {untrained['channel']}"
    )
    return grid_figure(untrained, f"{ref.path} untrained: {what}, same scale")


def _why(grid: dict) -> str:
    """Why this input channel is drawn, in a few words for a title."""
    by = grid["channel_chosen_by"]
    return {"largest kernel norm": "largest kernel norm", "only channel": "the only one"}.get(by, by)


def _title(path: str, grid: dict) -> str:
    if grid["channel_chosen_by"] == "depthwise":
        m = grid["depth_multiplier"]
        each = "tile i: input channel i" if m == 1 else "tile c.k: input channel c"
        return f"{path}: depthwise ({each}), ±{grid['limit']:.3g}"
    return f"{path}: input channel {grid['channel']} ({_why(grid)}), ±{grid['limit']:.3g}"


def run(ctx: Context) -> SectionResult:
    opts = ctx.options
    found = ctx.analyses.kernel_grids
    convs, shown, why, grids = found.convs, found.shown, found.why, found.grids
    layers, data = [], {}
    for ref in convs:
        grid = grids[ref.path]
        data[ref.path] = {
            k: grid[k]
            for k in (
                "limit",
                "channel",
                "channel_chosen_by",
                "in_channels",
                "shown",
                "total",
                "kernel_size",
                "depth_multiplier",
            )
        }
        pointwise = grid.get("pointwise")
        if pointwise is not None:
            data[ref.path]["pointwise"] = {
                "rows": pointwise["rows"],
                "columns": pointwise["columns"],
                "limit": pointwise["limit"],
            }
    for ref in shown:
        first = ref.path == convs[0].path
        grid = grids[ref.path]
        entry = {
            "path": ref.path,
            "anchor": anchor_id("kernels", ref.path),
            "class_name": ref.class_name,
            "grid": grid,
            "figure": Later(grid_figure, grid, _title(ref.path, grid)),
            "pointwise_figure": (
                Later(
                    matrix_figure,
                    grid["pointwise"]["matrix"],
                    grid["pointwise"]["limit"],
                    f"{ref.path}: pointwise kernel, ±{grid['pointwise']['limit']:.3g}",
                    "depthwise output",
                    "output filter",
                    WEIGHT_CMAP,
                )
                if "pointwise" in grid
                else None
            ),
            "rgb_figure": None,
            "untrained_figure": None,
        }
        if grid["rgb_tiles"] is not None:
            entry["rgb_figure"] = Later(grid_figure, grid, f"{ref.path}: RGB composites", rgb=True)
        if first:
            fresh = found.fresh
            if fresh is not None:
                # the trained grid's channel, so the two compare tile for tile
                entry["untrained_figure"] = Later(_untrained_figure, ref, opts.max_filters, grid, fresh)
        layers.append(entry)
    return SectionResult(
        json={"kernels": data},
        view={
            "layers": layers,
            "max_filters": opts.max_filters,
            "selection": why,
            "total": len(convs),
            "figure_ids": {e["anchor"] for e in layers},
        },
    )
