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

For the review (:mod:`reportgen.analyses.review`) it also keeps a few numbers
per image -- the class probabilities, the penultimate layer's output projected
to at most 256 dimensions, a 64-bit perceptual hash and seven pixel properties
-- which grow with the images (N x (classes + 256 + 8) floats), not with their
size.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import numpy as np

from reportgen import backend, graph
from reportgen.graph import forward
from reportgen.graph.inputs import model_inputs
from reportgen.analyses.activations import Activity, UnitCounter, activation_layers, unit_reduction
from reportgen.analyses.cam.base import activate, normalise, pick
from reportgen.analyses.cam.gradcam import gradcam_map
from reportgen.analyses.cam.head import Head

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
    # Per readable image, in pass order (the review's inputs; see the module's docstring for their size).
    indices: np.ndarray | None = None  # file index in the folder listing
    labels: np.ndarray | None = None  # -1: unlabelled
    probs: np.ndarray | None = None  # (N, classes) float32, classifiers only
    embeddings: np.ndarray | None = None  # (N, <= 256) float32; None when the model has no penultimate layer
    embedding_layer: str | None = None
    hashes: np.ndarray | None = None  # (N,) uint64 perceptual hashes
    properties: np.ndarray | None = None  # (N, 7): reportgen.analyses.review.PROPERTIES
    roots: np.ndarray | None = None  # which --images folder each image came from
    review: Any = None  # reportgen.analyses.review.Review

    def pair(self, d: Any) -> tuple[bool, bool | None]:
        """(across folders, same label) of a duplicate pair; same label is None unless both are labelled."""
        across = bool(self.roots is not None and self.roots[d.a] != self.roots[d.b])
        la, lb = int(self.labels[d.a]), int(self.labels[d.b])
        return across, (la == lb) if la >= 0 and lb >= 0 else None

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.labelled if self.labelled else None

    def mean_cam(self, c: int) -> np.ndarray:
        return self.cam_sum[c] / max(1, self.cam_count[c])


def batch_size(model: Any) -> int:
    """Images per batch of this pass (it has a backward pass): :func:`reportgen.graph.images_per_batch` within
    :data:`BATCH_BYTES`."""
    return graph.images_per_batch(model, BATCH_BYTES, backward=True)


class DatasetPass:
    """One compiled function per batch: outputs, unit statistics and Grad-CAM maps."""

    def __init__(
        self,
        model: Any,
        head: Head,
        cam_layer: str | None,
        feeds: Any = None,
        tolerance: float = 1e-6,
        margin: float = 0.01,
        embed: str | None = None,
    ) -> None:
        from keras import ops

        self.model, self.head, self.layer, self.feeds = model, head, cam_layer, feeds
        self.embed = embed
        self._projection: Any = False
        linear_head = head.score == "logit" and head.final_path and head.final_path != cam_layer
        # The output layer's activation is stripped to explain its logit, so it is not a unit to count.
        self.refs = [r for r in activation_layers(model) if not (linear_head and r.path == head.final_path)]
        self.kinds = {r.path: graph.activation_name(r.layer) for r in self.refs}
        self.tolerance, self.margin = tolerance, margin
        self._shapes: dict[tuple, tuple] = {}
        classify = head.units is not None and not head.is_map

        reducers = {r.path: unit_reduction(self.kinds[r.path], margin) for r in self.refs}

        def flat(t: Any) -> Any:  # one vector per image: a map's mean over its positions
            t = ops.cast(t, "float32")
            return ops.mean(t, axis=tuple(range(1, len(t.shape) - 1))) if len(t.shape) > 2 else t

        def run(delta: Any, x: Any, labels: Any) -> tuple[Any, Any]:
            taps = {p: forward.Tap(reduce=f) for p, f in reducers.items()}
            if embed is not None and embed != cam_layer:
                both = reducers.get(embed)
                taps[embed] = forward.Tap(reduce=(lambda t: (both(t), flat(t))) if both else flat)
            if cam_layer is not None:
                taps[cam_layer] = forward.Tap(add=delta)
            if linear_head:
                taps[head.final_path] = forward.Tap(linear=True, capture=False)
            trace = forward.run(model, model_inputs(feeds, x), taps)
            y = head.class_scores(pick(trace.output, head.output), ops)  # one sigmoid unit: two classes
            stats = {
                p: f(trace.captured[p]) if p == cam_layer else trace.captured[p] for p, f in reducers.items()
            }
            emb = ops.zeros(())
            if embed is not None:
                if embed == cam_layer:
                    emb = flat(trace.captured[cam_layer])
                elif embed in reducers:
                    stats[embed], emb = stats[embed]
                else:
                    emb = trace.captured[embed]
            if classify:
                predicted = ops.argmax(y, axis=-1)
                target = ops.where(labels >= 0, labels, predicted)
                chosen = ops.take_along_axis(y, ops.expand_dims(ops.stop_gradient(target), 1), axis=1)[:, 0]
                score = ops.sum(chosen)
            else:
                score = ops.sum(ops.mean(y, axis=tuple(range(1, len(y.shape)))))
            acts = trace.captured[cam_layer] if cam_layer is not None else ops.zeros(())
            return score, (y, stats, acts, ops.stop_gradient(emb))

        value_and_grad = backend.grad(run)

        def step(delta: Any, x: Any, labels: Any) -> tuple:
            _score, (y, stats, acts, emb), grads = value_and_grad(delta, x, labels)
            if cam_layer is None:
                return y, stats, ops.zeros(()), emb
            return y, stats, gradcam_map(acts, grads, ops), emb  # the CAM package's Grad-CAM, on tensors

        self._step = backend.function(step, list(model.variables))

    def delta_shape(self, x: np.ndarray) -> tuple:
        """The CAM layer's output shape for this batch (a spatial size the model leaves open is measured)."""
        if self.layer is None:
            return (len(x),)
        key = tuple(x.shape[1:])
        if key not in self._shapes:
            shape = graph.anatomy(self.model).ref(self.layer).map_shape
            dims = tuple(shape[1:])
            if any(d is None for d in dims):
                trace = forward.run(
                    self.model, model_inputs(self.feeds, x[:1]), {self.layer: forward.Tap(stop=True)}
                )
                dims = tuple(int(d) for d in backend.numpy(trace.captured[self.layer]).shape[1:])
            self._shapes[key] = tuple(int(d) for d in dims)
        return (len(x),) + self._shapes[key]

    def __call__(self, x: np.ndarray, labels: np.ndarray) -> tuple:
        delta = backend.tensor(np.zeros(self.delta_shape(x), dtype=np.float32))
        y, stats, cam, emb = self._step(
            delta, backend.tensor(x), backend.tensor(labels.astype(np.int32), "int32")
        )
        out = backend.numpy(y).astype(np.float64)
        stats = {p: tuple(backend.numpy(v) for v in s) for p, s in stats.items()}
        return out, stats, backend.numpy(cam).astype(np.float64), self.project(backend.numpy(emb))

    def project(self, emb: np.ndarray) -> np.ndarray | None:
        """The embedding through the fixed random projection
        (:func:`reportgen.analyses.review.projection`)."""
        if self.embed is None or emb.ndim != 2:
            return None
        if self._projection is False:
            from reportgen.analyses.review import projection

            self._projection = projection(emb.shape[1])
        emb = emb.astype(np.float32)
        return emb if self._projection is None else emb @ self._projection


def run_pass(
    model: Any,
    head: Head,
    cam_layer: str | None,
    batches: Iterable[tuple[np.ndarray, np.ndarray, list[int]]],
    classes: int | None,
    feeds: Any = None,
    tolerance: float = 1e-6,
    margin: float = 0.01,
    tick: Callable[[int], None] | None = None,
    embed: str | None = None,
) -> DatasetStats:
    """Stream ``batches`` of (model input, labels with -1 for none, file indices) through the model;
    ``embed``: the layer whose output is each image's embedding (:func:`embedding_layer`)."""
    import time

    t0 = time.perf_counter()
    runner = DatasetPass(model, head, cam_layer, feeds, tolerance, margin, embed)
    stats = DatasetStats(layer=cam_layer, embedding_layer=embed)
    kept_idx: list[np.ndarray] = []
    kept_labels: list[np.ndarray] = []
    kept_probs: list[np.ndarray] = []
    kept_emb: list[np.ndarray] = []
    classify = head.units is not None and not head.is_map
    k = head.classes if classify else None
    if classify and classes:
        k = max(k, classes)
    if classify:
        stats.confusion = np.zeros((k, k), dtype=np.int64)
        stats.per_class_images = np.zeros(k, dtype=np.int64)
        stats.per_class_correct = np.zeros(k, dtype=np.int64)
    counter = UnitCounter(runner.kinds, tolerance)
    heap: list[tuple[float, int, Mistake]] = []
    for x, labels, idx in batches:
        n = len(x)
        y, unit_stats, cam, emb = runner(x, labels)
        probs = activate(head, y)
        kept_idx.append(np.asarray(idx, dtype=np.int64))
        kept_labels.append(np.asarray(labels, dtype=np.int64))
        if classify:
            kept_probs.append(probs.reshape(n, -1).astype(np.float32))
        if emb is not None:
            kept_emb.append(emb)
        for path, reduced in unit_stats.items():
            counter.add(path, reduced)
        counter.images += n
        norm = (
            normalise(cam)[0].astype(np.float64) if cam.ndim == 3 else None
        )  # as every CAM: each map / its max
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
    stats.activity = counter.result()
    if kept_idx:
        stats.indices, stats.labels = np.concatenate(kept_idx), np.concatenate(kept_labels)
        stats.probs = np.concatenate(kept_probs) if kept_probs else None
        stats.embeddings = np.concatenate(kept_emb) if kept_emb and len(kept_emb) == len(kept_idx) else None
    stats.mistakes = [m for _c, _i, m in sorted(heap, key=lambda t: (-t[0], t[1]))]
    stats.seconds = time.perf_counter() - t0
    return stats


class PixelFacts:
    """What the review measures on each readable file's own pixels, in pass order: the properties and the
    perceptual hash (:mod:`reportgen.analyses.review`). Given to :func:`reportgen.images.folders.batches`."""

    def __init__(self) -> None:
        self.props: list[np.ndarray] = []
        self.hashes: list[int] = []

    def __call__(self, index: int, pixels: np.ndarray) -> None:
        from reportgen.analyses import review

        props, phash = review.facts(pixels)
        self.props.append(props)
        self.hashes.append(phash)

    def attach(self, stats: DatasetStats) -> None:
        if self.props:
            stats.properties = np.stack(self.props).astype(np.float32)
            stats.hashes = np.asarray(self.hashes, dtype=np.uint64)


def embedding_layer(model: Any, head: Head) -> str | None:
    """The penultimate layer: the one the classifier layer is called on (past a separate softmax layer);
    None for a model without a traced graph or a classifier on the input itself."""
    import keras

    from reportgen.analyses.findings.causes import producers

    if head.final_path is None or head.is_map:
        return None
    prods = producers(model)
    if not prods:
        return None

    def feeding(path: str) -> str | None:
        found = [p for p in prods.get(path, []) if p is not None]
        return found[0] if len(found) == 1 else None

    path: str | None = head.final_path
    if isinstance(graph.anatomy(model).by_path.get(path), (keras.layers.Activation, keras.layers.Softmax)):
        path = feeding(path)  # a separate softmax: its input is the classifier's logits
    return feeding(path) if path is not None else None
