"""The corruption registry: each corruption registers itself here; this module imports none of them.

A corruption is one small function ``f(x, severity, rng) -> x'`` on an image
``x`` of shape (H, W, C), C = 1 (grey) or 3 (RGB), float64 in [0, 1] -- the
``np.array(x) / 255.`` every function of Hendrycks & Dietterich (ICLR 2019,
``ImageNet-C/create_c/make_imagenet_c.py``) starts from -- returning the same
shape in [0, 1]. :func:`corrupt` wraps it for pixels 0-255.

Every draw comes from ``rng``, a generator seeded per image and per
corruption and severity (:func:`rng_for`): the same image gets the same
corruption in every run, on every backend and in every shard of a pass.

Spatial parameters (blur radii, the glass blur's shuffle distance, elastic
displacements, the snow's motion blur) are the paper's in pixels of a
224 x 224 image; an image of another size gets them scaled by
``min(H, W) / 224`` (:func:`scale`), so a corruption covers the same share of
the picture at any size. At 224 pixels they are exactly the published ones.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Callable

import numpy as np

SEVERITIES = (1, 2, 3, 4, 5)
REFERENCE_SIDE = 224  # the ImageNet-C image side the published spatial parameters are for


@dataclass(frozen=True)
class Corruption:
    name: str  # the paper's name: gaussian_noise, jpeg_compression, ...
    family: str  # noise, blur, weather, digital
    fn: Callable[[np.ndarray, int, np.random.Generator], np.ndarray]
    parameters: tuple  # the published parameter per severity 1..5 (as the paper's source lists them)


REGISTRY: dict[str, Corruption] = {}


def register(family: str, parameters: tuple) -> Callable:
    """Decorator: add a corruption function to :data:`REGISTRY` under its own name."""

    def add(fn: Callable) -> Callable:
        if len(parameters) != len(SEVERITIES):
            raise ValueError(f"{fn.__name__}: one parameter per severity")
        REGISTRY[fn.__name__] = Corruption(fn.__name__, family, fn, tuple(parameters))
        fn.parameters = tuple(parameters)  # the function reads its own: ``f.parameters[severity - 1]``
        return fn

    return add


def rng_for(seed: int, name: str, severity: int, image: int) -> np.random.Generator:
    """The generator of one corruption of one image: the same (seed, corruption, severity, image), the same
    draws."""
    return np.random.default_rng([int(seed), zlib.crc32(name.encode()), int(severity), int(image)])


def scale(x: np.ndarray) -> float:
    """The image's side relative to ImageNet-C's 224 pixels (1.0 at 224)."""
    return min(x.shape[0], x.shape[1]) / REFERENCE_SIDE


def corrupt(pixels: np.ndarray, name: str, severity: int, rng: np.random.Generator) -> np.ndarray:
    """``pixels`` (H, W, C) 0-255 under corruption ``name`` at ``severity`` 1-5: float32 0-255."""
    if severity not in SEVERITIES:
        raise ValueError(f"severity {severity} is not one of 1-5")
    x = np.asarray(pixels, dtype=np.float64)
    if x.ndim == 2:
        x = x[..., None]
    out = REGISTRY[name].fn(x / 255.0, severity, rng)
    return (np.clip(out, 0.0, 1.0) * 255.0).astype(np.float32).reshape(x.shape)
