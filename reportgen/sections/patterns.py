"""Filter patterns: for each chosen conv layer, the inputs that maximise its filters.

The ascent is :mod:`reportgen.analyses.patterns`; this module picks the
layers and settings, describes ONE 8-wide mosaic per layer (filter indices in the
corners, the layer name as title, filters whose objective did not rise marked
*flat*; :mod:`reportgen.painters.patterns` draws it), and writes
``patterns`` { layer path: {filters, size, steps, style, seed,
activation_start, activation_end, dead, preprocess, start, step, keep_mean,
rise_margin, rose, barely_moved, flat, affine_in_image} } into report.json.

Each layer's settings are fitted to it unless the user set them: the steps
to a compute budget (:func:`reportgen.analyses.patterns.cost.steps_within_budget`),
the step size to the start image's contrast (``TRAVEL``,
:func:`reportgen.analyses.patterns.ascent.step_size`), and a layer whose
pre-activation is affine in the image (a first conv layer) climbs its
activation from a noise start with its mean brightness kept
(``first_layer_mode``): the mean of an affine map has the same gradient at
every interior pixel, so the usual objective can only show a flat image.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from reportgen import graph
from reportgen.analyses import patterns as fp
from reportgen.analyses.patterns import cost as pattern_cost
from reportgen.analyses.patterns import layers as P
from reportgen.analyses.patterns import rise
from reportgen.analyses.patterns.layers import (  # noqa: F401  (the section's documented defaults)
    DEFAULT_SIZE,
    DEFAULT_STEPS,
    MAX_SIZE,
    MIN_SIZE,
    OBJECTIVE,
    TRAVEL,
    layer_steps,
)
from reportgen.anchors import anchor_id
from reportgen.context import Context, SectionResult
from reportgen.errors import UserError
from reportgen.figures import Figure

TITLE = "Filter patterns"
NEEDS = ("patterns",)


def _input_hw(model: Any) -> tuple[int | None, int | None] | None:
    return P.input_hw(model)


def settings(ctx: Context, refs: list[graph.LayerRef] | None = None) -> tuple[int, int | None]:
    """(size, steps) for this report (:func:`reportgen.analyses.patterns.layers.size_and_steps`)."""
    return P.size_and_steps(ctx.model, ctx.options.pattern_size, ctx.options.pattern_steps, refs)


def select(ctx: Context) -> list[graph.LayerRef]:
    return P.select(ctx.model, ctx.options.pattern_layers)


def validate(ctx: Context) -> None:
    opts = ctx.options
    if opts.pattern_filters is not None and opts.pattern_filters < 1:
        raise UserError(f"--pattern-filters must be at least 1 (got {opts.pattern_filters})")
    if opts.pattern_size is not None and not MIN_SIZE <= opts.pattern_size <= MAX_SIZE:
        raise UserError(
            f"--pattern-size must be between {MIN_SIZE} and {MAX_SIZE} pixels (got {opts.pattern_size})"
        )
    if opts.pattern_steps is not None and opts.pattern_steps < 1:
        raise UserError(f"--pattern-steps must be at least 1 (got {opts.pattern_steps})")
    if opts.pattern_style not in fp.STYLES:
        raise UserError(
            f"--pattern-style '{opts.pattern_style}' is not known; use one of {', '.join(fp.STYLES)}"
        )
    if opts.pattern_layers:
        if _input_hw(ctx.model) is None:
            raise UserError(
                "--pattern-layers: filter patterns need a model with one image input (N, H, W, C); "
                "leave out the patterns section with --sections"
            )
        select(ctx)


def _mosaic_title(result: fp.PatternResult, class_name: str) -> str:
    return (
        f"{result.path} ({class_name}): filters {result.filters[0]}–{result.filters[-1]}, "
        f"{result.size}×{result.size} px, {result.steps} steps, {result.style}"
        + ("" if result.objective == "pre-activation" else f", {result.objective}, {result.start} start")
    )


def _round(values: np.ndarray, digits: int = 6) -> list[float]:
    return [float(f"{v:.{digits}g}") for v in np.asarray(values, dtype=np.float64)]


def run(ctx: Context) -> SectionResult:
    opts = ctx.options
    view: dict = {
        "layers": [],
        "note": None,
        "style": opts.pattern_style,
        "seed": opts.seed,
        "user_layers": bool(opts.pattern_layers),
    }
    found = ctx.analyses.patterns
    view["filters"] = found.filters
    if found.note:
        view["note"] = found.note
        return SectionResult(json={}, view=view)
    refs, size, steps = found.refs, found.size, found.steps
    view["size"], view["steps"] = size, steps
    view["min_size_note"] = None
    if opts.pattern_size is None and size > min([DEFAULT_SIZE] + [d for d in _input_hw(ctx.model) if d]):
        view["min_size_note"] = (
            f"{size} px: the smallest image whose pass still reaches {refs[-1].path} "
            "with a map of at least one pixel"
        )
    preprocessor = ctx.analyses.preprocessor
    view["preprocess"] = preprocessor.describe()
    channels_in = int(graph.image_input(ctx.model).shape[-1])
    view["step"] = fp.pixel_step(preprocessor, channels_in)
    view["visible_std"] = rise.VISIBLE_STD
    view["objective"] = OBJECTIVE
    view["travel"] = TRAVEL if opts.pattern_style == "classic" else None
    view["budget_gflop"] = pattern_cost.STEP_BUDGET_FLOPS / 1e9
    view["min_steps"], view["max_steps"] = pattern_cost.MIN_STEPS, pattern_cost.MAX_STEPS
    margin = float(ctx.analyses.thresholds.pattern_rise_margin)
    tolerance = float(ctx.analyses.thresholds.pattern_min_rise)
    view["rise_margin"] = margin
    total_convs = len(graph.pattern_candidates(ctx.model))
    blocks = graph.token_blocks(ctx.model)
    view["transformer"] = None
    if blocks:
        view["transformer"] = (
            "A transformer block's channel is maximised as its mean over the patch tokens, as "
            "feature-visualisation work on ViTs does (Ghiasi et al. 2022). Expect less crisp "
            "patterns than a CNN's: attention mixes every patch with every other, so a "
            "channel rarely has one local texture to show."
        )
    if opts.pattern_layers:
        view["selection"] = f"{len(refs)} layer(s) chosen with --pattern-layers"
    elif blocks:
        view["selection"] = (
            f"{len(refs)} of the {len(blocks)} transformer blocks, each channel's mean over the "
            "patch tokens (choose others with --pattern-layers)"
        )
    elif total_convs <= graph.MAX_ALL_PATTERN_LAYERS:
        view["selection"] = f"all {total_convs} conv layers"
    else:
        view["selection"] = (
            f"the first conv layer of each resolution stage, {len(refs)} of {total_convs} conv "
            "layers (choose others with --pattern-layers)"
        )
    patterns_json: dict = {}
    for ref in refs:
        lp = found.layers[ref.path]
        result, channels, affine, nonlinear = lp.result, lp.channels, lp.affine, lp.nonlinear
        first_layer_mode, n_steps = lp.first_layer_mode, result.steps
        filters = list(result.filters)
        entry = result.to_json()
        entry["activation_start"] = _round(result.activation_start)
        entry["activation_end"] = _round(result.activation_end)
        entry["preprocess"] = preprocessor.mode
        entry["channels"] = channels
        tally = rise.counts(result.activation_start, result.activation_end, margin, tolerance)
        entry["affine_in_image"] = affine
        entry["rise_margin"] = margin
        entry.update(tally)  # rose, barely_moved, flat: every filter shown in exactly one
        entry["visible"] = int(rise.visible(result.images).sum())
        patterns_json[ref.path] = entry
        flat = [bool(f) for f in rise.flat(result.activation_start, result.activation_end, tolerance)]
        view["layers"].append(
            {
                "path": ref.path,
                "class_name": ref.class_name,
                "anchor": anchor_id("patterns", ref.path),
                "figure": Figure(
                    "patterns.mosaic",
                    result.images,
                    size=result.size,
                    title=_mosaic_title(result, ref.class_name),
                    filters=filters,
                    flat=flat,
                    rose=[bool(r) for r in rise.rose(result.activation_start, result.activation_end, margin)],
                ),
                "shown": len(filters),
                "channels": channels,
                "dead": [f for f, is_flat in zip(result.filters, flat) if is_flat],
                "mean_start": float(np.mean(result.activation_start)),
                "mean_end": float(np.mean(result.activation_end)),
                "rose": tally["rose"],
                "visible": int(rise.visible(result.images).sum()),
                "barely_moved": tally["barely_moved"],
                "flat": tally["flat"],
                "steps": n_steps,
                "step_px": None if result.step is None else result.step / max(view["step"], 1e-30),
                "start": result.start,
                "objective": result.objective,
                "affine": affine,
                "first_layer_mode": first_layer_mode,
                "retried": result.retried,
                "linear_affine": affine and not nonlinear,
                "seconds": result.seconds,
                "chunk": result.chunk,
            }
        )
    view["figure_ids"] = {L["anchor"] for L in view["layers"]}
    return SectionResult(json={"patterns": patterns_json}, view=view)
