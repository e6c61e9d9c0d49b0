"""The shared base of the CAM methods: forward pass, targets, gradients, heatmaps.

:class:`BaseCAM` owns everything the methods share (the pytorch-grad-cam
layout): one forward pass of a batch with a zero perturbation added at the
target layer A (so that d score / d A comes out of the backward pass on every
backend, :mod:`reportgen.backend`), the classifier layer run without its
softmax/sigmoid when the score is a logit, the targets chosen from the
model's own output (:mod:`~reportgen.analyses.cam.targets`), one
vector-Jacobian product per target, and the ReLU and normalisation of the
result. A method only says how it weighs the activations: ``weights(A, dY/dA)``
per channel, or a whole ``maps`` of its own (LayerCAM, Score-CAM).

Heatmaps come at the layer's resolution, each normalised to [0, 1] by its
maximum (all zero when there is no positive evidence); ``peaks`` keeps the
maxima. Everything runs in float32 (:func:`reportgen.graph.forward.float32`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Sequence

import numpy as np

from reportgen import backend, graph
from reportgen.graph import forward
from reportgen.analyses.cam import targets as T
from reportgen.analyses.cam.head import Head, pick, two_classes  # noqa: F401  (pick: re-exported)
from reportgen.errors import UserError
from reportgen.graph.inputs import Feeds, model_inputs


@dataclass
class CamResult:
    """One method's heatmaps for a batch, and what produced them."""

    method: str
    layer: str
    heatmaps: np.ndarray  # (N, K, h, w) in [0, 1]
    peaks: np.ndarray  # (N, K): each map's maximum before normalising
    target: T.Target  # what was explained (fixed: the sanity check reuses it)
    outputs: np.ndarray  # (N, ...): probabilities for classifiers, else the raw output
    scores: np.ndarray  # (N, K): the explained scores
    # (N, K): the layer's first-order contribution to the score, mean over the map's cells of
    # sum_k |w A^k| (gradient methods: w = dy/dA; Score-CAM: its channel weights): the scale a peak is read
    # against.
    scales: np.ndarray | None = None

    @property
    def class_indices(self) -> np.ndarray | None:
        return getattr(self.target, "classes", None)

    @property
    def negligible(self) -> np.ndarray:
        """(N, K): maps whose peak is negligible (:func:`negligible`): drawn as "no evidence", not
        stretched."""
        return negligible(self.peaks, self.scales)


NEGLIGIBLE = 1e-3  # a peak under this fraction of the layer's contribution scale is no evidence


def negligible(peaks: np.ndarray, scales: np.ndarray | None) -> np.ndarray:
    """Whether each map's positive peak is negligible: zero, or at most :data:`NEGLIGIBLE` times the layer's
    first-order contribution to the explained score (``scales``: mean over the map's cells of
    ``sum_k |dy/dA^k A^k|``). A map normalised to its own maximum would stretch a peak of 1e-7 to full
    contrast; measured against what the layer contributes, such a map shows no evidence. docs/findings.md."""
    peaks = np.asarray(peaks, dtype=np.float64)
    if scales is None:
        return peaks <= 0
    scales = np.asarray(scales, dtype=np.float64)
    return (peaks <= 0) | ~(peaks > NEGLIGIBLE * scales)


@dataclass
class Pass:
    """One forward pass and its backward passes, handed to a method's ``maps``."""

    x: Any  # the input batch (model input space)
    y: np.ndarray  # the chosen output (logits when the score is a logit)
    acts: np.ndarray  # (N, h, w, C) at the target layer
    grads: list[np.ndarray] = field(default_factory=list)  # per target: d score / d acts
    target: T.Target | None = None


def activate(head: Head, y: np.ndarray) -> np.ndarray:
    """The model's own output from the explained one (or from :meth:`Head.class_scores` of it):
    softmax/sigmoid of logits, else as is."""
    y = np.asarray(y, dtype=np.float64)
    if head.is_binary:  # one sigmoid unit (its last column: also of its two-class scores): classes 0 and 1
        z = y[..., -1:]
        return two_classes(1.0 / (1.0 + np.exp(-z)) if head.score == "logit" else z, logit=False)
    if head.score != "logit":
        return y
    if head.kind in ("softmax", "pixel-softmax"):
        z = y - y.max(axis=-1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=-1, keepdims=True)
    return 1.0 / (1.0 + np.exp(-y))


def default_target(head: Head, y: np.ndarray, top_k: int, names: Sequence[str] | None = None) -> T.Target:
    """The targets a report explains: top-k classes, top classes by area, or the map's mean."""
    from reportgen.images import label_for

    n = y.shape[0]
    if head.kind == "pixel-softmax":
        classes, masks, areas = T.top_classes_by_area(y, top_k)
        labels = [
            [f"{label_for(int(c), names)} ({100 * a:.0f}% of pixels)" for c, a in zip(cs, ar)]
            for cs, ar in zip(classes, areas)
        ]
        return T.PixelClasses(labels=labels, classes=classes, masks=masks)
    if head.is_map:
        return T.MapMean(labels=[["mean of the output map"]] * n)
    classes = T.top_classes(activate(head, y), top_k)
    return T.class_target(
        head.is_binary, classes, [[label_for(int(c), names) for c in row] for row in classes]
    )


def normalise(maps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ReLU, then each (h, w) map divided by its maximum: (maps in [0, 1], maxima)."""
    cam = np.maximum(np.asarray(maps, dtype=np.float64), 0.0)
    n = cam.shape[0]
    peak = cam.reshape(n, -1).max(axis=1) if cam.size else np.zeros(n)
    safe = np.where(peak > 0, peak, 1.0)
    return (cam / safe[:, None, None]).astype(np.float32), peak


class BaseCAM:
    """A class activation map method; subclasses define :meth:`weights` or :meth:`maps`."""

    name = ""
    title = ""
    paper = ""
    formula = ""
    uses_gradients = True

    def __init__(self, model: Any, layer: str, head: Head, feeds: Feeds | None = None) -> None:
        self.model = model
        self.layer = layer
        self.head = head
        self.feeds = feeds
        # Taps of the caller's own on other layers (the sanity check's randomised weights).
        self.extra_taps: dict[str, forward.Tap] = {}
        # Passes on one batch that share the layers below the extra taps (the sanity cascade's steps).
        self.reuse: forward.Reuse | None = None

    # --- the shared machinery -------------------------------------------------------------

    def inputs(self, x: Any) -> Any:
        return model_inputs(self.feeds, x)

    def forward(self, x: Any, delta: Any = None) -> tuple[Any, Any]:
        """(the chosen output -- logits when explained before the activation --, the layer's activations)."""
        taps = dict(self.extra_taps)
        taps[self.layer] = replace(taps.get(self.layer, forward.Tap()), add=delta, capture=True)
        if self.head.score == "logit" and self.head.final_path and self.head.final_path != self.layer:
            final = taps.get(self.head.final_path, forward.Tap(capture=False))
            taps[self.head.final_path] = replace(final, linear=True)
        trace = forward.run(self.model, self.inputs(x), taps, reuse=self.reuse)
        return pick(trace.output, self.head.output), trace.captured[self.layer]

    def _activation_shape(self, x: Any) -> tuple:
        """The target layer's output shape for the batch ``x``: from the anatomy when the image has the
        model's own size (no pass), else from a pass stopped at the layer."""
        n = int(x.shape[0])
        known = graph.anatomy(self.model).ref(self.layer).map_shape
        index = graph.image_input_index(self.model)
        spec = graph.anatomy(self.model).inputs[index].shape if index is not None else None
        if (
            known is not None
            and None not in known[1:]
            and spec is not None
            and tuple(spec[1:]) == tuple(int(d) for d in x.shape[1:])
        ):
            return (n,) + tuple(int(d) for d in known[1:])
        with backend.no_grad():
            trace = forward.run(self.model, self.inputs(x), {self.layer: forward.Tap(stop=True)})
        return tuple(int(d) for d in backend.numpy(trace.captured[self.layer]).shape)

    def run(
        self,
        x: np.ndarray,
        target: T.Target | None = None,
        top_k: int = 3,
        names: Sequence[str] | None = None,
    ) -> Pass:
        """The forward pass, the targets (chosen from the output unless given) and their gradients."""
        x = backend.tensor(np.asarray(x, dtype=np.float32))
        shape = self._activation_shape(x)
        if len(shape) != 4:
            raise UserError(
                f"--gradcam-layer: '{self.layer}' has output shape {shape[1:]}, not a 2-D map; "
                "pick a layer with a height x width x channels output"
            )
        delta = backend.tensor(np.zeros(shape, dtype=np.float32))

        def fn(d: Any, inp: Any) -> tuple[Any, Any]:
            return self.forward(inp, d)

        if self.uses_gradients:
            y, acts, pull = backend.vjp(fn, delta, x)
        else:
            with backend.no_grad():
                y, acts = fn(delta, x)
        y_np = backend.numpy(y).astype(np.float64)
        if target is None:
            target = default_target(self.head, y_np, top_k, names)
        grads = []
        if self.uses_gradients:
            for cot in target.cotangents(y_np):
                g = pull(backend.tensor(cot))
                if g is None:
                    raise UserError(
                        f"--gradcam-layer: the model's output does not depend on '{self.layer}'; "
                        "pick a layer between the input and the output"
                    )
                grads.append(backend.numpy(g).astype(np.float64))
        return Pass(x=x, y=y_np, acts=backend.numpy(acts).astype(np.float64), grads=grads, target=target)

    def explain(
        self,
        x: np.ndarray,
        target: T.Target | None = None,
        top_k: int = 3,
        names: Sequence[str] | None = None,
    ) -> CamResult:
        """Heatmaps for every image of the batch and every target."""
        p = self.run(x, target, top_k, names)
        maps, peaks = [], []
        for m in self.maps(p):
            h, peak = normalise(m)
            maps.append(h)
            peaks.append(peak)
        scales = self.scales(p)
        return CamResult(
            method=self.name,
            layer=self.layer,
            heatmaps=np.stack(maps, axis=1),
            peaks=np.stack(peaks, axis=1),
            target=p.target,
            outputs=activate(self.head, p.y),
            scores=p.target.scores(p.y),
            scales=np.stack(scales, axis=1) if scales else None,
        )

    def scales(self, p: Pass) -> list[np.ndarray]:
        """Per target, (N,): the layer's first-order contribution to the score, mean over the map's cells of
        ``sum_k |dy/dA^k A^k|`` (what a peak is negligible against); empty without gradients."""
        return [np.abs(g * p.acts).sum(axis=-1).mean(axis=(1, 2)) for g in p.grads]

    # --- what a method defines ------------------------------------------------------------

    def weights(self, acts: np.ndarray, grads: np.ndarray) -> np.ndarray:
        """(N, C): each channel's weight for one target."""
        raise NotImplementedError

    def maps(self, p: Pass) -> list[np.ndarray]:
        """One (N, h, w) map per target, before the ReLU: sum_k w_k A_k."""
        return [np.einsum("nhwc,nc->nhw", p.acts, self.weights(p.acts, g)) for g in p.grads]


def upsample(heatmap: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear upsampling of a [0, 1] heatmap to the image size (as the keras-io example)."""
    from PIL import Image

    img = Image.fromarray(np.ascontiguousarray(heatmap, dtype=np.float32))
    return np.clip(np.asarray(img.resize((width, height), Image.Resampling.BILINEAR)), 0.0, 1.0)
