"""The report's filter patterns: which layers, at what size and how many steps, and the ascent on each.

The computation the ``patterns`` section describes and the findings read
(flat filters): a typed :class:`PatternSet`, no figures. The defaults that
depend on the model are resolved here, once: the layers (every conv layer of a
small model, else the first of each stage), the size (64 px within the
model's input sizes and minimum input size) and the steps per layer (fitted to
the compute budget, :mod:`reportgen.analyses.patterns.cost`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from reportgen import graph
from reportgen.analyses.patterns import cost as pattern_cost
from reportgen.analyses.patterns.ascent import PatternResult, filter_patterns
from reportgen.analyses.patterns.objective import affine_in_image, has_nonlinear_activation

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


@dataclass
class LayerPatterns:
    """One layer's ascent and what decided how it ran."""

    ref: graph.LayerRef
    result: PatternResult
    channels: int
    affine: bool  # the layer's mean pre-activation is an affine function of the image (a first conv)
    nonlinear: bool  # the layer has a non-linear activation of its own
    first_layer_mode: bool  # climbed the activation from a noise start, keeping the image's mean


@dataclass
class PatternSet:
    """Every chosen layer's patterns, or why there are none (``note``)."""

    layers: dict[str, LayerPatterns] = field(default_factory=dict)
    size: int | None = None
    steps: int | None = None  # the user's --pattern-steps; None: fitted per layer
    refs: list[graph.LayerRef] = field(default_factory=list)
    note: str | None = None
    filters: int | None = None  # filters wanted per layer (--pattern-filters, else the default)
    tolerance: float | None = None  # the rise under which a filter is flat (pattern_min_rise), as used

    @property
    def results(self) -> dict[str, PatternResult]:
        return {p: lp.result for p, lp in self.layers.items()}


def input_hw(model: Any) -> tuple[int | None, int | None] | None:
    spec = graph.image_input(model)
    return None if spec is None else (spec.shape[1], spec.shape[2])


def select(model: Any, pattern_layers: Any) -> list[graph.LayerRef]:
    """``--pattern-layers``, else the default layers (:func:`reportgen.graph.default_pattern_layers`)."""
    if pattern_layers:
        return graph.find_layers(graph.pattern_candidates(model), pattern_layers, "--pattern-layers")
    return graph.default_pattern_layers(model)


DEFAULT_FILTERS, TRANSFORMER_FILTERS = 64, 16


def filters_wanted(model: Any, pattern_filters: int | None) -> int:
    """``--pattern-filters``, else 64 (an 8x8 mosaic), or 16 for a transformer's blocks: each step of their
    ascent runs the encoder up to the block for every filter (ViT-S/16 at its 224 px, 64 filters on 6 blocks:
    over 15 minutes on 2 cores; bench/hub.py)."""
    if pattern_filters is not None:
        return int(pattern_filters)
    return TRANSFORMER_FILTERS if graph.token_blocks(model) else DEFAULT_FILTERS


def size_and_steps(
    model: Any, pattern_size: int | None, pattern_steps: int | None, refs: list[graph.LayerRef] | None = None
) -> tuple[int, int | None]:
    """(size, steps): the user's, else the defaults; steps None: fitted per layer (:func:`layer_steps`).

    The default size is 64 px (a transformer's own fixed input size), at most a fixed model input's size, and
    at least the model's minimum input size for the deepest chosen layer: valid
    convolutions and pooling shrink the image (InceptionV3's last stage needs
    75 px), so the size grows until that layer still has a map of at least
    one pixel (:func:`reportgen.graph.min_input_size`).
    """
    steps = None if pattern_steps is None else int(pattern_steps)
    if pattern_size is not None:
        return int(pattern_size), steps
    hw = input_hw(model)
    fixed = [d for d in (hw or ()) if d is not None]
    if fixed and graph.token_blocks(model):
        # A transformer takes only its own size: its position embeddings (ViT, DeiT) and windows (Swin)
        # are laid out for that many patches.
        return max(int(d) for d in fixed), steps
    size = max(MIN_SIZE, min([DEFAULT_SIZE] + [int(d) for d in fixed]))
    if refs:
        size = max(size, graph.min_input_size(model, refs[-1].path, size, limit=max([MAX_SIZE] + fixed)))
    return size, steps


def layer_steps(model: Any, path: str, size: int, filters: int) -> int:
    """The default steps for one layer: as many as fit the compute budget, 20 to 200 (see cost.py)."""
    try:
        macs = pattern_cost.macs_up_to(model, path, size)
    except Exception:  # noqa: BLE001  (a model the cost count cannot trace keeps the floor)
        return DEFAULT_STEPS
    return pattern_cost.steps_within_budget(macs, filters)


def compute(
    model: Any,
    options: Any,
    preprocessor: Any,
    feeds: Any = None,
    progress: Callable[..., Any] | None = None,
    tolerance: float | None = None,
) -> PatternSet:
    """The ascent on each chosen layer's first ``options.pattern_filters`` filters. ``tolerance``: the
    configured ``pattern_min_rise``, so that the ascent's ``dead`` (and its retries) and the finding agree."""
    wanted = filters_wanted(model, options.pattern_filters)
    if input_hw(model) is None:
        return PatternSet(
            note="The model's input is not an image, so its filters have no image patterns to show.",
            filters=wanted,
        )
    refs = select(model, options.pattern_layers)
    if not refs:
        return PatternSet(
            note="The model has no conv layer with a 2-D output, so there are no filter patterns to show.",
            filters=wanted,
        )
    size, steps = size_and_steps(model, options.pattern_size, options.pattern_steps, refs)
    out = PatternSet(size=size, steps=steps, refs=refs, filters=wanted, tolerance=tolerance)
    classic = options.pattern_style == "classic"
    for ref in refs:
        channels = int(ref.map_shape[-1]) if ref.map_shape else wanted
        filters = list(range(min(wanted, channels)))
        n_steps = steps if steps is not None else layer_steps(model, ref.path, size, len(filters))
        affine = affine_in_image(model, ref.path, size)
        nonlinear = has_nonlinear_activation(graph.anatomy(model).layer(ref.path))
        first_layer_mode = classic and affine and nonlinear
        bar = progress(total=len(filters) * n_steps, desc=f"patterns {ref.path}") if progress else None
        try:
            result = filter_patterns(
                model,
                ref.path,
                filters,
                size,
                n_steps,
                preprocessor,
                seed=options.seed,
                style=options.pattern_style,
                tick=bar.update if bar is not None else None,
                objective="activation" if first_layer_mode else OBJECTIVE,
                feeds=feeds,
                start="noise" if first_layer_mode else "grey",
                travel=TRAVEL if classic else None,
                keep_mean=first_layer_mode,
                **({} if tolerance is None else {"tolerance": tolerance}),
            )
        finally:
            if bar is not None:
                bar.close()
        out.layers[ref.path] = LayerPatterns(ref, result, channels, affine, nonlinear, first_layer_mode)
    return out
