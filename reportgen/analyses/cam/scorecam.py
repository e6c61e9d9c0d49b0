"""Score-CAM (Wang et al. 2020): gradient-free, each channel weighted by what it alone lets through.

Each activation map A^k is upsampled to the input, scaled to [0, 1]
(``H^k``) and used as a mask on the input; the channel's weight is the
increase in confidence it causes, ``C(A^k) = f(X ∘ H^k) - f(X_b)`` with the
baseline ``X_b`` the fully masked (zero) input, and the map is
``ReLU(sum_k C(A^k) A^k)``. ``f`` is the model's own output for the target:
the class probability for a classifier (the paper's softmax score), the raw
score otherwise. The masked inputs of all channels go through the model in
batches of ``BATCH`` masks, not one by one.
"""

from __future__ import annotations

import numpy as np

from reportgen import backend
from reportgen.graph import forward
from reportgen.analyses.cam.base import BaseCAM, Pass, pick

BATCH = 32


class ScoreCAM(BaseCAM):
    name = "scorecam"
    title = "Score-CAM"
    paper = "Wang et al. 2020"
    formula = (
        "ReLU(Σ<sub>k</sub> C<sub>k</sub> A<sup>k</sup>), C<sub>k</sub> = f(X ∘ H<sup>k</sup>) "
        "− f(X<sub>b</sub>), H<sup>k</sup> = A<sup>k</sup> upsampled, scaled to [0, 1]"
    )
    uses_gradients = False

    def confidence(self, batch: np.ndarray, rows: list[np.ndarray]) -> np.ndarray:
        """(B, K): f for each input of ``batch``, for each target given by its cotangent row."""
        with backend.no_grad():
            out = forward.run(self.model, self.inputs(backend.tensor(batch)), dict(self.extra_taps)).output
        f = backend.numpy(pick(out, self.head.output)).astype(np.float64)
        axes = tuple(range(1, f.ndim))
        return np.stack([(r * f).sum(axis=axes) for r in rows], axis=1)

    def maps(self, p: Pass) -> list[np.ndarray]:
        from keras import ops

        x = backend.numpy(p.x).astype(np.float32)
        n, _h, _w, channels = p.acts.shape
        cotangents = p.target.cotangents(p.y)
        weights = np.zeros((len(cotangents), n, channels))
        for i in range(n):
            rows = [c[i : i + 1] for c in cotangents]
            up = backend.numpy(
                ops.image.resize(
                    backend.tensor(p.acts[i][None].astype(np.float32)), x.shape[1:3], interpolation="bilinear"
                )
            )[0]  # (H, W, C)
            flat = up.reshape(-1, channels)
            lo, hi = flat.min(axis=0), flat.max(axis=0)
            masks = np.moveaxis((up - lo) / (hi - lo + 1e-8), -1, 0)[..., None]  # (C, H, W, 1)
            baseline = self.confidence(np.zeros_like(x[i : i + 1]), rows)  # (1, K)
            for start in range(0, channels, BATCH):
                masked = x[i][None] * masks[start : start + BATCH]
                weights[:, i, start : start + len(masked)] = (self.confidence(masked, rows) - baseline).T
        self._weights = weights
        return [np.einsum("nhwc,nc->nhw", p.acts, weights[k]) for k in range(len(cotangents))]

    def scales(self, p: Pass) -> list[np.ndarray]:
        """Score-CAM's own scale: mean over the cells of sum_k |C_k A^k| (its weights in place of
        gradients)."""
        w = getattr(self, "_weights", None)
        if w is None:
            return []
        return [np.abs(p.acts * w[k][:, None, None, :]).sum(axis=-1).mean(axis=(1, 2)) for k in range(len(w))]
