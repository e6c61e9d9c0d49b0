"""The data-set pass: every image of the folders once, in batches, and only statistics kept.

For each batch ONE compiled function runs the model forward with taps on
every ReLU-family and saturating layer and on the CAM layer, takes one
backward pass from each image's explained class (its label, or else its
prediction) to the CAM layer, and returns per image: the output, each unit's
largest |activation| and zero count, and the Grad-CAM map. From those the
pass keeps running sums -- how often each unit fires, accuracy, per-class
accuracy, the confusion matrix, the mean Grad-CAM per class, the most
confident mistakes -- and drops the batch, so memory does not grow with the
number of images (docs/benchmarks.md: 2,000 images vs 100).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import numpy as np

from reportgen import backend, forward, graph
from reportgen.analyses.activations import RELU_LIKE, SATURATING, Activity, UnitActivity, activation_layers
from reportgen.analyses.cam.base import activate, pick
from reportgen.analyses.cam.head import Head
from reportgen.analyses.weights import activation_name

BATCH_BYTES = 384 << 20  # activations kept for one batch's backward pass
MISTAKES = 8


@dataclass
class Mistake:
    index: int  # the file's position in the folder listing
    label: int
    predicted: int
    confidence: float
    cam: np.ndarray  # (h, w) in [0, 1]


@dataclass
class DatasetStats:
    """Statistics over every readable image of the folders."""

    images: int = 0
    labelled: int = 0
    correct: int = 0
    confusion: np.ndarray | None = None  # (classes, classes): true x predicted, labelled images
    per_class_images: np.ndarray | None = None
    per_class_correct: np.ndarray | None = None
    cam_sum: dict[int, np.ndarray] = field(default_factory=dict)  # class -> summed CAM
    cam_count: dict[int, int] = field(default_factory=dict)
    mistakes: list[Mistake] = field(default_factory=list)
    activity: Activity = field(default_factory=Activity)
    layer: str | None = None
    seconds: float = 0.0

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.labelled if self.labelled else None

    def mean_cam(self, c: int) -> np.ndarray:
        return self.cam_sum[c] / max(1, self.cam_count[c])


def batch_size(model: Any, refs: list[graph.LayerRef]) -> int:
    """Images per batch within :data:`BATCH_BYTES`: every layer's output, kept for the backward pass, ~3 copies."""
    per = sum(int(np.prod([d or 1 for d in r.output_shape[1:]])) for r in graph.walk(model)
              if r.output_shape is not None and len(r.output_shape) > 1 and not r.is_model) * 4 * 3
    return int(max(1, min(64, BATCH_BYTES // max(1, per))))


class DatasetPass:
    """One compiled function per batch: outputs, unit statistics and Grad-CAM maps."""

    def __init__(self, model: Any, head: Head, cam_layer: str | None, feeds: Any = None, tolerance: float = 1e-6,
                 margin: float = 0.01) -> None:
        from keras import ops

        self.model, self.head, self.layer, self.feeds = model, head, cam_layer, feeds
        self.refs = activation_layers(model)
        self.kinds = {r.path: activation_name(r.layer) for r in self.refs}
        self.tolerance, self.margin = tolerance, margin
        classify = head.units is not None and not head.is_map

        def run(delta: Any, x: Any, labels: Any) -> tuple[Any, Any]:
            taps = {r.path: forward.Tap() for r in self.refs}
            if cam_layer is not None:
                taps[cam_layer] = forward.Tap(add=delta)
            if head.score == "logit" and head.final_path and head.final_path != cam_layer:
                taps[head.final_path] = forward.Tap(linear=True, capture=False)
            inputs = x if feeds is None or feeds.single else feeds.batch(x)
            trace = forward.run(model, inputs, taps)
            y = pick(trace.output, head.output)
            stats = {}
            for r in self.refs:
                a = trace.captured[r.path]
                axes = tuple(range(1, len(a.shape) - 1))
                flat = ops.abs(a)
                peaks = ops.max(flat, axis=axes) if axes else flat  # (N, C)
                zeros = ops.sum(ops.cast(ops.equal(a, 0.0), "float32"))
                if self.kinds[r.path] in SATURATING:
                    if self.kinds[r.path] == "sigmoid":
                        sat = ops.logical_or(a <= margin, a >= 1.0 - margin)
                    else:
                        sat = ops.abs(a) >= 1.0 - margin
                    saturated = ops.sum(ops.cast(sat, "float32"))
                else:
                    saturated = ops.zeros(())
                stats[r.path] = (peaks, zeros, saturated)
            if classify:
                predicted = ops.argmax(y, axis=-1)
                target = ops.where(labels >= 0, labels, predicted)
                chosen = ops.take_along_axis(y, ops.expand_dims(ops.stop_gradient(target), 1), axis=1)[:, 0]
                score = ops.sum(chosen)
            else:
                score = ops.sum(ops.mean(y, axis=tuple(range(1, len(y.shape)))))
            acts = trace.captured[cam_layer] if cam_layer is not None else ops.zeros(())
            return score, (y, stats, acts)

        value_and_grad = backend.grad(run)

        def step(delta: Any, x: Any, labels: Any) -> tuple:
            _score, (y, stats, acts), grads = value_and_grad(delta, x, labels)
            if cam_layer is None:
                return y, stats, ops.zeros(())
            alpha = ops.mean(grads, axis=(1, 2))  # Grad-CAM: pooled gradients
            cam = ops.relu(ops.einsum("nhwk,nk->nhw", acts, alpha))
            return y, stats, cam

        self._step = backend.function(step, list(model.variables))

    def __call__(self, x: np.ndarray, labels: np.ndarray, delta_shape: tuple) -> tuple:
        delta = backend.tensor(np.zeros(delta_shape, dtype=np.float32))
        y, stats, cam = self._step(delta, backend.tensor(x), backend.tensor(labels.astype(np.int32), "int32"))
        out = backend.numpy(y).astype(np.float64)
        stats = {p: tuple(backend.numpy(v) for v in s) for p, s in stats.items()}
        return out, stats, backend.numpy(cam).astype(np.float64)


def run_pass(model: Any, head: Head, cam_layer: str | None, batches: Iterable[tuple[np.ndarray, np.ndarray, list[int]]],
             classes: int | None, feeds: Any = None, tolerance: float = 1e-6, margin: float = 0.01,
             tick: Callable[[int], None] | None = None) -> DatasetStats:
    """Stream ``batches`` of (model input, labels with -1 for none, file indices) through the model."""
    import time

    t0 = time.perf_counter()
    runner = DatasetPass(model, head, cam_layer, feeds, tolerance, margin)
    stats = DatasetStats(layer=cam_layer)
    classify = head.units is not None and not head.is_map
    k = head.units if classify else None
    if classify and classes:
        k = max(k, classes)
    if classify:
        stats.confusion = np.zeros((k, k), dtype=np.int64)
        stats.per_class_images = np.zeros(k, dtype=np.int64)
        stats.per_class_correct = np.zeros(k, dtype=np.int64)
    layer_shape = graph.anatomy(model).ref(cam_layer).output_shape if cam_layer else None
    acts: dict[str, UnitActivity] = {}
    zeros: dict[str, list[int]] = {}
    heap: list[tuple[float, int, Mistake]] = []
    for x, labels, idx in batches:
        n = len(x)
        delta_shape = (n,) + tuple(int(d) for d in layer_shape[1:]) if layer_shape else (n,)
        y, unit_stats, cam = runner(x, labels, delta_shape)
        probs = activate(head, y)
        for path, (peaks, zero_count, saturated) in unit_stats.items():
            peaks = peaks.astype(np.float64)
            fired = (np.nan_to_num(peaks, nan=np.inf) > tolerance).sum(axis=0)
            ua = acts.get(path)
            if ua is None:
                ua = acts[path] = UnitActivity(path, runner.kinds[path], peaks.max(axis=0), fired.astype(np.int64),
                                               0.0, tolerance=tolerance)
                zeros[path] = [0, 0, 0, 0]
            else:
                ua.peaks = np.fmax(ua.peaks, peaks.max(axis=0))
                ua.active_images += fired
            size = int(np.prod(unit_stats[path][0].shape)) // max(1, n)  # channels
            positions = _positions(model, path)
            zeros[path][0] += int(zero_count)
            zeros[path][1] += n * size * positions
            ua.saturated += int(saturated)
            ua.outputs += n * size * positions if runner.kinds[path] in SATURATING else 0
        if cam.ndim == 3:
            peak = cam.reshape(n, -1).max(axis=1)
            norm = cam / np.where(peak > 0, peak, 1.0)[:, None, None]
        else:
            norm = None
        if classify:
            predicted = probs.argmax(axis=1)
            target = np.where(labels >= 0, labels, predicted)
            for i in range(n):
                if norm is not None:
                    c = int(target[i])
                    stats.cam_sum[c] = stats.cam_sum.get(c, 0) + norm[i]
                    stats.cam_count[c] = stats.cam_count.get(c, 0) + 1
                if labels[i] < 0:
                    continue
                t, p = int(labels[i]), int(predicted[i])
                stats.labelled += 1
                stats.correct += int(t == p)
                stats.confusion[t, p] += 1
                stats.per_class_images[t] += 1
                stats.per_class_correct[t] += int(t == p)
                if t != p:
                    conf = float(probs[i, p])
                    item = (conf, idx[i], Mistake(idx[i], t, p, conf, norm[i] if norm is not None else None))
                    if len(heap) < MISTAKES:
                        heapq.heappush(heap, item)
                    elif conf > heap[0][0]:
                        heapq.heapreplace(heap, item)
        elif norm is not None:
            stats.cam_sum[-1] = stats.cam_sum.get(-1, 0) + norm.sum(axis=0)
            stats.cam_count[-1] = stats.cam_count.get(-1, 0) + n
        stats.images += n
        if tick is not None:
            tick(n)
    for path, ua in acts.items():
        ua.images = stats.images
        ua.zero_fraction = zeros[path][0] / max(1, zeros[path][1])
    stats.activity = Activity(layers=acts, images=stats.images)
    stats.mistakes = [m for _c, _i, m in sorted(heap, key=lambda t: (-t[0], t[1]))]
    stats.seconds = time.perf_counter() - t0
    return stats


def _positions(model: Any, path: str) -> int:
    shape = graph.anatomy(model).ref(path).output_shape or ()
    return int(np.prod([d or 1 for d in shape[1:-1]])) if len(shape) > 2 else 1
