"""Weather: snow, fog, brightness (Hendrycks & Dietterich 2019, published parameters).

Frost is left out: the paper blends each image with a crop of one of six
photographs of frost on glass that ship with its source, not with reportgen,
and a texture made up here would be a different corruption under the paper's
name. The report says so (:data:`LEFT_OUT`).
"""

from __future__ import annotations

import numpy as np

from reportgen.analyses.robustness.corruptions import _ops
from reportgen.analyses.robustness.corruptions.base import register, scale

LEFT_OUT = {
    "frost": "the paper blends in crops of six photographs of frost on glass that come with its source, not "
    "with reportgen; a texture made up here would be another corruption under the paper's name"
}


@register(
    "weather",
    (
        (0.1, 0.3, 3, 0.5, 10, 4, 0.8),
        (0.2, 0.3, 2, 0.5, 12, 4, 0.7),
        (0.55, 0.3, 4, 0.9, 12, 8, 0.7),
        (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65),
        (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55),
    ),
)
def snow(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """A layer of N(loc, scale) flakes, zoomed (zoom), thresholded (threshold), motion-blurred (radius, sigma)
    at U(-135, -45) degrees, added twice (the second turned 180 degrees) to the image whitened by (blend)."""
    loc, sd, zoom, threshold, radius, sigma, blend = snow.parameters[severity - 1]
    k = scale(x)
    layer = rng.normal(size=x.shape[:2], loc=loc, scale=sd)
    layer = _ops.clipped_zoom(layer[..., None], zoom)
    layer[layer < threshold] = 0
    layer = np.uint8(np.clip(layer, 0, 1) * 255) / 255.0  # the paper passes the layer through an 8-bit PNG
    angle = rng.uniform(-135, -45)
    layer = _ops.motion_blur(layer, max(1, int(round(radius * k))), max(sigma * k, 1e-3), angle)
    layer = np.uint8(np.clip(layer, 0, 1) * 255 + 0.5) / 255.0
    x = blend * x + (1 - blend) * np.maximum(x, _ops.grey(x) * 1.5 + 0.5)
    return np.clip(x + layer + np.rot90(layer, k=2), 0, 1)


@register("weather", ((1.5, 2), (2.0, 2), (2.5, 1.7), (2.5, 1.5), (3.0, 1.4)))
def fog(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """A plasma fractal (diamond-square, wibble decay) times (strength) added, rescaled by max/(max +
    strength)."""
    strength, decay = fog.parameters[severity - 1]
    h, w = x.shape[:2]
    # The paper's 256 x 256 fractal for 224-pixel images; for another size the next power of two above it, so
    # the fog's patches cover the same share of the picture (a 28-pixel crop of a 256 map would be one flat
    # patch).
    size = _ops.next_power_of_2(max(h, w))
    max_val = x.max()
    x = x + strength * _ops.plasma_fractal(size, decay, rng)[:h, :w][..., None]
    return np.clip(x * max_val / (max_val + strength), 0, 1)


@register("weather", (0.1, 0.2, 0.3, 0.4, 0.5))
def brightness(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """V of HSV raised by c (``skimage.color`` round trip); a grey image's V is its value."""
    c = brightness.parameters[severity - 1]
    if x.shape[-1] == 1:
        return np.clip(x + c, 0, 1)
    hsv = _ops.rgb2hsv(x)
    hsv[..., 2] = np.clip(hsv[..., 2] + c, 0, 1)
    return np.clip(_ops.hsv2rgb(hsv), 0, 1)
