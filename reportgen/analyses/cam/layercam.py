"""LayerCAM (Jiang et al. 2021): each position weighted by its own positive gradient."""

from __future__ import annotations

import numpy as np

from reportgen.analyses.cam.base import BaseCAM, Pass


class LayerCAM(BaseCAM):
    name = "layercam"
    title = "LayerCAM"
    paper = "Jiang et al. 2021"
    formula = "ReLU(Σ<sub>k</sub> ReLU(∂y / ∂A<sup>k</sup><sub>ij</sub>) A<sup>k</sup><sub>ij</sub>)"

    def maps(self, p: Pass) -> list[np.ndarray]:
        return [(np.maximum(g, 0.0) * p.acts).sum(axis=-1) for g in p.grads]
