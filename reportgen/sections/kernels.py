"""Kernel grids for every conv layer (a selection in deep models), one shared symmetric colour scale per
layer."""

from __future__ import annotations

import numpy as np

from reportgen import graph
from reportgen.anchors import anchor_id
from reportgen.context import Context, SectionResult
from reportgen.errors import UserError
from reportgen.figures import Figure

TITLE = "Kernel grids"
NEEDS = ("kernel_grids",)


def validate(ctx: Context) -> None:
    if ctx.options.max_filters < 1:
        raise UserError("--max-filters must be at least 1")
    c = ctx.options.kernel_channel
    if c is not None and (isinstance(c, bool) or not isinstance(c, (int, np.integer)) or c < 0):
        raise UserError(
            f"--kernel-channel must be a whole number, 0 or more (got {c!r}); leave it out to show "
            "each layer's input channel with the largest kernel norm"
        )


def _untrained_figure(ref: graph.LayerRef, untrained: dict) -> Figure:
    """The first conv layer's freshly initialised kernel on the trained grid's channel and scale."""
    what = (
        "depthwise filters"
        if untrained["channel_chosen_by"] == "depthwise"
        else f"channel {untrained['channel']}"
    )
    return Figure("kernels.grid", untrained, f"{ref.path} untrained: {what}, same scale")


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
            "figure": Figure("kernels.grid", grid, _title(ref.path, grid)),
            "pointwise_figure": (
                Figure(
                    "kernels.pointwise",
                    grid["pointwise"]["matrix"],
                    grid["pointwise"]["limit"],
                    f"{ref.path}: pointwise kernel, ±{grid['pointwise']['limit']:.3g}",
                )
                if "pointwise" in grid
                else None
            ),
            "rgb_figure": None,
            "untrained_figure": None,
        }
        if grid["rgb_tiles"] is not None:
            entry["rgb_figure"] = Figure("kernels.grid", grid, f"{ref.path}: RGB composites", rgb=True)
        if first and found.untrained is not None:
            entry["untrained_figure"] = _untrained_figure(ref, found.untrained)
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
