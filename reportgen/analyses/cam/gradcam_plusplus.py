"""Grad-CAM++ (Chattopadhyay et al. 2018): positive gradients weighted per position.

The paper's closed form for an exponential score (its Eq. 19): with g the
gradient of the score, the weight of position (i, j) in channel k is
``g^2 / (2 g^2 + sum_ab A_ab g^3)`` (zero where g is zero), and the channel
weight sums ``alpha * ReLU(g)`` over positions. No epsilon in the
denominator: gradients of 1e-3 are common (a logit over a 7x7 map), and an
epsilon of 1e-7 would already move them by half a percent.
"""

from __future__ import annotations

import numpy as np

from reportgen.analyses.cam.base import BaseCAM


class GradCAMPlusPlus(BaseCAM):
    name = "gradcampp"
    title = "Grad-CAM++"
    paper = "Chattopadhyay et al. 2018"
    formula = (
        "ReLU(Σ<sub>k</sub> w<sub>k</sub> A<sup>k</sup>), "
        "w<sub>k</sub> = Σ<sub>ij</sub> α<sub>ij</sub> "
        "ReLU(g<sub>ij</sub>), α = g² / (2g² + Σ<sub>ab</sub> A<sub>ab</sub> g³), g = ∂y / ∂A"
    )

    def weights(self, acts: np.ndarray, grads: np.ndarray) -> np.ndarray:
        g2 = grads**2
        g3 = g2 * grads
        total = acts.sum(axis=(1, 2), keepdims=True)
        denominator = 2 * g2 + total * g3
        alpha = np.divide(g2, denominator, out=np.zeros_like(g2), where=(grads != 0) & (denominator != 0))
        return (alpha * np.maximum(grads, 0.0)).sum(axis=(1, 2))
