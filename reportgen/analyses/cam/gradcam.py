"""Grad-CAM (Selvaraju et al. 2017): channels weighted by their mean gradient."""

from __future__ import annotations

import numpy as np

from reportgen.analyses.cam.base import BaseCAM


class GradCAM(BaseCAM):
    name = "gradcam"
    title = "Grad-CAM"
    paper = "Selvaraju et al. 2017"
    formula = "ReLU(Σ<sub>k</sub> α<sub>k</sub> A<sup>k</sup>), α<sub>k</sub> = mean<sub>i,j</sub> ∂y / ∂A<sup>k</sup><sub>ij</sub>"

    def weights(self, acts: np.ndarray, grads: np.ndarray) -> np.ndarray:
        return grads.mean(axis=(1, 2))
