"""Checks that read how units behave on real images (:mod:`reportgen.analyses.activations`).

A unit is called inactive only with evidence: silent on every one of at least
``inactive_min_images`` images (default 8), with the count stated. With
fewer images no unit is listed; the report says how many images it needs.
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from reportgen import graph
from reportgen.analyses import activations as A
from reportgen.analyses.findings.core import Finding, finding
from reportgen.config import Thresholds


def check_dead_activations(
    path: str, peaks: np.ndarray, n_images: int, t: Thresholds, skip: Iterable[int] = ()
) -> list[Finding]:
    """Units whose output is zero on every input image and position (a ReLU silent on the data).

    ``peaks`` is each channel's largest absolute activation over all images
    and positions. A few silent units are normal in a trained ReLU network:
    each one is ``inactive_unit`` (info); when more than ``inactive_fraction``
    of a layer is silent, one ``inactive_layer`` finding (warning) says so.
    Nothing is reported from fewer than ``inactive_min_images`` images.
    """
    peaks = np.asarray(peaks, dtype=np.float64).ravel()
    if n_images < t.inactive_min_images or peaks.size == 0:
        return []
    skip = set(int(s) for s in skip)
    silent = np.flatnonzero(peaks <= t.dead_activation)
    out = []
    for c in silent:
        if int(c) in skip:
            continue
        out.append(
            finding(
                "inactive_unit",
                path,
                c,
                peaks[c],
                t.dead_activation,
                f"unit {c} of {path} outputs 0 on every one of the {n_images} input images: a dead "
                "ReLU; re-initialise it, lower the learning rate or use a leaky activation.",
            )
        )
    fraction = silent.size / peaks.size
    if fraction > t.inactive_fraction:
        out.append(
            finding(
                "inactive_layer",
                path,
                None,
                fraction,
                t.inactive_fraction,
                f"{100 * fraction:.0f}% of the units of {path} ({silent.size} of {peaks.size}) output 0 "
                f"on all {n_images} input images: the layer has largely died; lower the learning rate, "
                "use a leaky activation or normalise its input.",
            )
        )
    return out


def check_saturation(path: str, fraction: float, function: str, t: Thresholds) -> list[Finding]:
    """Most sigmoid/tanh outputs at the function's limits, where gradients vanish."""
    if not np.isfinite(fraction) or fraction <= t.saturation_fraction:
        return []
    return [
        finding(
            "saturation",
            path,
            None,
            fraction,
            t.saturation_fraction,
            f"{100 * fraction:.0f}% of the {function} outputs of {path} are saturated (within "
            f"{t.saturation_margin:g} of the limits), where its gradient vanishes; normalise its input "
            "or lower the weight scale.",
        )
    ]


def output_paths(model: Any) -> list[str]:
    """Paths of the layers producing the model's outputs."""
    return [p for p in graph.anatomy(model).output_layers if p is not None]


def activity_findings(
    model: Any, activity: A.Activity, t: Thresholds, dead_by_weights: dict[str, set[int]] | None = None
) -> list[Finding]:
    """Inactive units and layers, and saturation, from the streamed :class:`Activity`."""
    dead_by_weights = dead_by_weights or {}
    outputs = set(output_paths(model))
    out: list[Finding] = []
    for path, ua in activity.layers.items():
        if ua.activation in A.RELU_LIKE:
            out += check_dead_activations(path, ua.peaks, activity.images, t, dead_by_weights.get(path, ()))
        elif ua.activation in A.SATURATING and path not in outputs and ua.outputs:
            out += check_saturation(path, ua.saturated / ua.outputs, ua.activation, t)
    return out


def activation_findings(
    model: Any, inputs: np.ndarray, t: Thresholds, already: Iterable[Finding] = (), feeds: Any = None
) -> list[Finding]:
    """Dead-on-the-data units and saturation over ``inputs`` (a convenience over the streamed pass)."""
    x = np.asarray(inputs, dtype=np.float32)
    activity = A.unit_activity(
        model, A.batches_of(x, A.batch_size(model)), feeds, t.dead_activation, t.saturation_margin
    )
    known: dict[str, set[int]] = {}
    for f in already:
        if f["kind"] in ("dead_filter", "dead_unit") and f["filter"] is not None:
            known.setdefault(f["layer"], set()).add(int(f["filter"]))
    return activity_findings(model, activity, t, known)
