"""Blur: defocus_blur, glass_blur, motion_blur, zoom_blur (Hendrycks & Dietterich 2019, published parameters;
spatial ones scaled by min(H, W) / 224, :func:`~.base.scale`)."""

from __future__ import annotations

import numpy as np

from reportgen.analyses.robustness.corruptions import _ops
from reportgen.analyses.robustness.corruptions.base import register, scale


@register("blur", ((3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)))
def defocus_blur(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Each channel filtered with an anti-aliased disk of the radius (radius, alias sigma)."""
    radius, alias = defocus_blur.parameters[severity - 1]
    return np.clip(_ops.correlate_reflect101(x, _ops.disk(radius * scale(x), alias)), 0, 1)


@register("blur", ((0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2)))
def glass_blur(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Gaussian blur (sigma), then (iterations) passes that swap each pixel with one at most (max_delta)
    away, bottom-right to top-left, rounded to 8 bits between as the paper does, then blur again."""
    sigma, delta, iterations = glass_blur.parameters[severity - 1]
    k = scale(x)
    sigma = sigma * k
    d = max(1, int(round(delta * k)))
    h, w = x.shape[:2]
    img = np.uint8(_ops.gaussian(x, sigma) * 255)
    # The swaps do not depend on the pixels' values: follow them on pixel indices (plain Python ints, the loop
    # is sequential by definition), then move the pixels once.
    order = list(range(h * w))
    for _ in range(iterations):
        rows = range(h - d, d, -1)
        cols = range(w - d, d, -1)
        draws = rng.integers(-d, d, size=(len(rows), len(cols), 2))  # np.random.randint(-d, d): d excluded
        offsets = (draws[..., 1] * w + draws[..., 0]).tolist()  # dy * w + dx
        for i, r in enumerate(rows):
            base, row = r * w, offsets[i]
            for j, c in enumerate(cols):
                a = base + c
                b = a + row[j]
                order[a], order[b] = order[b], order[a]
    img = img.reshape(h * w, -1)[np.asarray(order)].reshape(x.shape)
    return np.clip(_ops.gaussian(img / 255.0, sigma), 0, 1)


@register("blur", ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15)))
def motion_blur(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """ImageMagick's motion blur (radius, sigma) at an angle drawn from U(-45, 45) degrees."""
    radius, sigma = motion_blur.parameters[severity - 1]
    k = scale(x)
    angle = rng.uniform(-45, 45)
    return np.clip(_ops.motion_blur(x, max(1, int(round(radius * k))), max(sigma * k, 1e-3), angle), 0, 1)


@register(
    "blur", ((1.0, 1.11, 0.01), (1.0, 1.16, 0.01), (1.0, 1.21, 0.02), (1.0, 1.26, 0.02), (1.0, 1.31, 0.03))
)
def zoom_blur(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """The mean of the image and its centre zoomed by each factor of ``np.arange(start, stop, step)``."""
    factors = np.arange(*zoom_blur.parameters[severity - 1])
    out = np.zeros_like(x)
    for z in factors:
        out += _ops.clipped_zoom(x, z)
    return np.clip((x + out) / (len(factors) + 1), 0, 1)
