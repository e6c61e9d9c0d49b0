"""What the pattern ascent maximises: each image's mean activation of its own filter at one layer.

All filters of a layer ascend together, one image per filter in one batch.
Each image's loss depends only on its own activations (inference mode, no
batch statistics), so the sum of the per-image losses has exactly the
per-image gradients. The network runs **only up to the layer** (the pass
stops there, :mod:`reportgen.graph.forward`), and the target convolution itself is
computed only for the chunk's filters (``kernel[..., chunk]``), not for all of
its channels: a 256-channel layer with a chunk of 8 costs 8/256 of its
convolution. The selected diagonal (image b, filter b) is the loss.

**Pre-activation.** The default objective is the filter's output *before* its
activation function. A conv with a fused ReLU outputs exactly zero wherever its
pre-activation is negative; from a grey start image a filter that is negative
everywhere has a zero gradient and the ascent cannot move it, although the
filter responds to real images. On the trained VGG16-size network of
``bench/trained_vgg16.py`` the post-activation ascent left 14% of the filters
flat; the pre-activation ascent raises all of them (docs/benchmarks.md,
"pattern objective"). The post-activation objective (the tutorial's) remains
available for the reference loop and the benchmark.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from reportgen import graph
from reportgen.graph import forward
from reportgen.errors import UserError
from reportgen.graph.inputs import Feeds, model_inputs

OBJECTIVES = ("pre-activation", "activation")


@dataclass
class Objective:
    """The layer at ``path`` seen from an image of ``size`` px: ``objective(x, filters) -> (B,)``."""

    model: Any
    path: str
    size: int
    feeds: Feeds | None
    kind: str = "pre-activation"

    def __post_init__(self) -> None:
        import keras

        if self.kind not in OBJECTIVES:
            raise ValueError(f"unknown objective {self.kind!r}")
        an = graph.anatomy(self.model)
        index = graph.image_input_index(self.model)
        if index is None:
            raise UserError(
                f"filter patterns need a model with an image input (N, H, W, 1 or 3); "
                f"'{self.model.name}' has inputs {[tuple(s.shape) for s in an.inputs]}; "
                "leave out the patterns section (--sections)"
            )
        self.channels = int(an.inputs[index].shape[-1])
        self.layer = an.layer(self.path)
        shapes = graph.shapes_at(self.model, self.size, upto=self.path)
        out_shape = (shapes.get(self.path) or (None, None))[1]
        grid = graph.token_grid(self.model, self.path)
        if grid is not None and out_shape is not None and len(out_shape) == 3 and out_shape[1] != grid.tokens:
            # A custom layer declared another token count than it makes (SigLIP's embedding: 17 declared,
            # 16 made): the shapes seen at run time are the truth.
            shapes = graph.shapes_at(self.model, self.size, upto=self.path, concrete=True)
            out_shape = (shapes.get(self.path) or (None, None))[1]
        if grid is not None and out_shape is not None and len(out_shape) == 3 and out_shape[1] == grid.tokens:
            out_shape = grid.map_shape(
                out_shape
            )  # a transformer block: its channels' mean over the patch tokens
        if out_shape is None or len(out_shape) != 4 or any(d is not None and d < 1 for d in out_shape[1:]):
            raise UserError(f"--pattern-size {self.size}: layer '{self.path}' has no 2-D output at that size")
        self.out_channels = int(out_shape[-1])
        elements = sum(int(np.prod([d for d in o[1:] if d])) for _i, o in shapes.values() if o and len(o) > 1)
        # forward activations kept for the backward pass, their gradients and
        # temporaries: ~3 float32 copies of every activation, plus the image.
        self.bytes_per_image = int((self.size * self.size * self.channels + elements) * 4 * 3)
        layer = self.layer
        self.head_trick = (
            isinstance(layer, (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D))
            and not isinstance(
                layer,
                (keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose, keras.layers.Conv3DTranspose),
            )
            and getattr(layer, "groups", 1) == 1
            and getattr(layer, "data_format", "channels_last") == "channels_last"
            and hasattr(layer, "convolution_op")
        )

    def check_filters(self, filters: list[int]) -> list[int]:
        bad = [f for f in filters if not 0 <= f < self.out_channels]
        if bad:
            raise UserError(
                f"--pattern-filters: layer has {self.out_channels} filters; filter {bad[0]} does not exist"
            )
        return [int(f) for f in filters]

    def __call__(self, x: Any, filters: Any, n_chunk: int) -> Any:
        """Each image's mean activation of its own filter: x (B, H, W, C), filters (B,) -> (B,)."""
        from keras import ops

        pre = self.kind == "pre-activation"
        if self.head_trick and n_chunk < self.out_channels:

            def chunk_conv(lay: Any, _call: Any, h: Any, *args: Any, **kwargs: Any) -> Any:
                out = lay.convolution_op(h, ops.take(lay.kernel, filters, axis=-1))
                if lay.use_bias:
                    out = out + ops.take(lay.bias, filters)
                if not pre and lay.activation is not None:
                    out = lay.activation(out)
                return out

            tap = forward.Tap(replace=chunk_conv, stop=True)
            out = forward.run(self.model, self._inputs(x), {self.path: tap}).captured[self.path]
            means = ops.mean(out, axis=(1, 2))  # (B, B): image b, filter b'
            return ops.diagonal(means)
        tap = forward.Tap(linear=pre, stop=True)
        out = forward.run(self.model, self._inputs(x), {self.path: tap}).captured[self.path]
        means = ops.mean(out, axis=(1, 2))  # (B, C_out)
        return ops.take_along_axis(means, ops.expand_dims(filters, 1), axis=1)[:, 0]

    def _inputs(self, x: Any) -> Any:
        return model_inputs(self.feeds, x)


# Layers that are affine in their input at inference (a stack of them is affine too).
_AFFINE_TYPES = (
    "InputLayer",
    "Rescaling",
    "Normalization",
    "ZeroPadding1D",
    "ZeroPadding2D",
    "ZeroPadding3D",
    "Cropping1D",
    "Cropping2D",
    "Cropping3D",
    "Reshape",
    "Permute",
    "Flatten",
    "Identity",
    "Dropout",
    "SpatialDropout1D",
    "SpatialDropout2D",
    "SpatialDropout3D",
    "GaussianNoise",
    "GaussianDropout",
    "AlphaDropout",
    "ActivityRegularization",
    "BatchNormalization",
    "AveragePooling1D",
    "AveragePooling2D",
    "AveragePooling3D",
    "GlobalAveragePooling1D",
    "GlobalAveragePooling2D",
    "UpSampling1D",
    "UpSampling2D",
    "Add",
    "Subtract",
    "Average",
    "Concatenate",
    "RandomFlip",
    "RandomRotation",
    "RandomTranslation",
    "RandomZoom",
    "RandomContrast",
    "RandomBrightness",
    "RandomCrop",  # augmentation: the identity at inference
)
_KERNEL_TYPES = (
    "Conv1D",
    "Conv2D",
    "Conv3D",
    "DepthwiseConv1D",
    "DepthwiseConv2D",
    "SeparableConv1D",
    "SeparableConv2D",
    "Conv1DTranspose",
    "Conv2DTranspose",
    "Conv3DTranspose",
    "Dense",
)


def affine_in_image(model: Any, path: str, size: int) -> bool:
    """Is the pre-activation of the layer at ``path`` an affine function of the image?

    True when every layer the pass runs before it (``graph.shapes_at`` up to
    ``path``; containers are looked into) is affine at inference: padding,
    rescaling, normalisation, BatchNormalization, average pooling, dropout,
    reshaping, and kernel layers without a non-linear activation. Then the
    mean pre-activation over the map has the same gradient at every pixel
    away from the borders (the sum of the weights), so its maximiser is a
    flat image. Any other layer (a ReLU, max pooling, an unknown type) makes
    it False: the check errs on the side of the usual objective.
    """
    layers = graph.anatomy(model).by_path
    try:
        shapes = graph.shapes_at(model, size, upto=path)
    except Exception:  # noqa: BLE001  (the caller's own pass reports a model that cannot take the size)
        return False
    for p in shapes:
        if p == path:
            continue
        layer = layers.get(p)
        if layer is None:
            return False
        if graph.children(layer):  # a container: its own layers are in the list
            continue
        kind = type(layer).__name__
        if kind in _AFFINE_TYPES:
            continue
        if kind == "Activation" or kind in _KERNEL_TYPES:
            if graph.activation_name(layer) in (None, "linear"):
                continue
        return False
    return True


def has_nonlinear_activation(layer: Any) -> bool:
    """Does the layer apply a non-identity activation (so 'activation' differs from 'pre-activation')?"""
    return graph.activation_name(layer) not in (None, "linear")
