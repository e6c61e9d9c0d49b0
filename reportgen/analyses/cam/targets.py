"""What a CAM explains: a scalar per image, made from the model's output.

As in pytorch-grad-cam (``ClassifierOutputTarget``, ``SemanticSegmentationTarget``),
a target turns the output into the score to explain. Here every target is
*linear* in the output, so it is fully described by a cotangent -- an array
shaped like the output whose inner product with the output is the score.
One forward pass then serves every target: each one is a vector-Jacobian
product with its cotangent (:func:`reportgen.backend.vjp`).

Targets are chosen per image from the output of the model itself, and then
held fixed (the sanity check explains the same targets on a randomised model).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Target:
    """K scores per image: ``cotangents(y)`` gives K arrays shaped like the output ``y``."""

    labels: list[list[str]] = field(default_factory=list)  # (N, K) descriptions

    def cotangents(self, y: np.ndarray) -> list[np.ndarray]:
        raise NotImplementedError

    def scores(self, y: np.ndarray) -> np.ndarray:
        """(N, K): the explained scores of the output ``y``."""
        y = np.asarray(y, dtype=np.float64)
        axes = tuple(range(1, y.ndim))
        return np.stack([(c * y).sum(axis=axes) for c in self.cotangents(y)], axis=1)


@dataclass
class ClassScores(Target):
    """Output ``classes[n, k]`` of image n (a vector output): the class logit or raw output."""

    classes: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.int64))

    def cotangents(self, y: np.ndarray) -> list[np.ndarray]:
        return [_entries(np.shape(y), self.classes[:, k], 1.0) for k in range(self.classes.shape[1])]


@dataclass
class BinaryClasses(Target):
    """Class ``classes[n, k]`` of a one-unit sigmoid classifier: class 1 is the unit's logit, class 0 minus
    it.

    The two logits of a two-class softmax equivalent to the sigmoid differ by
    the unit's logit z; explaining class 0 explains -z, the evidence against.
    """

    classes: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.int64))

    def cotangents(self, y: np.ndarray) -> list[np.ndarray]:
        unit = np.zeros(self.classes.shape[0], dtype=np.int64)
        return [
            _entries(np.shape(y), unit, np.where(self.classes[:, k] == 1, 1.0, -1.0))
            for k in range(self.classes.shape[1])
        ]


def _entries(shape: tuple, columns: np.ndarray, values: float | np.ndarray) -> np.ndarray:
    """A zero (N, units) cotangent with ``values`` at (n, ``columns[n]``): row n explains that output."""
    c = np.zeros(shape, dtype=np.float32)
    c[np.arange(len(columns)), columns] = values
    return c


def class_target(binary: bool, classes: np.ndarray, labels: list[list[str]]) -> Target:
    """The target for explicit class indices (N, K): :class:`BinaryClasses` for one sigmoid unit."""
    if binary:
        return BinaryClasses(labels=labels, classes=classes)
    return ClassScores(labels=labels, classes=classes)


@dataclass
class MapMean(Target):
    """The mean of the whole output map (Seg-Grad-CAM's default for a dense output)."""

    def cotangents(self, y: np.ndarray) -> list[np.ndarray]:
        shape = np.shape(y)
        return [np.full(shape, 1.0 / max(1, int(np.prod(shape[1:]))), dtype=np.float32)]


@dataclass
class PixelClasses(Target):
    """Class ``classes[n, k]``'s mean score over the pixels it wins (a per-pixel classifier).

    Vinogradova et al. (2020): the score of class c summed over a set of pixels
    M; M is where c is the predicted class, and the mean keeps scores of large
    and small regions on one scale.
    """

    classes: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.int64))
    masks: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 1, 1), dtype=bool))  # (N, K, H, W)

    def cotangents(self, y: np.ndarray) -> list[np.ndarray]:
        out = []
        for k in range(self.classes.shape[1]):
            c = np.zeros(np.shape(y), dtype=np.float32)
            for n in range(self.classes.shape[0]):
                mask = self.masks[n, k]
                c[n, ..., self.classes[n, k]] = mask / max(1, int(mask.sum()))
            out.append(c)
        return out


def top_classes(outputs: np.ndarray, k: int) -> np.ndarray:
    """Indices (N, k) of the k largest outputs per row, largest first."""
    outputs = np.asarray(outputs)
    return np.argsort(-outputs, axis=1, kind="stable")[:, : max(1, min(k, outputs.shape[1]))]


def top_classes_by_area(maps: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For a per-pixel classifier's output (N, H, W, C): the k classes winning the most pixels.

    Returns (classes (N, k), masks (N, k, H, W), areas (N, k) as fractions of
    the image). An image with fewer than k winning classes repeats its last.
    """
    maps = np.asarray(maps)
    n, h, w, c = maps.shape
    winner = maps.argmax(axis=-1)
    k = max(1, min(k, c))
    classes = np.zeros((n, k), dtype=np.int64)
    masks = np.zeros((n, k, h, w), dtype=bool)
    areas = np.zeros((n, k))
    for i in range(n):
        counts = np.bincount(winner[i].ravel(), minlength=c)
        order = [int(j) for j in np.argsort(-counts, kind="stable") if counts[j] > 0][:k]
        order += [order[-1]] * (k - len(order))
        for j, cls in enumerate(order):
            classes[i, j] = cls
            masks[i, j] = winner[i] == cls
            areas[i, j] = counts[cls] / float(h * w)
    return classes, masks, areas
