"""Kernel grids for every conv layer (a selection in deep models), one shared symmetric colour scale per
layer."""

from __future__ import annotations

import numpy as np

from reportgen import graph
from reportgen.analyses.baseline import fresh_values, variable_name
from reportgen.analyses.kernel_grid import kernel_grid, pointwise_matrix
from reportgen.anchors import anchor_id
from reportgen.context import Context, SectionResult
from reportgen.errors import UserError
from reportgen.figures import Figure

TITLE = "Kernel grids"
NEEDS = ("weight_findings",)


def validate(ctx: Context) -> None:
    if ctx.options.max_filters < 1:
        raise UserError("--max-filters must be at least 1")
    c = ctx.options.kernel_channel
    if c is not None and (isinstance(c, bool) or not isinstance(c, (int, np.integer)) or c < 0):
        raise UserError(
            f"--kernel-channel must be a whole number, 0 or more (got {c!r}); leave it out to show "
            "each layer's input channel with the largest kernel norm"
        )


def _untrained_figure(ref: graph.LayerRef, max_filters: int, grid: dict, fresh: dict) -> Figure:
    """The first conv layer's freshly initialised kernel on the trained grid's channel and scale, so the two
    compare tile for tile."""
    untrained = kernel_grid(ref.layer, max_filters, grid["channel"], limit=grid["limit"], values=fresh)
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


def _fresh_kernel(ref: graph.LayerRef, seed: int) -> dict | None:
    """The first conv layer's freshly initialised kernel, as the layer's own variables would hold it."""
    values = fresh_values(ref.layer, ref.path, seed, ref.input_shape)
    if not values:
        return None
    return {variable_name(v): a for v, a in zip(ref.layer.weights, values)}


def run(ctx: Context) -> SectionResult:
    opts = ctx.options
    convs = graph.conv_layers(ctx.model)
    kinds = ("dead_filter", "duplicate_filters")
    paths = {r.path for r in convs}
    flagged = {f["layer"] for f in ctx.weight_findings if f["kind"] in kinds and f["layer"] in paths}
    shown, why = graph.detail_layers(convs, opts.layers or (), flagged)
    shown_paths = {r.path for r in shown}
    layers, data, grids = [], {}, {}
    for i, ref in enumerate(convs):
        grid = kernel_grid(ref.layer, opts.max_filters, opts.kernel_channel, rgb=i == 0)
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
        pointwise = pointwise_matrix(ref.layer)
        if pointwise is not None:
            grid["pointwise"] = pointwise
            data[ref.path]["pointwise"] = {
                "rows": pointwise["rows"],
                "columns": pointwise["columns"],
                "limit": pointwise["limit"],
            }
        if ref.path in shown_paths:
            grids[ref.path] = grid
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
        if first:
            fresh = _fresh_kernel(ref, opts.seed)
            if fresh is not None:
                # the trained grid's channel, so the two compare tile for tile
                entry["untrained_figure"] = _untrained_figure(ref, opts.max_filters, grid, fresh)
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
