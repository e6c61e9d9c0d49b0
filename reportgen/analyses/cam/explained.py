"""The report's class activation maps: every chosen method on every image, at one layer, for one output.

The computation the ``gradcam`` section describes and the sanity check (an
analysis that needs these CAMs) re-runs under randomised weights. Typed
result, no figures: :class:`Explained`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from reportgen.analyses.cam.base import CamResult
from reportgen.analyses.cam.head import Head, resolve_layer
from reportgen.analyses.cam import method
from reportgen.errors import UserError


@dataclass
class Explained:
    """What the CAM analysis found: the layer and each method's maps, or why there is nothing to explain."""

    head: Head | None
    layer: str | None = None
    results: dict[str, CamResult] = field(default_factory=dict)
    names: list[str] | None = None
    note: str | None = (
        None  # why there are no maps (not an image model, no layer, an output that is not scores)
    )

    @property
    def first(self) -> CamResult | None:
        return next(iter(self.results.values()), None)


def for_report(
    model: Any,
    images: Sequence[Any],
    head: Head,
    feeds: Any,
    *,
    methods: Sequence[str],
    top_k: int,
    layer_name: str | None,
    output: str | None,
    names: list[str] | None,
    progress: Callable[..., Any] | None = None,
) -> Explained:
    """The report's CAMs (``results.cams``): each method of ``methods`` on one batch of all ``images``, the
    same targets for all. (:func:`reportgen.analyses.cam.explain` is one method on one batch.)"""
    if not images:
        return Explained(None, note="The model's input is not an image, so there is no class activation map.")
    if head.units is None and not head.is_map:
        return Explained(head, note=head.note)
    try:
        ref = resolve_layer(model, layer_name, output)
    except UserError as exc:
        if layer_name:
            raise
        return Explained(head, note=str(exc))
    batch = np.stack([im.input for im in images])
    out = Explained(head, ref.path, names=names)
    target = None
    bar = progress(list(methods), desc="class activation maps") if progress else methods
    for name in bar:
        res = method(name)(model, ref.path, head, feeds).explain(batch, target, top_k, names)
        target = res.target
        out.results[name] = res
    return out
