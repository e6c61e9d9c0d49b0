"""How each unit behaves on real images: one streaming pass, per-unit counts kept, maps dropped.

For every layer whose output passes through a ReLU-family or saturating
(sigmoid/tanh) activation, the images go through the model in small batches
(ONE pass per batch with a tap on every such layer, :mod:`reportgen.forward`)
and only per-unit numbers are kept: the largest absolute activation, on how
many images the unit fired at all, the fraction of zero outputs, and how many
outputs are saturated. VGG16's 224x224 maps never pile up in memory, and the
same pass serves a folder of thousands of images.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import numpy as np

from reportgen import backend, forward, graph
from reportgen.analyses.weights import activation_name

RELU_LIKE = ("relu", "relu6")
SATURATING = ("sigmoid", "tanh")
BATCH_BYTES = 256 << 20  # captured activations per batch


@dataclass
class UnitActivity:
    """One layer's units over ``images`` images."""

    path: str
    activation: str
    peaks: np.ndarray  # (C,) largest |activation| (NaN where every output was NaN)
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
        return {"active_fraction": [round(float(v), 6) for v in self.active_fraction],
                "zero_fraction": round(float(self.zero_fraction), 6), "images": self.images}


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
        act = activation_name(ref.layer)
        if act in RELU_LIKE or act in SATURATING:
            refs.append(ref)
    return refs


def channel_peaks(activations: np.ndarray) -> np.ndarray:
    """Largest absolute activation per channel (channels last) over images and positions."""
    a = np.abs(np.asarray(activations, dtype=np.float64).reshape(-1, np.shape(activations)[-1]))
    # NaN activations (from NaN weights, reported on their own) must not look silent:
    # a channel that is NaN everywhere gets a NaN peak, which no threshold calls inactive.
    a = np.where(np.isnan(a), -np.inf, a)
    peak = a.max(axis=0)
    return np.where(np.isneginf(peak), np.nan, peak)


def saturated_count(outputs: np.ndarray, function: str, margin: float) -> tuple[int, int]:
    """How many sigmoid/tanh outputs lie within ``margin`` of the function's limits, of how many."""
    y = np.asarray(outputs, dtype=np.float64).ravel()
    y = y[np.isfinite(y)]
    if function == "sigmoid":
        sat = (y <= margin) | (y >= 1.0 - margin)
    else:
        sat = np.abs(y) >= 1.0 - margin
    return int(sat.sum()), int(y.size)


def batch_size(refs: list[graph.LayerRef]) -> int:
    per_image = sum(int(np.prod([d or 1 for d in r.output_shape[1:]])) for r in refs) * 4
    return int(max(1, min(64, BATCH_BYTES // max(1, per_image))))


def unit_activity(model: Any, batches: Iterable[np.ndarray], feeds: Any = None, tolerance: float = 1e-6,
                  margin: float = 0.01, progress: Callable[..., Any] | None = None) -> Activity:
    """Stream ``batches`` of model input (N, H, W, C) through the model; keep per-unit counts."""
    refs = activation_layers(model)
    result = Activity()
    if not refs:
        for batch in batches:
            result.images += len(batch)
        return result
    taps = {r.path: forward.Tap() for r in refs}
    acts = {r.path: activation_name(r.layer) for r in refs}
    zeros = {r.path: [0, 0] for r in refs}
    for batch in batches:
        x = backend.tensor(np.asarray(batch, dtype=np.float32))
        with backend.no_grad():
            trace = forward.run(model, feeds.batch(x) if feeds is not None and not feeds.single else x, taps)
        n = int(batch.shape[0])
        for ref in refs:
            out = backend.numpy(trace.captured[ref.path]).astype(np.float32)
            flat = np.abs(out.reshape(n, -1, out.shape[-1]))
            peaks = channel_peaks(out)
            fired = (np.nan_to_num(flat, nan=np.inf) > tolerance).any(axis=1).sum(axis=0)
            ua = result.layers.get(ref.path)
            if ua is None:
                ua = UnitActivity(ref.path, acts[ref.path], peaks, fired.astype(np.int64), 0.0, tolerance=tolerance)
                result.layers[ref.path] = ua
            else:
                ua.peaks = np.fmax(ua.peaks, peaks)
                ua.active_images += fired
            zeros[ref.path][0] += int((out == 0).sum())
            zeros[ref.path][1] += int(out.size)
            if acts[ref.path] in SATURATING:
                s, total = saturated_count(out, acts[ref.path], margin)
                ua.saturated += s
                ua.outputs += total
        result.images += n
        if progress is not None:
            progress(n)
    for path, ua in result.layers.items():
        ua.images = result.images
        ua.zero_fraction = zeros[path][0] / max(1, zeros[path][1])
    return result


def batches_of(x: np.ndarray, size: int) -> Iterable[np.ndarray]:
    for lo in range(0, len(x), size):
        yield x[lo: lo + size]
