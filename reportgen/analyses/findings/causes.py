"""One finding explaining another: which finding is a consequence of which.

A BatchNormalization channel whose moving variance is (near) zero had a
constant input in training. When the layer feeding that BatchNormalization is
a convolution (or Dense layer) whose filter of the same index is dead (a zero
kernel outputs its bias everywhere), the dead filter is the cause: the
``bn_variance`` finding gets ``caused_by`` = ``{"kind", "layer", "filter"}``
of the ``dead_filter`` (or ``dead_unit``) finding, and page 1 shows it under
that finding instead of as a problem of its own.

The link is drawn only where the model's graph says so: the BatchNormalization's
one input is the kernel layer's output, directly or through elementwise
activation layers (a constant stays constant through them), and the
normalised axis is the kernel layer's channel axis with as many channels as it
has filters. Subclassed models have no graph to read: nothing is linked there.
"""

from __future__ import annotations

from typing import Any

import keras

from reportgen import graph
from reportgen.analyses.findings.core import Finding, num

CAUSE_KINDS = ("dead_filter", "dead_unit")
# Elementwise layers a constant channel stays constant through (not Dropout or noise: random in training).
PASS_THROUGH = (
    keras.layers.Activation,
    keras.layers.ReLU,
    keras.layers.LeakyReLU,
    keras.layers.ELU,
    keras.layers.PReLU,
)


def producers(model: Any) -> dict[str, list[str | None]] | None:
    """Each layer path -> the paths of the layers whose outputs it was called on (None: a model input).

    Read from the traced graph (:func:`reportgen.graph.flat_graph`), nested
    models included; None for a model without a graph (subclassed) or one that
    cannot be traced.
    """
    if not graph.is_traceable(model):
        return None
    try:
        fg = graph.flat_graph(model)
    except Exception:  # noqa: BLE001  (no graph: no claim about wiring)
        return None
    path_of: dict[int, str] = {}
    for path, out in fg.by_path.items():
        for t in keras.tree.flatten(out):
            path_of.setdefault(id(t), path)
    return {
        path: [path_of.get(id(a)) for a in keras.tree.flatten(args) if hasattr(a, "shape")]
        for path, args in fg.args_by_path.items()
    }


def _rank(ref: graph.LayerRef) -> int | None:
    return len(ref.output_shape) if ref.output_shape is not None else None


def _channel_axis(ref: graph.LayerRef) -> int | None:
    """The output axis a kernel layer's filters lie along, as a non-negative index."""
    rank = _rank(ref)
    if rank is None:
        return None
    first = getattr(ref.layer, "data_format", "channels_last") == "channels_first"
    return 1 if first and not isinstance(ref.layer, keras.layers.Dense) else rank - 1


def _bn_axis(ref: graph.LayerRef) -> int | None:
    axis = getattr(ref.layer, "axis", None)
    if isinstance(axis, (list, tuple)):
        if len(axis) != 1:
            return None
        axis = axis[0]
    rank = _rank(ref)
    if axis is None or rank is None:
        return None
    return int(axis) % rank


def feeding_kernel(
    bn: str, prods: dict[str, list[str | None]], refs: dict[str, graph.LayerRef]
) -> str | None:
    """The kernel layer whose filters are ``bn``'s channels: its one input, directly or through
    elementwise activation layers; None when the wiring does not say so."""
    ref = refs.get(bn)
    if ref is None or not isinstance(ref.layer, keras.layers.BatchNormalization):
        return None
    current, seen = bn, set()
    while current not in seen:
        seen.add(current)
        sources = prods.get(current) or []
        if len(sources) != 1 or sources[0] is None or sources[0] not in refs:
            return None
        src = refs[sources[0]]
        if isinstance(src.layer, graph.KERNEL_TYPES):
            same_axis = _channel_axis(src) is not None and _channel_axis(src) == _bn_axis(ref)
            same_rank = _rank(src) == _rank(ref)
            return src.path if same_axis and same_rank else None
        if not isinstance(src.layer, PASS_THROUGH):
            return None
        current = src.path
    return None


def link_causes(model: Any, found: list[Finding]) -> list[Finding]:
    """``caused_by`` on each ``bn_variance`` finding whose channel is fed by a dead filter/unit
    (a finding in ``found``) of the same index; its message then names that cause."""
    dead = {
        (f["layer"], f["filter"]): f for f in found if f["kind"] in CAUSE_KINDS and f["filter"] is not None
    }
    if not dead or not any(f["kind"] == "bn_variance" for f in found):
        return found
    prods = producers(model)
    if prods is None:
        return found
    refs = {r.path: r for r in graph.walk(model)}
    source: dict[str, str | None] = {}
    out = []
    for f in found:
        if f["kind"] == "bn_variance" and f["filter"] is not None and f["layer"] is not None:
            if f["layer"] not in source:
                source[f["layer"]] = feeding_kernel(f["layer"], prods, refs)
            cause = dead.get((source[f["layer"]], f["filter"]))
            if cause is not None:
                unit = "filter" if cause["kind"] == "dead_filter" else "unit"
                f = {
                    **f,
                    "caused_by": {"kind": cause["kind"], "layer": cause["layer"], "filter": cause["filter"]},
                    "message": f"channel {f['filter']} of {f['layer']} has moving variance {num(f['value'])} "
                    f"because it is fed by {unit} {cause['filter']} of {cause['layer']}, a dead {unit} "
                    "(zero kernel: the same output for every input); prune or re-initialise that "
                    f"{unit} and this channel goes with it.",
                }
        out.append(f)
    return out
