"""Filter patterns: for each chosen conv layer, the inputs that maximise its filters.

The ascent is :mod:`reportgen.analyses.patterns`; this module picks the
layers and settings, draws ONE 8-wide mosaic per layer (filter indices in the
corners, the layer name as title, filters whose objective did not rise marked
*flat*), and writes
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

from typing import Any, Callable

import numpy as np

from reportgen import graph
from reportgen.analyses import patterns as fp
from reportgen.analyses.patterns import cost as pattern_cost
from reportgen.analyses.patterns import rise
from reportgen.analyses.patterns.objective import affine_in_image, has_nonlinear_activation
from reportgen.anchors import anchor_id
from reportgen.context import Context, SectionResult
from reportgen.errors import UserError
from reportgen.plots import DPI, Later, fig_to_uri, mosaic, pyplot
from reportgen.preprocessing import Preprocessor

TITLE = "Filter patterns"
COLUMNS = 8
# Defaults sized so that a default VGG16 report (five layers x 64 filters)
# spends at most ~3 minutes here on a 2-core CPU (see docs/benchmarks.md);
# the tutorial's settings are --pattern-size 150 --pattern-steps 40.
DEFAULT_SIZE = 64
DEFAULT_STEPS = pattern_cost.MIN_STEPS  # the fewest a layer gets by default; cheap layers get more
# The classic ascent moves each pixel, in RMS over all its steps, TRAVEL times the start
# image's RMS contrast (grey start: 5.8 pixel units, so 115 in all, about the 120 of the
# keras.io tutorial's 30 steps of 10 on an L2-normalised gradient; noise start: 74, so
# 1,472), whatever the number of steps. At the earlier fixed 20 steps of one pixel unit
# (travel 3.5) the demo's mosaics were mostly their start noise.
TRAVEL = 20.0
MIN_SIZE, MAX_SIZE = 8, 1024
OBJECTIVE = "pre-activation"  # measured in bench/pattern_objective.py: every filter alive on data rises
TILE_MIN_PX = 56  # small patterns (28 px for MNIST-sized models) are enlarged, nearest-neighbour
JPEG_ABOVE = 350_000  # bytes: noisy classic patterns compress badly as PNG


def _input_hw(model: Any) -> tuple[int | None, int | None] | None:
    spec = graph.image_input(model)
    return None if spec is None else (spec.shape[1], spec.shape[2])


def settings(ctx: Context, refs: list[graph.LayerRef] | None = None) -> tuple[int, int | None]:
    """(size, steps): the user's, else the defaults; steps None: fitted per layer (:func:`layer_steps`).

    The default size is 64 px, at most a fixed model input's size, and at
    least the model's minimum input size for the deepest chosen layer: valid
    convolutions and pooling shrink the image (InceptionV3's last stage needs
    75 px), so the size grows until that layer still has a map of at least
    one pixel (:func:`reportgen.graph.min_input_size`).
    """
    opts = ctx.options
    steps = None if opts.pattern_steps is None else int(opts.pattern_steps)
    if opts.pattern_size is not None:
        return int(opts.pattern_size), steps
    hw = _input_hw(ctx.model)
    fixed = [d for d in (hw or ()) if d is not None]
    size = max(MIN_SIZE, min([DEFAULT_SIZE] + [int(d) for d in fixed]))
    if refs:
        size = max(size, graph.min_input_size(ctx.model, refs[-1].path, size, limit=max([MAX_SIZE] + fixed)))
    return size, steps


def layer_steps(model: Any, path: str, size: int, filters: int) -> int:
    """The default steps for one layer: as many as fit the compute budget, 20 to 200 (see cost.py)."""
    try:
        macs = fp.macs_up_to(model, path, size)
    except Exception:  # noqa: BLE001  (a model the cost count cannot trace keeps the floor)
        return DEFAULT_STEPS
    return pattern_cost.steps_within_budget(macs, filters)


def select(ctx: Context) -> list[graph.LayerRef]:
    opts = ctx.options
    if opts.pattern_layers:
        return graph.find_layers(graph.pattern_candidates(ctx.model), opts.pattern_layers, "--pattern-layers")
    return graph.default_pattern_layers(ctx.model)


def validate(ctx: Context) -> None:
    opts = ctx.options
    if opts.pattern_filters < 1:
        raise UserError(f"--pattern-filters must be at least 1 (got {opts.pattern_filters})")
    if opts.pattern_size is not None and not MIN_SIZE <= opts.pattern_size <= MAX_SIZE:
        raise UserError(f"--pattern-size must be between {MIN_SIZE} and {MAX_SIZE} pixels "
                        f"(got {opts.pattern_size})")
    if opts.pattern_steps is not None and opts.pattern_steps < 1:
        raise UserError(f"--pattern-steps must be at least 1 (got {opts.pattern_steps})")
    if opts.pattern_style not in fp.STYLES:
        raise UserError(f"--pattern-style '{opts.pattern_style}' is not known; use one of {', '.join(fp.STYLES)}")
    if opts.pattern_layers:
        if _input_hw(ctx.model) is None:
            raise UserError("--pattern-layers: filter patterns need a model with one image input (N, H, W, C); "
                            "leave out the patterns section with --sections")
        select(ctx)
    ctx.preprocessor  # noqa: B018  (a bad --preprocess fails now)


def _ticker(ctx: Context, desc: str, total: int) -> tuple[Callable[[int], None], Callable[[], None]]:
    """A per-layer progress bar driven by ``tick(n)``; ``done()`` closes it."""
    if ctx.progress is None:
        return (lambda n: None), (lambda: None)
    bar = ctx.progress(total=total, desc=desc)
    return bar.update, bar.close


def _tiles(result: fp.PatternResult) -> list[np.ndarray]:
    k = max(1, int(np.ceil(TILE_MIN_PX / result.size)))
    tiles = []
    for img in result.images:
        t = img[..., 0] if img.shape[-1] == 1 else img
        tiles.append(np.repeat(np.repeat(t, k, axis=0), k, axis=1) if k > 1 else t)
    return tiles


def _draw(result: fp.PatternResult, class_name: str, margin_rise: float = rise.RISE_MARGIN,
          tolerance: float = rise.FLAT_TOLERANCE) -> Any:
    """The 8-wide mosaic on black margins, filter indices, layer name as title, flat filters in red,
    filters that barely moved (rose by less than ``margin_rise`` of their activation scale) marked "barely"."""
    from matplotlib.patches import Rectangle

    plt = pyplot()

    tiles = _tiles(result)
    th, tw = tiles[0].shape[:2]
    margin = max(2, th // 20)
    grid = mosaic(tiles, columns=COLUMNS, margin=margin, fill=0)
    gh, gw = grid.shape[:2]
    width_in = max(3.0, gw / DPI)
    title_in = 0.3
    height_in = width_in * gh / gw + title_in
    fig = plt.figure(figsize=(width_in, height_in))
    ax = fig.add_axes((0, 0, 1, (height_in - title_in) / height_in))
    ax.imshow(grid, cmap="gray" if grid.ndim == 2 else None, vmin=0, vmax=255, interpolation="nearest")
    ax.set_axis_off()
    fig.suptitle(f"{result.path} ({class_name}): filters {result.filters[0]}–{result.filters[-1]}, "
                 f"{result.size}×{result.size} px, {result.steps} steps, {result.style}"
                 + ("" if result.objective == "pre-activation" else f", {result.objective}, {result.start} start"),
                 fontsize=8, x=0.01, ha="left", y=1 - 0.06 / height_in, va="top")
    dead = {f for f, is_flat in zip(result.filters, rise.flat(result.activation_start, result.activation_end,
                                                               tolerance)) if is_flat}
    up = rise.rose(result.activation_start, result.activation_end, margin_rise)
    fontsize = 6 if tw >= 60 else 5
    for i, f in enumerate(result.filters):
        r, c = divmod(i, COLUMNS)
        y, x = margin + r * (th + margin), margin + c * (tw + margin)
        is_dead = f in dead
        barely = not is_dead and not up[i]
        label = f"{f} flat" if is_dead else f"{f} barely" if barely else str(f)
        ax.text(x + 1, y + 1, label, color="white", fontsize=fontsize, va="top", ha="left",
                bbox=dict(facecolor="#c0392b" if is_dead else "#666666" if barely else "black", alpha=0.7,
                          pad=0.5, linewidth=0))
        if is_dead:
            ax.add_patch(Rectangle((x - 0.5, y - 0.5), tw, th, fill=False, edgecolor="#e74c3c", linewidth=1.2))
    return fig


def mosaic_figure(result: fp.PatternResult, class_name: str, margin_rise: float = rise.RISE_MARGIN,
                  tolerance: float = rise.FLAT_TOLERANCE) -> str:
    """ONE picture per layer: PNG, or JPEG when the PNG would be large (noisy classic patterns)."""
    uri = fig_to_uri(_draw(result, class_name, margin_rise, tolerance), dpi=DPI)
    if len(uri) * 3 // 4 > JPEG_ABOVE:
        uri = fig_to_uri(_draw(result, class_name, margin_rise, tolerance), dpi=DPI, fmt="jpeg")
    return uri


def _round(values: np.ndarray, digits: int = 6) -> list[float]:
    return [float(f"{v:.{digits}g}") for v in np.asarray(values, dtype=np.float64)]



def run(ctx: Context) -> SectionResult:
    opts = ctx.options
    view: dict = {"layers": [], "note": None, "style": opts.pattern_style,
                  "seed": opts.seed, "filters": opts.pattern_filters, "user_layers": bool(opts.pattern_layers)}
    if _input_hw(ctx.model) is None:
        view["note"] = "The model's input is not an image, so its filters have no image patterns to show."
        return SectionResult(json={}, view=view)
    refs = select(ctx)
    if not refs:
        view["note"] = "The model has no conv layer with a 2-D output, so there are no filter patterns to show."
        return SectionResult(json={}, view=view)
    size, steps = settings(ctx, refs)
    view["size"], view["steps"] = size, steps
    view["min_size_note"] = None
    if opts.pattern_size is None and size > min([DEFAULT_SIZE] + [d for d in _input_hw(ctx.model) if d]):
        view["min_size_note"] = (f"{size} px: the smallest image whose pass still reaches {refs[-1].path} "
                                 "with a map of at least one pixel")
    preprocessor = ctx.preprocessor
    view["preprocess"] = preprocessor.describe()
    channels_in = int(graph.image_input(ctx.model).shape[-1])
    view["step"] = fp.pixel_step(preprocessor, channels_in)
    view["objective"] = OBJECTIVE
    view["travel"] = TRAVEL if opts.pattern_style == "classic" else None
    view["budget_gflop"] = pattern_cost.STEP_BUDGET_FLOPS / 1e9
    view["min_steps"], view["max_steps"] = pattern_cost.MIN_STEPS, pattern_cost.MAX_STEPS
    margin = float(ctx.thresholds.pattern_rise_margin)
    tolerance = float(ctx.thresholds.pattern_min_rise)
    view["rise_margin"] = margin
    total_convs = len(graph.pattern_candidates(ctx.model))
    if opts.pattern_layers:
        view["selection"] = f"{len(refs)} layer(s) chosen with --pattern-layers"
    elif total_convs <= graph.MAX_ALL_PATTERN_LAYERS:
        view["selection"] = f"all {total_convs} conv layers"
    else:
        view["selection"] = (f"the first conv layer of each resolution stage, {len(refs)} of {total_convs} conv "
                             "layers (choose others with --pattern-layers)")
    patterns_json: dict = {}
    results: dict[str, fp.PatternResult] = {}
    ctx.analyses["patterns"] = results
    for ref in refs:
        channels = int(ref.output_shape[-1]) if ref.output_shape else opts.pattern_filters
        filters = list(range(min(opts.pattern_filters, channels)))
        n_steps = steps if steps is not None else layer_steps(ctx.model, ref.path, size, len(filters))
        classic = opts.pattern_style == "classic"
        affine = affine_in_image(ctx.model, ref.path, size)
        nonlinear = has_nonlinear_activation(graph.anatomy(ctx.model).layer(ref.path))
        first_layer_mode = classic and affine and nonlinear
        tick, done = _ticker(ctx, f"patterns {ref.path}", len(filters) * n_steps)
        try:
            result = fp.filter_patterns(ctx.model, ref.path, filters, size, n_steps, preprocessor,
                                        seed=opts.seed, style=opts.pattern_style, tick=tick,
                                        objective="activation" if first_layer_mode else OBJECTIVE,
                                        feeds=ctx.feeds, start="noise" if first_layer_mode else "grey",
                                        travel=TRAVEL if classic else None, keep_mean=first_layer_mode)
        finally:
            done()
        results[ref.path] = result
        entry = result.to_json()
        entry["activation_start"] = _round(result.activation_start)
        entry["activation_end"] = _round(result.activation_end)
        entry["preprocess"] = preprocessor.mode
        entry["channels"] = channels
        tally = rise.counts(result.activation_start, result.activation_end, margin, tolerance)
        entry["affine_in_image"] = affine
        entry["rise_margin"] = margin
        entry.update(tally)  # rose, barely_moved, flat: every filter shown in exactly one
        patterns_json[ref.path] = entry
        view["layers"].append({
            "path": ref.path,
            "class_name": ref.class_name,
            "anchor": anchor_id("patterns", ref.path),
            "figure": Later(mosaic_figure, result, ref.class_name, margin, tolerance),
            "shown": len(filters),
            "channels": channels,
            "dead": [f for f, is_flat in zip(result.filters, rise.flat(result.activation_start,
                                                                        result.activation_end, tolerance)) if is_flat],
            "mean_start": float(np.mean(result.activation_start)),
            "mean_end": float(np.mean(result.activation_end)),
            "rose": tally["rose"],
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
        })
    view["figure_ids"] = {L["anchor"] for L in view["layers"]}
    return SectionResult(json={"patterns": patterns_json}, view=view)
