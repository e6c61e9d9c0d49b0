"""Noise: gaussian_noise, shot_noise, impulse_noise (Hendrycks & Dietterich 2019, published parameters)."""

from __future__ import annotations

import numpy as np

from reportgen.analyses.robustness.corruptions.base import register


@register("noise", (0.08, 0.12, 0.18, 0.26, 0.38))
def gaussian_noise(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """x + N(0, c^2) per pixel and channel."""
    c = gaussian_noise.parameters[severity - 1]
    return np.clip(x + rng.normal(size=x.shape, scale=c), 0, 1)


@register("noise", (60, 25, 12, 5, 3))
def shot_noise(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Poisson(x c) / c: photon noise with c photons at full intensity."""
    c = shot_noise.parameters[severity - 1]
    return np.clip(rng.poisson(x * c) / c, 0, 1)


@register("noise", (0.03, 0.06, 0.09, 0.17, 0.27))
def impulse_noise(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Salt and pepper (``skimage.util.random_noise(mode='s&p', amount=c)``): a share c of the values,
    each channel on its own, set to 0 or 1 with equal odds."""
    c = impulse_noise.parameters[severity - 1]
    out = x.copy()
    hit = rng.random(x.shape) < c
    salt = rng.random(x.shape) < 0.5
    out[hit & salt] = 1.0
    out[hit & ~salt] = 0.0
    return out
