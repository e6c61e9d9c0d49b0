"""Weights: statistics and histograms per kernel layer, trained beside untrained, and charts across depth.

A model with up to 30 kernel layers gets every layer's histogram. A deep one
(ResNet152, EfficientNetB7) gets the picture a reviewer reads first -- charts
of the weight std, its ratio to a fresh initialisation and the near-zero
fraction (and the zero fraction of activations on the images) across depth,
stages marked -- then full figures only for the layers findings point at,
the layers named with ``--layers`` and one sample per stage. Every layer's
numbers stay in the table and in report.json.
"""

from __future__ import annotations

import keras
import numpy as np

from reportgen import graph
from reportgen.anchors import anchor_id
from reportgen.analyses.spectral import MIN_EVALS
from reportgen.analyses.weights import NEAR_ZERO
from reportgen.context import Context, SectionResult
from reportgen.figures import Figure, chart_gaps

TITLE = "Weights: trained vs. untrained"


def NEEDS(options) -> tuple[str, ...]:
    """The weight facts; the units on the images too when the report has them (the depth chart's zeros)."""
    images = options.image_dirs or {"features", "gradcam"} & set(options.sections)
    return ("weights", "weight_findings") + (("images", "activity") if images else ())


OPTIONAL = ("activity",)
CHART_FROM = 6  # kernel layers from which the depth chart is drawn


def stage_marks(refs: list[graph.LayerRef]) -> list[tuple[int, str]]:
    """(index, label) of each stage start among ``refs``: the spatial size, else the layer name."""
    starts = {r.path for r in graph.stage_starts(refs)}
    marks = []
    for i, r in enumerate(refs):
        if r.path in starts:
            size = graph.spatial_size(r)
            marks.append((i, "×".join(str(d) for d in size) if size else r.name))
    return marks


# Layers between a kernel layer and the activation layer after it that keep its channels one to one at
# inference (the activation's zeros are then that layer's units' zeros, as normalised).
_BETWEEN = (
    keras.layers.BatchNormalization,
    keras.layers.Dropout,
    keras.layers.SpatialDropout1D,
    keras.layers.SpatialDropout2D,
    keras.layers.SpatialDropout3D,
)


def following_activations(model, paths: list[str], measured: set[str]) -> dict[str, str] | None:
    """Kernel layer path -> the measured activation layer right after it (``conv -> [BN] -> ReLU``).

    Only where the graph says the activation layer's one input is that kernel
    layer's output (through BatchNormalization or Dropout, nothing else, and no
    other consumer on the way); None for a model without a graph.
    """
    from reportgen.analyses.findings import producers

    prods = producers(model)
    if prods is None:
        return None
    consumers: dict[str, list[str]] = {}
    for path, sources in prods.items():
        for src in sources:
            if src is not None:
                consumers.setdefault(src, []).append(path)
    layers = {r.path: r.layer for r in graph.walk(model)}
    out = {}
    for path in paths:
        current = path
        for _ in range(8):
            nxt = consumers.get(current, [])
            if len(nxt) != 1 or prods.get(nxt[0]) != [current]:
                break
            current = nxt[0]
            if current in measured:
                out[path] = current
                break
            if not isinstance(layers.get(current), _BETWEEN):
                break
    return out


def _activation_panel(ctx: Context, labels: list[str], activity) -> tuple[dict | None, str | None]:
    """The "activations = 0" panel: each kernel layer's own activation, else the activation layer
    right after it; (None, why) when no kernel layer has either."""
    measured = set(activity.layers)
    own = {p for p in labels if p in measured}
    after = following_activations(ctx.model, [p for p in labels if p not in own], measured)
    found = after or {}
    values = [
        activity.layers[p].zero_fraction
        if p in own
        else activity.layers[found[p]].zero_fraction
        if p in found
        else None
        for p in labels
    ]
    if not any(v is not None and np.isfinite(v) for v in values):
        order = [r.path for r in graph.walk(ctx.model) if r.path in measured]
        listed = ", ".join(order[:6]) + (f" and {len(order) - 6} more" if len(order) > 6 else "")
        why = (
            "activation zeros not charted: no kernel layer has a ReLU, sigmoid or tanh activation of its own"
        )
        if after is None:
            why += (
                f", and this model has no graph to say which of the activation layers measured ({listed}) "
                "follows which kernel layer"
            )
        else:
            why += (
                ", and none feeds one directly: the activation "
                f"layers measured ({listed}) follow other layers "
                "(an addition, a concatenation, ...)"
            )
        return None, why
    after = found
    panel = {
        "name": "activations = 0" if not after else "activations = 0\n(open: the layer after)",
        "values": values,
        "open": [i for i, p in enumerate(labels) if p in after],
    }
    note = None
    if after:
        note = (
            f"{len(after)} of the {len(labels)} kernel layers have no activation of their own; their open "
            "points are the zero fraction of the activation layer right after them (e.g. "
            + ", ".join(f"{p} → {a}" for p, a in list(after.items())[:3])
            + ")"
        )
    return panel, note


def depth_figure(
    ctx: Context, refs: list[graph.LayerRef], stats: dict, flagged: set[str]
) -> tuple[Figure | None, list[str]]:
    """The chart across depth (drawn when a page shows it), and what its caption must add (a panel not
    drawn and why, ...)."""
    t = ctx.analyses.thresholds
    labels = [r.path for r in refs]
    hi = [i for i, r in enumerate(refs) if r.path in flagged]
    panels = [
        {"name": "weight std", "values": [stats[p]["std"] for p in labels], "log": True, "highlight": hi},
        {
            "name": "std / fresh std",
            "values": [stats[p].get("std_ratio") for p in labels],
            "log": True,
            "lines": [(1.0, "= untrained"), (t.scale_ratio, "exploding"), (1 / t.scale_ratio, "vanishing")],
            "highlight": hi,
            "empty": "std / fresh std not charted: no layer has a freshly initialised baseline",
        },
        {"name": "|w| < 1e-3", "values": [stats[p]["near_zero_fraction"] for p in labels], "highlight": hi},
    ]
    notes: list[str] = []
    activity = ctx.get("activity")
    title = f"{len(refs)} kernel layers in depth order; red: layers with a weight finding"
    if activity is not None and activity.layers:
        panel, note = _activation_panel(ctx, labels, activity)
        if panel is not None:
            panels.append(panel)
            title += f"; activation zeros over {activity.images} image(s)"
        if note:
            notes.append(note)
    missing = chart_gaps(panels)
    if len(missing) == len(panels):
        return None, missing + notes
    return Figure("weights.depth", labels, panels, stage_marks(refs), title), missing + notes


def alpha_figure(
    ctx: Context, refs: list[graph.LayerRef], stats: dict, flagged: set[str]
) -> tuple[Figure | None, dict]:
    """The spectral alpha across depth, WeightWatcher's 2 and 6 marked (the thresholds in force), and what
    the caption says: how many layers are charted, which are left out and why (too few eigenvalues, ...)."""
    t = ctx.analyses.thresholds
    fitted = [r for r in refs if stats[r.path].get("alpha") is not None]
    left_out = [
        r.path for r in refs if stats[r.path].get("alpha") is None and "alpha_num_evals" in stats[r.path]
    ]
    too_few = [p for p in left_out if stats[p]["alpha_num_evals"] < MIN_EVALS]
    caption = {
        "fitted": len(fitted),
        "layers": len(refs),
        "too_few": too_few,
        "other": [(p, stats[p]["alpha_reason"]) for p in left_out if p not in too_few],
        "min_evals": MIN_EVALS,
        "over": t.alpha_over_trained,
        "under": t.alpha_under_trained,
    }
    if not fitted:
        return None, caption
    labels = [r.path for r in fitted]
    panel = {
        "name": "spectral alpha",
        "values": [stats[p]["alpha"] for p in labels],
        "lines": [
            (t.alpha_over_trained, f"{t.alpha_over_trained:g}\nover-trained\nbelow"),
            (t.alpha_under_trained, f"{t.alpha_under_trained:g}\nunder-trained\nabove"),
        ],
        "highlight": [i for i, p in enumerate(labels) if p in flagged],
        "labels_outside": True,
        "margins": (0.5 / len(labels) if len(labels) < 10 else 0.02, 0.12),
    }
    title = (
        f"spectral alpha of {len(fitted)} of {len(refs)} kernel layers in depth order"
        "; red: over- or under-trained by WeightWatcher's thresholds"
    )
    return Figure("weights.depth", labels, [panel], stage_marks(fitted), title), caption


def run(ctx: Context) -> SectionResult:
    facts = ctx.analyses.weights
    refs = [r for r in graph.kernel_layers(ctx.model) if r.path in facts and facts[r.path].stats is not None]
    stats = {r.path: facts[r.path].to_json() for r in refs}
    paths = {r.path for r in refs}
    flagged = {f["layer"] for f in ctx.analyses.weight_findings if f["layer"] in paths}
    shown, why = graph.detail_layers(refs, ctx.options.layers or (), flagged)
    figures = {r.path: Figure("weights.histogram", r.path, stats[r.path]) for r in shown}
    depth, depth_notes = depth_figure(ctx, refs, stats, flagged) if len(refs) >= CHART_FROM else (None, [])
    gains = {p: lw.gains_json() for p, lw in facts.items() if lw.gains_json() is not None}
    alpha_flagged = {
        f["layer"] for f in ctx.analyses.weight_findings if f["kind"] in ("over_trained", "under_trained")
    }
    alpha, alpha_caption = alpha_figure(ctx, refs, stats, alpha_flagged)
    return SectionResult(
        json={"weights": stats} | ({"gains": gains} if gains else {}),
        view={
            "stats": stats,
            "figures": figures,
            "near_zero": NEAR_ZERO,
            "seed": ctx.options.seed,
            "anchors": {p: anchor_id("weights", p) for p in stats},
            "depth": depth,
            "depth_notes": depth_notes,
            "selection": why,
            "gains": gains,
            "alpha": alpha,
            "alpha_caption": alpha_caption,
            "big": len(refs) > graph.FULL_DETAIL_LAYERS,
            "figure_ids": {anchor_id("weights", p) for p in figures}
            | ({"weights-depth"} if depth else set())
            | ({"weights-alpha"} if alpha else set()),
        },
    )
