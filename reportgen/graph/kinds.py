"""What a layer is: conv, pooling, a layer with a kernel, its activation."""

from __future__ import annotations

from typing import Any

import keras


CONV_TYPES: tuple[type, ...] = (
    keras.layers.Conv1D,
    keras.layers.Conv2D,
    keras.layers.Conv3D,
    keras.layers.Conv1DTranspose,
    keras.layers.Conv2DTranspose,
    keras.layers.Conv3DTranspose,
    keras.layers.DepthwiseConv1D,
    keras.layers.DepthwiseConv2D,
    keras.layers.SeparableConv1D,
    keras.layers.SeparableConv2D,
)
POOLING_TYPES: tuple[type, ...] = (
    keras.layers.MaxPooling1D,
    keras.layers.MaxPooling2D,
    keras.layers.MaxPooling3D,
    keras.layers.AveragePooling1D,
    keras.layers.AveragePooling2D,
    keras.layers.AveragePooling3D,
)
KERNEL_TYPES: tuple[type, ...] = CONV_TYPES + (keras.layers.Dense, keras.layers.EinsumDense)


def is_conv(layer: Any) -> bool:
    return isinstance(layer, CONV_TYPES)


def is_pooling(layer: Any) -> bool:
    return isinstance(layer, POOLING_TYPES)


def kernel_variables(layer: Any) -> dict[str, Any]:
    """The kernel weights of a layer by role; empty for layers without one.

    Separable convolutions hold two kernels (depthwise and pointwise); the
    depthwise one is the spatial filter bank the report draws.
    """
    if not isinstance(layer, KERNEL_TYPES):
        return {}
    found = {}
    for attr in ("kernel", "depthwise_kernel", "pointwise_kernel"):
        var = getattr(layer, attr, None)
        if var is not None:
            found[attr] = var
    return found


def main_kernel(layer: Any) -> Any | None:
    """The filter bank shown in kernel grids: ``kernel``, else ``depthwise_kernel``."""
    kernels = kernel_variables(layer)
    return kernels.get("kernel", kernels.get("depthwise_kernel"))


def activation_name(layer: Any) -> str | None:
    """The elementwise activation a layer applies to its output (``relu``, ``softmax``, ``tanh``...), or
    None."""
    if isinstance(layer, keras.layers.ReLU):
        return "relu"
    if isinstance(layer, keras.layers.Softmax):
        return "softmax"
    fn = getattr(layer, "activation", None)
    if fn is None:
        return None
    if isinstance(fn, str):
        return fn
    return getattr(fn, "__name__", None)
