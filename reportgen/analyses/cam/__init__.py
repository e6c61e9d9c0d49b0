"""Class activation maps: where in the image the evidence for an output lies.

One base (:mod:`~reportgen.analyses.cam.base`) owns the forward pass, the
targets and the gradients; each method is a small module:

- ``gradcam``: Grad-CAM (Selvaraju et al. 2017); :func:`gradcam_map` is its formula, which the
  data-set pass applies to tensors inside its compiled function;
- ``gradcampp``: Grad-CAM++ (Chattopadhyay et al. 2018);
- ``layercam``: LayerCAM (Jiang et al. 2021);
- ``scorecam``: Score-CAM (Wang et al. 2020), gradient-free.

:mod:`~reportgen.analyses.cam.head` says what the model's output is and so
what is explained (:func:`two_classes`: one sigmoid unit read as two classes);
:mod:`~reportgen.analyses.cam.targets` holds the targets.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from reportgen.analyses.cam.base import NEGLIGIBLE, BaseCAM, CamResult, negligible, upsample  # noqa: F401
from reportgen.analyses.cam.gradcam import GradCAM, gradcam_map  # noqa: F401
from reportgen.analyses.cam.gradcam_plusplus import GradCAMPlusPlus
from reportgen.analyses.cam.head import (  # noqa: F401
    Head,
    classifier_head,
    find_target_layer,
    is_classifier,
    output_index,
    resolve_layer,
    two_classes,
)
from reportgen.analyses.cam.layercam import LayerCAM
from reportgen.analyses.cam.scorecam import ScoreCAM
from reportgen.analyses.cam.targets import (  # noqa: F401
    BinaryClasses,
    ClassScores,
    MapMean,
    PixelClasses,
    Target,
    class_target,
    top_classes,
)
from reportgen.errors import UserError
from reportgen.names import CAM_METHODS

METHODS: dict[str, type[BaseCAM]] = {m.name: m for m in (GradCAM, GradCAMPlusPlus, LayerCAM, ScoreCAM)}
assert tuple(METHODS) == CAM_METHODS, "reportgen.names.CAM_METHODS lists the methods the command line accepts"


def method(name: str) -> type[BaseCAM]:
    if name not in METHODS:
        raise UserError(f"--cam: unknown method '{name}'; choose from {', '.join(METHODS)}")
    return METHODS[name]


def explain(
    model: Any,
    layer: str,
    inputs: np.ndarray,
    classes: np.ndarray | Sequence | None = None,
    *,
    top_k: int = 3,
    method_name: str = "gradcam",
    head: Head | None = None,
    feeds: Any = None,
    names: Sequence[str] | None = None,
) -> CamResult:
    """One method's heatmaps for a batch: the given classes (N,) or (N, K), else the default targets."""
    head = head or classifier_head(model)
    target = None
    if classes is not None:
        c = np.asarray(classes, dtype=np.int64)
        c = c[:, None] if c.ndim == 1 else c
        if c.shape[0] != len(inputs):
            raise ValueError(f"classes has {c.shape[0]} rows for {len(inputs)} images")
        if head.classes is not None and c.size and (c.min() < 0 or c.max() >= head.classes):
            raise UserError(f"Grad-CAM: class index out of range 0..{head.classes - 1}")
        target = class_target(head.is_binary, c, [[f"class {int(v)}" for v in row] for row in c])
    return method(method_name)(model, layer, head, feeds).explain(inputs, target, top_k, names)


def heatmaps(
    model: Any, layer: str, inputs: np.ndarray, classes: np.ndarray | Sequence, method_name: str = "gradcam"
) -> np.ndarray:
    """(N, h, w) heatmaps in [0, 1], one class per image (all zero without positive evidence)."""
    return explain(model, layer, inputs, np.asarray(classes).reshape(-1), method_name=method_name).heatmaps[
        :, 0
    ]
