"""Grad-CAM (Selvaraju et al. 2017): which part of the image drives a class score.

For a target layer A (the last convolutional layer before the classifier, as
in Chollet 5.4 and the keras-io example) and a class c with score y_c:

    alpha_k = mean over (i, j) of d y_c / d A_ij^k      (pooled gradients)
    L_c     = ReLU( sum_k alpha_k A^k )                 (weighted sum, ReLU)

normalised to [0, 1] by its maximum. ``y_c`` is the score *before* the final
softmax / sigmoid when that activation can be separated from the model (as in
the paper and the keras-io example, which removes the last layer's softmax):
after a softmax, the gradient of one probability also carries every other
class' score. When it cannot be separated, the model's own output is used.

A whole batch of images goes through ONE forward pass of one two-output
sub-model (the target layer's activations and the classifier's input); the
top-k classes of every image then take one gradient each from the same tape.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from reportgen import graph
from reportgen.errors import UserError

_SEPARABLE = ("softmax", "sigmoid")


@dataclass(frozen=True)
class Head:
    """How the model turns its last features into outputs.

    ``kind``: ``softmax`` (a class distribution), ``sigmoid`` (independent
    class probabilities) or ``none`` (raw outputs: logits, a regression head).
    ``score``: what Grad-CAM differentiates: ``logit`` (before the activation)
    or ``output``.
    """

    kind: str
    score: str
    final_path: str | None
    units: int | None
    note: str | None = None

    @property
    def is_classifier(self) -> bool:
        return self.kind in _SEPARABLE


@dataclass
class GradCam:
    """Grad-CAM for a batch: heatmaps (N, K, h, w) in [0, 1] and what produced them."""

    layer: str
    heatmaps: np.ndarray  # (N, K, h, w), each normalised to [0, 1] (all zero when no positive evidence)
    peaks: np.ndarray  # (N, K): the heatmap's maximum before normalising
    class_indices: np.ndarray  # (N, K)
    outputs: np.ndarray  # (N, units): the model's outputs (probabilities for classifiers)
    scores: np.ndarray  # (N, K): the differentiated score y_c


def _activation_name(layer: Any) -> str:
    if isinstance(layer, graph.keras.layers.Softmax):
        return "softmax"
    act = getattr(layer, "activation", None)
    return getattr(act, "__name__", "") if act is not None else ""


def _single(x: Any) -> Any:
    while isinstance(x, (list, tuple)) and len(x) == 1:
        x = x[0]
    return x


def _final_ref(model: Any) -> tuple[str, Any] | None:
    """The innermost layer that produces the model's output: (path, layer)."""
    flat = graph.flat_graph(model)
    out = _single(flat.outputs)
    if isinstance(out, (list, tuple, dict)):
        return None
    found = None
    for path, layer, _depth in flat.order:
        if flat.by_path.get(path) is out and not isinstance(layer, graph.keras.Model):
            found = (path, layer)
    return found


def classifier_head(model: Any) -> Head:
    """Inspect the model's output: a softmax/sigmoid classifier or something else."""
    outputs = getattr(model, "outputs", None) or []
    if len(outputs) != 1 or len(tuple(outputs[0].shape)) != 2:
        shapes = ", ".join(str(tuple(o.shape)) for o in outputs) or "(unknown)"
        return Head("none", "output", None, None,
                    f"The model's output {shapes} is not one vector of class scores, so it has no top "
                    "predictions and Grad-CAM cannot be computed.")
    units = int(outputs[0].shape[-1])
    final = _final_ref(model)
    if final is None:
        return Head("none", "output", None, units,
                    "The model's output layer could not be identified; Grad-CAM uses the raw outputs.")
    path, layer = final
    act = _activation_name(layer)
    if act == "softmax" or (act == "sigmoid"):
        args = graph.flat_graph(model).args_by_path.get(path)
        separable = (
            args is not None and len(args) == 1
            and (isinstance(layer, (graph.keras.layers.Dense, graph.keras.layers.Activation,
                                    graph.keras.layers.Softmax)))
        )
        note = None
        if act == "sigmoid":
            note = ("The model ends in a sigmoid: each output is an independent probability, "
                    "so the probabilities below need not sum to 1.")
        return Head(act, "logit" if separable else "output", path, units, note)
    what = f"a '{act}' activation" if act and act != "linear" else "no softmax"
    return Head("none", "output", path, units,
                f"The model's output has {what}: it is not a class score (a regression head, or "
                "logits). Values below are raw outputs, not probabilities, and Grad-CAM explains "
                "the largest raw outputs.")


def is_classifier(model: Any) -> bool:
    """True when the model ends in a softmax (or sigmoid) over class scores."""
    return classifier_head(model).is_classifier


def find_target_layer(model: Any) -> graph.LayerRef:
    """The last convolutional layer with a 2-D output of more than one pixel (nested models included).

    ``block5_conv3`` for VGG16, as in Chollet. Raises :class:`UserError` when
    the model has none.
    """
    target = graph.last_map_conv(model)
    if target is None:
        spatial = ", ".join(r.path for r in graph.spatial_layers(model)) or "(none)"
        raise UserError(
            "Grad-CAM: the model has no 2-D convolutional layer; pick a layer with a 2-D output "
            f"with --gradcam-layer (valid names: {spatial}) or drop the gradcam section"
        )
    return target


def resolve_layer(model: Any, name: str | None) -> graph.LayerRef:
    """``--gradcam-layer`` (any layer with a 2-D output), else :func:`find_target_layer`."""
    if name:
        return graph.find_layers(graph.spatial_layers(model), [name], "--gradcam-layer")[0]
    return find_target_layer(model)


def _score_model(model: Any, layer_path: str, head: Head) -> tuple[Any, Any]:
    """One sub-model giving [target activations, the classifier's input or output].

    Returns (sub-model, function from its second output to scores and outputs).
    """
    import keras

    flat = graph.flat_graph(model)
    if layer_path not in flat.by_path:
        raise UserError(f"--gradcam-layer: '{layer_path}' is not a layer of the model")
    target = flat.by_path[layer_path]
    if head.score == "logit" and head.final_path is not None:
        layer = dict((p, l) for p, l, _ in flat.order)[head.final_path]
        pre = flat.args_by_path[head.final_path][0]  # the classifier layer's input
        sub = keras.Model(flat.inputs, [target, pre])
        if isinstance(layer, keras.layers.Dense):
            def to_logits(h: Any) -> Any:
                z = keras.ops.matmul(h, layer.kernel)
                return z + layer.bias if layer.bias is not None else z
        else:
            def to_logits(h: Any) -> Any:
                return h
        activate = keras.activations.softmax if head.kind == "softmax" else keras.activations.sigmoid
        return sub, lambda h: (lambda z: (z, activate(z)))(to_logits(h))
    sub = keras.Model(flat.inputs, [target, _single(flat.outputs)])
    return sub, lambda y: (y, y)


def compute(
    model: Any,
    layer_path: str,
    inputs: np.ndarray,
    class_indices: np.ndarray | Sequence | None = None,
    top_k: int = 3,
) -> GradCam:
    """Grad-CAM for a batch in one forward pass.

    ``class_indices``: (N,) or (N, K) classes to explain; None explains each
    image's ``top_k`` highest outputs.
    """
    import tensorflow as tf

    head = classifier_head(model)
    if head.units is None:
        raise UserError("Grad-CAM: " + (head.note or "the model's output is not a vector of class scores"))
    sub, scoring = _score_model(model, layer_path, head)
    x = tf.convert_to_tensor(np.asarray(inputs, dtype=np.float32))
    n = int(x.shape[0])
    with tf.GradientTape(persistent=True) as tape:
        acts, second = sub([x], training=False)
        scores_all, outputs = scoring(second)
        if class_indices is None:
            k = max(1, min(int(top_k), head.units))
            classes = np.argsort(-np.asarray(outputs), axis=1, kind="stable")[:, :k]
        else:
            classes = np.asarray(class_indices, dtype=np.int64)
            classes = classes[:, None] if classes.ndim == 1 else classes
            if classes.shape[0] != n:
                raise ValueError(f"class_indices has {classes.shape[0]} rows for {n} images")
            if classes.size and (classes.min() < 0 or classes.max() >= head.units):
                raise UserError(f"Grad-CAM: class index out of range 0..{head.units - 1}")
        targets = [tf.gather(scores_all, classes[:, j], axis=1, batch_dims=1) for j in range(classes.shape[1])]
    heatmaps, peaks = [], []
    for target in targets:
        grads = tape.gradient(target, acts)
        if grads is None:
            raise UserError(
                f"--gradcam-layer: the model's output does not depend on '{layer_path}'; "
                "pick a layer between the input and the classifier"
            )
        pooled = tf.reduce_mean(grads, axis=(1, 2))  # (N, C)
        cam = tf.nn.relu(tf.einsum("nhwc,nc->nhw", acts, pooled)).numpy().astype(np.float64)
        peak = cam.reshape(n, -1).max(axis=1)
        safe = np.where(peak > 0, peak, 1.0)
        heatmaps.append((cam / safe[:, None, None]).astype(np.float32))
        peaks.append(peak)
    del tape
    scores = np.stack([t.numpy() for t in targets], axis=1)
    return GradCam(
        layer=layer_path,
        heatmaps=np.stack(heatmaps, axis=1),
        peaks=np.stack(peaks, axis=1),
        class_indices=classes,
        outputs=np.asarray(outputs, dtype=np.float64),
        scores=scores,
    )


def gradcam_heatmaps(model: Any, layer_path: str, inputs: np.ndarray, class_indices: Sequence[int] | np.ndarray) -> np.ndarray:
    """Grad-CAM heatmaps (N, h, w) in [0, 1] at the layer's resolution, one batch.

    ``class_indices`` holds one class per image. An image whose class has no
    positive evidence at the layer gets an all-zero map.
    """
    classes = np.asarray(class_indices, dtype=np.int64).reshape(-1)
    return compute(model, layer_path, inputs, classes).heatmaps[:, 0]


def top_predictions(outputs: np.ndarray, k: int) -> np.ndarray:
    """Indices (N, k) of the k largest outputs per row, largest first."""
    outputs = np.asarray(outputs)
    return np.argsort(-outputs, axis=1, kind="stable")[:, : max(1, min(k, outputs.shape[1]))]


def upsample(heatmap: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear upsampling of a [0, 1] heatmap to the image size (as the keras-io example)."""
    from PIL import Image

    img = Image.fromarray(np.ascontiguousarray(heatmap, dtype=np.float32))
    return np.clip(np.asarray(img.resize((width, height), Image.Resampling.BILINEAR)), 0.0, 1.0)
