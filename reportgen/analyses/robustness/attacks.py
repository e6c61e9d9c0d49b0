"""L-infinity attacks on pixels 0-255: FGSM (Goodfellow et al. 2015) and PGD (Madry et al. 2018).

Both ascend the cross-entropy of the target class (the true label where there
is one, else the clean prediction) through the model's own preprocessing
(:class:`~.classifier.PixelClassifier`), and keep every image a picture: each
step is clipped to 0-255.

- FGSM: ``x' = clip(x + eps sign(grad), 0, 255)``, one gradient.
- PGD: a random start ``x + U(-eps, eps)`` (seeded per image, :func:`start_rng`),
  then ``steps`` steps of ``alpha = eps / 4`` (Madry et al.'s CIFAR-10
  attack: 7 steps of 2 at eps 8, the same step-to-budget ratio) along the
  gradient's sign, each projected back onto the eps ball around x and 0-255.
"""

from __future__ import annotations

import zlib
from typing import Any, Callable

import numpy as np

PGD_STEPS = 10
STEP_FRACTION = 0.25  # PGD's step size alpha as a share of eps


def start_rng(seed: int, epsilon: float, image: int) -> np.random.Generator:
    """PGD's random start of one image: the same (seed, eps, image), the same start in every run and shard."""
    return np.random.default_rng(
        [int(seed), zlib.crc32(b"pgd"), int(round(float(epsilon) * 1000)), int(image)]
    )


def fgsm(clf: Any, x: np.ndarray, targets: np.ndarray, epsilon: float) -> np.ndarray:
    g = clf.gradient(x, targets)
    return np.clip(x + np.float32(epsilon) * np.sign(g), 0, 255).astype(np.float32)


def pgd(
    clf: Any,
    x: np.ndarray,
    targets: np.ndarray,
    epsilon: float,
    steps: int,
    seed: int,
    keys: np.ndarray,
    alpha: float | None = None,
    tick: Callable[[], None] | None = None,
) -> np.ndarray:
    eps = np.float32(epsilon)
    alpha = np.float32(epsilon * STEP_FRACTION if alpha is None else alpha)
    start = (
        np.stack([start_rng(seed, epsilon, int(k)).uniform(-1.0, 1.0, x.shape[1:]) for k in keys])
        if len(x)
        else np.zeros_like(x)
    )
    lo, hi = np.clip(x - eps, 0, 255), np.clip(x + eps, 0, 255)
    adv = np.clip(x + eps * start.astype(np.float32), lo, hi).astype(np.float32)
    for _ in range(steps):
        g = clf.gradient(adv, targets)
        adv = np.clip(adv + alpha * np.sign(g), lo, hi).astype(np.float32)
        if tick is not None:
            tick()
    return adv
