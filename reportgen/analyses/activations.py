"""How each unit behaves on real images: one streaming pass, per-unit counts kept, maps dropped.

For every layer whose output passes through a ReLU-family or saturating
(sigmoid/tanh) activation, the images go through the model in small batches
(ONE pass per batch with a tap on every such layer, :mod:`reportgen.graph.forward`)
and only per-unit numbers are kept: the largest absolute activation, on how
many images the unit fired at all, the fraction of zero outputs, and how many
outputs are saturated. VGG16's 224x224 maps never pile up in memory, and the
same pass serves a folder of thousands of images.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import numpy as np

from reportgen import backend, graph
from reportgen.graph import forward
from reportgen.graph.inputs import model_inputs

RELU_LIKE = ("relu", "relu6")
SATURATING = ("sigmoid", "tanh")
BATCH_BYTES = 256 << 20  # captured activations per batch


@dataclass
class UnitActivity:
    """One layer's units over ``images`` images."""

    path: str
    activation: str
    peaks: np.ndarray  # (C,) largest |activation| (NaN where any output was NaN)
    active_images: np.ndarray  # (C,) images on which the unit exceeded ``tolerance`` somewhere
    zero_fraction: float  # share of exactly-zero outputs over everything
    saturated: int = 0  # outputs within ``margin`` of a sigmoid/tanh limit
    outputs: int = 0  # outputs counted for ``saturated``
    images: int = 0
    tolerance: float = 0.0

    @property
    def active_fraction(self) -> np.ndarray:
        """(C,) share of the images on which each unit fired."""
        return self.active_images / max(1, self.images)

    def to_json(self) -> dict:
        return {
            "active_fraction": [round(float(v), 6) for v in self.active_fraction],
            "zero_fraction": round(float(self.zero_fraction), 6),
            "images": self.images,
        }


@dataclass
class Activity:
    """:class:`UnitActivity` by layer path, over ``images`` images."""

    layers: dict[str, UnitActivity] = field(default_factory=dict)
    images: int = 0


def activation_layers(model: Any) -> list[graph.LayerRef]:
    """Layers whose outputs the activation checks read: ReLU-family and sigmoid/tanh outputs."""
    refs = []
    for ref in graph.walk(model):
        if ref.is_model or ref.is_op or graph.children(ref.layer):
            continue
        if ref.output_shape is None or len(ref.output_shape) < 2:
            continue
        act = graph.activation_name(ref.layer)
        if act in RELU_LIKE or act in SATURATING:
            refs.append(ref)
    return refs


def unit_reduction(kind: str, margin: float) -> Callable[[Any], tuple]:
    """What a tap keeps of one layer's output ``a`` (N, ..., C), computed where ``a`` is made (``keras.ops``).

    Per image and channel the largest |activation|, NaN where the channel saw
    a NaN (a NaN unit must never look silent); per image the number of exact
    zeros, of finite outputs, of outputs that are not, and of saturated
    sigmoid/tanh outputs among the finite ones. Counts are per image, so an
    int32 never overflows; the map itself is dropped as soon as the next layer
    has used it.
    """
    from keras import ops

    def reduce(a: Any) -> tuple:
        axes = tuple(range(1, len(a.shape) - 1))
        every = tuple(range(1, len(a.shape)))
        magnitude = ops.abs(a)
        nan = ops.isnan(a)
        finite = ops.isfinite(a)
        if axes:
            peaks = ops.max(ops.where(nan, 0.0, magnitude), axis=axes)
            nan = ops.any(nan, axis=axes)
        else:
            peaks = ops.where(nan, 0.0, magnitude)
        peaks = ops.where(nan, float("nan"), peaks)

        def count(mask: Any) -> Any:
            return ops.sum(ops.cast(mask, "int32"), axis=every)

        if kind == "sigmoid":
            saturated = count(ops.logical_and(finite, ops.logical_or(a <= margin, a >= 1.0 - margin)))
        elif kind == "tanh":
            saturated = count(ops.logical_and(finite, magnitude >= 1.0 - margin))
        else:
            saturated = ops.zeros((), "int32")
        return peaks, count(ops.equal(a, 0.0)), count(finite), count(ops.logical_not(finite)), saturated

    return reduce


class UnitCounter:
    """Running per-unit counts over batches of :func:`unit_reduction` results."""

    def __init__(self, kinds: dict[str, str], tolerance: float) -> None:
        self.kinds, self.tolerance = kinds, tolerance
        self.layers: dict[str, UnitActivity] = {}
        self.zeros: dict[str, list[int]] = {p: [0, 0] for p in kinds}
        self.images = 0

    def add(self, path: str, stats: tuple) -> None:
        peaks, zeros, finite, nonfinite, saturated = (np.asarray(backend.numpy(v)) for v in stats)
        peaks = peaks.astype(np.float64)
        fired = (np.nan_to_num(peaks, nan=np.inf) > self.tolerance).sum(axis=0).astype(np.int64)
        top = peaks.max(axis=0)  # NaN wins: a unit that ever output NaN is never called silent
        ua = self.layers.get(path)
        if ua is None:
            ua = self.layers[path] = UnitActivity(
                path, self.kinds[path], top, fired, 0.0, tolerance=self.tolerance
            )
        else:
            ua.peaks = np.maximum(ua.peaks, top)
            ua.active_images += fired
        self.zeros[path][0] += int(zeros.sum(dtype=np.int64))
        self.zeros[path][1] += int(finite.sum(dtype=np.int64) + nonfinite.sum(dtype=np.int64))
        if self.kinds[path] in SATURATING:
            ua.saturated += int(saturated.sum(dtype=np.int64))
            ua.outputs += int(finite.sum(dtype=np.int64))

    def result(self) -> Activity:
        for path, ua in self.layers.items():
            ua.images = self.images
            ua.zero_fraction = self.zeros[path][0] / max(1, self.zeros[path][1])
        return Activity(layers=dict(self.layers), images=self.images)


def batch_size(model: Any) -> int:
    """Images per batch of this forward-only pass: :func:`reportgen.graph.images_per_batch` within
    :data:`BATCH_BYTES`."""
    return graph.images_per_batch(model, BATCH_BYTES)


def unit_activity(
    model: Any,
    batches: Iterable[np.ndarray],
    feeds: Any = None,
    tolerance: float = 1e-6,
    margin: float = 0.01,
    progress: Callable[..., Any] | None = None,
) -> Activity:
    """Stream ``batches`` of model input (N, H, W, C) through the model; keep per-unit counts."""
    refs = activation_layers(model)
    kinds = {r.path: graph.activation_name(r.layer) for r in refs}
    counter = UnitCounter(kinds, tolerance)
    taps = {r.path: forward.Tap(reduce=unit_reduction(kinds[r.path], margin)) for r in refs}
    for batch in batches:
        if refs:
            x = backend.tensor(np.asarray(batch, dtype=np.float32))
            with backend.no_grad():
                trace = forward.run(model, model_inputs(feeds, x), taps)
            for ref in refs:
                counter.add(ref.path, trace.captured[ref.path])
        counter.images += len(batch)
        if progress is not None:
            progress(len(batch))
    return counter.result()


def batches_of(x: np.ndarray, size: int) -> Iterable[np.ndarray]:
    for lo in range(0, len(x), size):
        yield x[lo : lo + size]
