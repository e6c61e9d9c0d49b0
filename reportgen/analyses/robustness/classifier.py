"""The model as a function of PIXELS (0-255): its own preprocessing inside the compiled graph.

Every pixel convention reportgen knows (:mod:`reportgen.preprocessing`) is affine
per pixel -- ``x M + b`` with M a C x C matrix (a scale, the caffe mode's
RGB -> BGR swap) -- so the preprocessing is read off the preprocessor itself
(its output on the zero image and the unit images) and applied as one matrix
product in the graph. Gradients then reach the pixels through the model's own
preprocessing on every backend (:func:`reportgen.backend.grad`), and a
corrupted or attacked image is always a picture, clipped to 0-255.

Scores are the explained output as one score per class (:meth:`Head.class_scores`),
logits where the head's activation can be separated (as the CAMs and the data-set
pass use it): the attacks' loss is the cross-entropy of those logits, which
for a softmax head is exactly the cross-entropy of the model's probabilities.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from reportgen import backend, graph
from reportgen.analyses.cam.base import activate, pick
from reportgen.analyses.cam.head import Head
from reportgen.graph import forward
from reportgen.graph.inputs import model_inputs

BATCH_BYTES = 256 << 20  # activations of one batch (kept for the backward pass in the attacks)


def affine_of(preprocessor: Any, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """(M, b) with ``preprocessor.forward(x) == x @ M + b`` for pixels x of ``channels`` channels."""
    zero = np.zeros((1, 1, channels), np.float32)
    b = np.asarray(preprocessor.forward(zero), np.float64).reshape(channels)
    M = np.zeros((channels, channels))
    for j in range(channels):
        e = zero.copy()
        e[..., j] = 1.0
        M[j] = np.asarray(preprocessor.forward(e), np.float64).reshape(channels) - b
    probe = np.random.default_rng(0).uniform(0, 255, (2, 3, channels)).astype(np.float32)
    if not np.allclose(probe @ M + b, preprocessor.forward(probe), rtol=1e-4, atol=1e-3):
        raise ValueError(f"the preprocessing '{preprocessor.option_text()}' is not affine per pixel")
    return M.astype(np.float32), b.astype(np.float32)


class PixelClassifier:
    """Compiled: pixels -> class scores (forward), and pixels -> (scores, d loss / d pixels) (attacks)."""

    def __init__(self, model: Any, head: Head, preprocessor: Any, channels: int, feeds: Any = None) -> None:
        from keras import ops

        self.model, self.head, self.feeds = model, head, feeds
        M, b = affine_of(preprocessor, channels)
        linear = head.score == "logit" and bool(head.final_path)
        self.logits = linear or head.kind == "none"  # the scores are logits (else probabilities)
        logits = self.logits

        def scores(x: Any) -> Any:
            inp = ops.matmul(x, backend.tensor(M)) + backend.tensor(b)
            taps = {head.final_path: forward.Tap(linear=True, capture=False)} if linear else {}
            trace = forward.run(model, model_inputs(feeds, inp), taps)
            return head.class_scores(pick(trace.output, head.output), ops)

        def loss(x: Any, target: Any) -> tuple[Any, Any]:
            y = scores(x)
            onehot = ops.one_hot(target, y.shape[-1], dtype=y.dtype)
            if logits:
                logp = ops.log_softmax(y, axis=-1)
            else:
                logp = ops.log(ops.clip(y, 1e-12, 1.0))
            return -ops.sum(onehot * logp), y

        value_and_grad = backend.grad(loss)

        def gradient(x: Any, target: Any) -> tuple[Any, Any]:
            _value, y, g = value_and_grad(x, target)
            return y, g

        variables = list(model.variables)
        self._scores = backend.function(scores, variables)
        self._gradient = backend.function(gradient, variables)
        self.forward_batch = graph.images_per_batch(model, BATCH_BYTES)
        self.backward_batch = graph.images_per_batch(model, BATCH_BYTES, backward=True)

    def probabilities(self, pixels: np.ndarray) -> np.ndarray:
        """(N, classes): the model's probabilities for images of pixels 0-255, in batches."""
        out = []
        for lo in range(0, len(pixels), self.forward_batch):
            x = backend.tensor(np.asarray(pixels[lo : lo + self.forward_batch], np.float32))
            with backend.no_grad():
                y = backend.numpy(self._scores(x)).astype(np.float64)
            out.append(activate(self.head, y) if self.logits or self.head.is_binary else y)
        return np.concatenate(out) if out else np.zeros((0, 0))

    def gradient(self, pixels: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """d (cross-entropy of ``targets``) / d pixels, in batches (float32, like the pixels)."""
        out = []
        for lo in range(0, len(pixels), self.backward_batch):
            x = backend.tensor(np.asarray(pixels[lo : lo + self.backward_batch], np.float32))
            t = backend.tensor(np.asarray(targets[lo : lo + self.backward_batch], np.int32), "int32")
            _y, g = self._gradient(x, t)
            out.append(backend.numpy(g).astype(np.float32))
        return np.concatenate(out)
