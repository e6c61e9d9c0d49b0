"""The work of a pattern ascent, counted: multiply-adds from the input to a layer."""

from __future__ import annotations

from typing import Any

import numpy as np

from reportgen import graph


def macs_up_to(model: Any, path: str, size: int) -> int:
    """Multiply-adds of one forward pass of one image from the input to ``path``, at ``size`` px.

    A convolution costs output pixels x kernel size x input channels x output
    channels (divided by groups; depthwise: x depth multiplier), a Dense
    layer inputs x units; pooling, bias and activations are not counted
    (they are not multiply-adds).
    """
    shapes = graph.shapes_at(model, size, upto=path)
    layers = graph.anatomy(model).by_path
    total = 0
    for p, (inp, out) in shapes.items():
        layer = layers.get(p)
        if layer is None or inp is None or out is None:
            continue
        total += layer_macs(layer, inp, out)
    return int(total)


def layer_macs(lay: Any, inp: tuple, out: tuple) -> int:
    import keras

    if isinstance(lay, (keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D)):
        k = int(np.prod(lay.kernel_size))
        return int(np.prod(out[1:])) * k
    if isinstance(lay, (keras.layers.SeparableConv1D, keras.layers.SeparableConv2D)):
        k = int(np.prod(lay.kernel_size))
        cin = int(inp[-1])
        return int(np.prod(out[1:-1])) * (k * cin * lay.depth_multiplier + cin * lay.depth_multiplier * int(out[-1]))
    if graph.is_conv(lay):
        k = int(np.prod(lay.kernel_size))
        cin = int(inp[-1])
        return int(np.prod(out[1:])) * k * cin // max(1, getattr(lay, "groups", 1))
    if isinstance(lay, keras.layers.Dense):
        return int(np.prod(out[1:])) * int(inp[-1])
    return 0
