"""Grad-CAM (Selvaraju et al. 2017): channels weighted by their mean gradient.

:func:`gradcam_map` is the one Grad-CAM formula: :class:`GradCAM` applies it
to NumPy arrays, the data-set pass (:mod:`reportgen.analyses.dataset`) to
tensors inside its compiled function (``xp=keras.ops``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from reportgen.analyses.cam.base import BaseCAM, Pass


def gradcam_weights(grads: Any, xp: Any = np) -> Any:
    """(N, C): α_k, each channel's gradient averaged over the map (N, h, w, C)."""
    return xp.mean(grads, axis=(1, 2))


def gradcam_map(acts: Any, grads: Any, xp: Any = np) -> Any:
    """Grad-CAM of one target, (N, h, w): ReLU(Σ_k α_k A^k) from the layer's activations and d score / d A.

    ``xp``: ``numpy`` (arrays) or ``keras.ops`` (tensors, inside a compiled function).
    """
    return xp.maximum(xp.einsum("nhwc,nc->nhw", acts, gradcam_weights(grads, xp)), 0.0)


class GradCAM(BaseCAM):
    name = "gradcam"
    title = "Grad-CAM"
    paper = "Selvaraju et al. 2017"
    formula = (
        "ReLU(Σ<sub>k</sub> α<sub>k</sub> A<sup>k</sup>), α<sub>k</sub> "
        "= mean<sub>i,j</sub> ∂y / ∂A<sup>k</sup><sub>ij</sub>"
    )

    def weights(self, acts: np.ndarray, grads: np.ndarray) -> np.ndarray:
        return gradcam_weights(grads)

    def maps(self, p: Pass) -> list[np.ndarray]:
        return [gradcam_map(p.acts, g) for g in p.grads]
