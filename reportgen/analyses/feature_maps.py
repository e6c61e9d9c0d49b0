"""Feature maps: what each selected layer outputs for the input images.

All selected activations come from ONE forward pass with a tap on every
selected layer (:func:`reportgen.graph.forward.run`), not one model per layer as in
the tutorials: a VGG16 report would otherwise run the convolutional base 18
times. Taps work on subclassed models too, where there is no graph to cut.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from reportgen import backend, graph
from reportgen.graph import forward
from reportgen.graph.inputs import model_inputs


@dataclass
class LayerMaps:
    """One layer's activations for every image, with per-channel statistics."""

    path: str
    class_name: str
    maps: np.ndarray  # (N, h, w, C) float32
    channel_mean: np.ndarray  # (N, C): mean activation per channel per image
    zero_fraction: np.ndarray  # (N, C): fraction of exactly-zero values (dead ReLU units show as 1.0)

    @property
    def shape(self) -> tuple[int, ...]:
        """The output shape for one image: (h, w, C)."""
        return tuple(int(d) for d in self.maps.shape[1:])


def select_layers(model: Any, names: Sequence[str] | None) -> list[graph.LayerRef]:
    """``--layers`` names (any layer with a 2-D output), else the default selection."""
    if names:
        return graph.find_layers(graph.spatial_layers(model), names, "--layers")
    return graph.default_feature_layers(model)


def channel_stats(maps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-image, per-channel mean and fraction of zeros of (N, h, w, C) maps."""
    m = np.asarray(maps)
    axes = tuple(range(1, m.ndim - 1))
    return m.mean(axis=axes, dtype=np.float64), (m == 0).mean(axis=axes)


def compute(
    model: Any, refs: Sequence[graph.LayerRef], inputs: np.ndarray, feeds: Any = None
) -> list[LayerMaps]:
    """Activations of ``refs`` for a batch of preprocessed ``inputs`` in one forward pass."""
    if not refs:
        return []
    x = backend.tensor(np.asarray(inputs, dtype=np.float32))
    taps = {r.path: forward.Tap() for r in refs}
    with backend.no_grad():  # a model that cannot run on the images fails this section, with its own error
        trace = forward.run(model, model_inputs(feeds, x), taps)
    result = []
    for ref in refs:
        maps = backend.numpy(trace.captured[ref.path]).astype(np.float32)
        mean, zeros = channel_stats(maps)
        result.append(LayerMaps(ref.path, ref.class_name, maps, mean, zeros))
    return result
