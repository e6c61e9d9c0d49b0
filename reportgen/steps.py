"""The report's analyses, one function each: the parameters name the inputs, the scheduler
(:mod:`reportgen.scheduler`) reads the graph from them, and the return value is what sections, notes,
checks and ``settings`` read from :class:`~reportgen.scheduler.Results`.

Each function only gathers its inputs and calls the analysis that does the work (``reportgen.analyses``,
``reportgen.images``): the work stays testable on its own, and this page stays a map of the report.
Analyses marked ``early`` read the user's files; they run before the sections' checks, so that bad input
is exit 2 before any expensive work.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from reportgen.scheduler import analysis

# --- the inputs: options, files, what the model's output is -------------------------------------------


@analysis(early=True)
def thresholds(options: Any) -> Any:
    """The findings' thresholds: ``--config``, else ``[tool.reportgen]``, else the defaults."""
    from reportgen import config

    return config.load(options.config)


@analysis(early=True)
def feeds(model: Any, options: Any) -> Any:
    """The model's inputs around its image input (:mod:`reportgen.graph.inputs`)."""
    from reportgen.graph.inputs import feeds_for

    return feeds_for(model, options.inputs)


@analysis(early=True)
def head(model: Any, options: Any) -> Any:
    """What the chosen model output is (:func:`reportgen.analyses.cam.classifier_head`)."""
    from reportgen.analyses.cam import classifier_head

    return classifier_head(model, options.output)


@analysis(early=True)
def folder(options: Any, head: Any) -> Any:
    """The ``--images`` folders' files and labels (:mod:`reportgen.images.folders`); None without folders."""
    if not options.image_dirs:
        return None
    from reportgen import images
    from reportgen.analyses.labels import head_units
    from reportgen.images import folders

    names = images.load_class_names(options.class_names) if options.class_names else None
    return folders.scan(options.image_dirs, names, head_units(head))


@analysis(early=True)
def class_names(loaded: Any, options: Any, head: Any, folder: Any) -> list[str] | None:
    """Names for the outputs (:func:`reportgen.analyses.labels.class_names`)."""
    from reportgen.analyses.labels import class_names as names, head_units

    return names(loaded, options, head_units(head), folder)


@analysis(early=True)
def convention(loaded: Any, model: Any, options: Any, head: Any, folder: Any, feeds: Any) -> Any:
    """Each candidate pixel convention's accuracy, measured on labelled ``--images`` when nothing else says
    how pixels were scaled (:mod:`reportgen.analyses.convention`); None otherwise."""
    from reportgen.preprocessing import Preprocessor

    if folder is None or not folder.labelled:
        return None
    if not Preprocessor.resolve(options.preprocess, loaded.architecture, model).guessed:
        return None
    from reportgen.analyses import convention as C
    from reportgen.images import image_input_spec

    spec = image_input_spec(model)
    return None if spec is None else C.measure(model, head, folder, spec, feeds)


@analysis(early=True)
def preprocessor(loaded: Any, model: Any, options: Any, convention: Any) -> Any:
    """The one pixel -> model-input conversion of this report, with where it came from.

    ``--preprocess``, else what the model says (its architecture, its own scaling), else -- with labelled
    ``--images`` folders -- the convention measured best on them, else a guess that the report names as one.
    """
    from reportgen.preprocessing import Preprocessor

    pre = Preprocessor.resolve(options.preprocess, loaded.architecture, model)
    if pre.guessed and convention is not None:
        chosen = convention.chosen
        if chosen:
            return Preprocessor(chosen, convention.why(), "measured")
        return pre.with_source("default", convention.why())
    return pre


@analysis(early=True)
def images(loaded: Any, options: Any, preprocessor: Any, folder: Any) -> list:
    """The images the report shows and explains (:func:`reportgen.images.prepare_inputs`)."""
    from reportgen.images import prepare_inputs

    return prepare_inputs(loaded, options.images, preprocessor, folder, options.sample)


# --- the weights ----------------------------------------------------------------------------------------


@analysis
def weights(model: Any, options: Any, thresholds: Any, progress: Callable[..., Any] | None) -> dict:
    """Every weighted layer's :class:`~reportgen.analyses.weights.LayerWeights`, one layer at a time."""
    from reportgen.analyses.weights import weight_analysis

    return weight_analysis(model, options.seed, progress, thresholds.dead_kernel_norm)


@analysis
def weight_findings(weights: dict, thresholds: Any) -> list:
    """The weight-only checks over every layer, once: the findings, weights and kernels sections read them."""
    from reportgen.analyses.findings import weight_findings as check

    return check(weights, thresholds)


@dataclass(frozen=True)
class KernelGrids:
    """Every conv layer's kernel grid (``grids``), the ones the page details (``shown``) and why."""

    convs: list
    grids: dict
    shown: list
    why: str
    # The first conv layer's freshly initialised kernel as a grid on the trained grid's channel and scale,
    # so the two compare tile for tile (None: not detailed, or no initialiser to draw from).
    untrained: dict | None


@analysis
def kernel_grids(model: Any, options: Any, weight_findings: list) -> KernelGrids:
    """Each conv layer's kernels as tiles (:func:`reportgen.analyses.kernel_grid.kernel_grid`); the layers
    with a dead or duplicate filter are among those detailed."""
    from reportgen import graph
    from reportgen.analyses.kernel_grid import fresh_kernel, kernel_grid, pointwise_matrix

    convs = graph.conv_layers(model)
    paths = {r.path for r in convs}
    kinds = ("dead_filter", "duplicate_filters")
    flagged = {f["layer"] for f in weight_findings if f["kind"] in kinds and f["layer"] in paths}
    shown, why = graph.detail_layers(convs, options.layers or (), flagged)
    grids = {}
    for i, ref in enumerate(convs):
        grid = kernel_grid(ref.layer, options.max_filters, options.kernel_channel, rgb=i == 0)
        pointwise = pointwise_matrix(ref.layer)
        if pointwise is not None:
            grid["pointwise"] = pointwise
        grids[ref.path] = grid
    untrained = None
    if convs and any(r.path == convs[0].path for r in shown):
        first, grid = convs[0], grids[convs[0].path]
        fresh = fresh_kernel(first, options.seed)
        if fresh is not None:
            untrained = kernel_grid(
                first.layer, options.max_filters, grid["channel"], limit=grid["limit"], values=fresh
            )
    return KernelGrids(convs, grids, shown, why, untrained)


# --- the units on the images ----------------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureMaps:
    """The chosen layers' activations on the report's images, and how the layers were chosen."""

    refs: list
    layers: list  # reportgen.analyses.feature_maps.LayerMaps, in model order
    user: bool  # chosen with --layers


@analysis
def feature_maps(model: Any, options: Any, images: list, feeds: Any) -> FeatureMaps | None:
    """The activations of the feature-map layers (:mod:`reportgen.analyses.feature_maps`); None without
    images."""
    if not images:
        return None
    from reportgen.analyses import feature_maps as F

    refs = F.select_layers(model, options.layers)
    batch = np.stack([im.input for im in images])
    return FeatureMaps(refs, F.compute(model, refs, batch, feeds), bool(options.layers))


@analysis
def dataset(
    model: Any,
    options: Any,
    folder: Any,
    preprocessor: Any,
    head: Any,
    feeds: Any,
    thresholds: Any,
    progress: Callable[..., Any] | None,
) -> Any:
    """Statistics over every image of the folders, and the data-set review over them
    (:mod:`reportgen.analyses.dataset_review`); None without folders."""
    if folder is None:
        return None
    from reportgen.analyses.dataset_review import for_report

    return for_report(model, options, folder, preprocessor, head, feeds, thresholds, progress)


@analysis
def activity(model: Any, options: Any, dataset: Any, images: list, feeds: Any, thresholds: Any) -> Any:
    """How each unit behaves on the report's images: every image of the folders, else the shown ones; None
    when the report looks at no image (neither ``--images`` nor an image section)."""
    from reportgen.analyses import activations as A

    if dataset is not None:
        return dataset.activity
    if not images or not {"features", "gradcam"} & set(options.sections):
        return None
    x = np.stack([np.asarray(im.input, dtype=np.float32) for im in images])
    return A.unit_activity(
        model,
        A.batches_of(x, A.batch_size(model)),
        feeds,
        thresholds.dead_activation,
        thresholds.saturation_margin,
    )


# --- explanations ---------------------------------------------------------------------------------------


@analysis
def cams(
    model: Any,
    options: Any,
    images: list,
    head: Any,
    feeds: Any,
    class_names: list[str] | None,
    progress: Callable[..., Any] | None,
) -> Any:
    """The class activation maps of every chosen method (:mod:`reportgen.analyses.cam.explained`)."""
    from reportgen.analyses.cam.explained import for_report

    explained = head if images else None
    names = class_names if images and head.units is not None and not head.is_map else None
    return for_report(
        model,
        images,
        explained,
        feeds,
        methods=options.cam,
        top_k=options.top_k,
        layer_name=options.gradcam_layer,
        output=options.output,
        names=names,
        progress=progress,
    )


@analysis
def attention(model: Any, images: list, feeds: Any) -> Any:
    """A transformer's attention on the report's images (:mod:`reportgen.analyses.attention`); None without
    images."""
    if not images:
        return None
    from reportgen.analyses.attention import analyse

    return analyse(model, np.stack([np.asarray(im.input, dtype=np.float32) for im in images]), feeds)


@analysis
def sanity(
    model: Any,
    options: Any,
    cams: Any,
    images: list,
    thresholds: Any,
    feeds: Any,
    progress: Callable[..., Any] | None,
) -> Any:
    """The CAM sanity cascade for each method, or why it did not run (:mod:`reportgen.analyses.sanity`)."""
    from reportgen.analyses.sanity import run_for

    return run_for(
        model, cams, images, options.cam, thresholds, seed=options.seed, feeds=feeds, progress=progress
    )


@analysis
def faithfulness(
    model: Any,
    options: Any,
    cams: Any,
    images: list,
    feeds: Any,
    thresholds: Any,
    progress: Callable[..., Any] | None,
) -> Any:
    """Each CAM against a random and an edge map, by deletion and insertion
    (:mod:`reportgen.analyses.cam.faithfulness`)."""
    from reportgen.analyses.cam.faithfulness import for_report

    return for_report(
        model,
        cams,
        images,
        feeds,
        seed=options.seed,
        progress=progress,
        steps=options.faithfulness_steps,
        informative=thresholds.faithfulness_informative,
    )


# --- what the filters respond to ------------------------------------------------------------------------


@analysis
def patterns(
    model: Any,
    options: Any,
    preprocessor: Any,
    feeds: Any,
    thresholds: Any,
    progress: Callable[..., Any] | None,
) -> Any:
    """The filter patterns of the chosen layers (:mod:`reportgen.analyses.patterns.layers`)."""
    from reportgen.analyses.patterns.layers import compute

    return compute(model, options, preprocessor, feeds, progress, thresholds.pattern_min_rise)


# --- robustness -----------------------------------------------------------------------------------------


@analysis
def robustness(
    model: Any,
    options: Any,
    folder: Any,
    images: list,
    preprocessor: Any,
    head: Any,
    feeds: Any,
    class_names: list[str] | None,
    progress: Callable[..., Any] | None,
) -> Any:
    """The model under the common corruptions and L-infinity attacks (:mod:`reportgen.analyses.robustness`);
    None for a model whose output is not a vector of class scores."""
    from reportgen.analyses.robustness.inputs import for_report

    if head.units is None or head.is_map:
        return None  # the section says why: corruptions and attacks are measured on class scores
    shown = images if folder is None else []
    return for_report(model, head, feeds, preprocessor, folder, shown, options, class_names, progress)
