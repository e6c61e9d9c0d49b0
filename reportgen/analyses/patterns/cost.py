"""The work of a pattern ascent, counted: multiply-adds from the input to a layer."""

from __future__ import annotations

from typing import Any

import numpy as np

from reportgen import graph


def macs_up_to(model: Any, path: str, size: int) -> int:
    """Multiply-adds of one forward pass of one image from the input to ``path``, at ``size`` px.

    A convolution costs output pixels x kernel size x input channels x output
    channels (divided by groups; depthwise: x depth multiplier), a Dense
    layer inputs x units, an EinsumDense its contracted kernel axes per output value;
    pooling, bias and activations are not counted (they are not multiply-adds). Layers inside
    a composite layer that runs before ``path`` (a transformer block's projections), or inside
    ``path`` itself, count too.
    """
    shapes = graph.shapes_at(model, size, upto=path)
    order = {p: i for i, p in enumerate(shapes)}  # each parent's children in the order they ran

    def before(p: str) -> bool:
        """Whether the layer at ``p`` runs before ``path`` or inside it."""
        if p == path or p.startswith(path + "/"):
            return True
        if path.startswith(p + "/"):
            return False  # a model or block that holds ``path``: its own layers are counted one by one
        mine, theirs = p.split("/"), path.split("/")
        k = 0
        while mine[k] == theirs[k]:
            k += 1
        a, b = (
            "/".join(mine[: k + 1]),
            "/".join(theirs[: k + 1]),
        )  # the two siblings under their common parent
        return a in order and b in order and order[a] < order[b]

    return _count(model, shapes, before)


def model_macs(model: Any, height: int, width: int) -> int | None:
    """Multiply-adds of one whole forward pass of one image: the conv, Dense and EinsumDense layers (a
    transformer's projections), layers inside composite ones included, at the longer side squared for a
    non-square image (an upper bound). None when the model cannot be traced at that size. Attention's own
    products (2 T^2 D a layer, ~8% of ViT-S/16) are not counted. The CAM faithfulness budget uses it.
    """
    try:
        shapes = graph.shapes_at(model, int(max(height, width)))
    except Exception:  # noqa: BLE001  (a model the count cannot trace: unknown)
        return None
    return _count(model, shapes, lambda _p: True)


def _count(model: Any, shapes: dict, counted: Any) -> int:
    """The multiply-adds of the layers whose paths ``counted`` accepts, at the traced ``shapes``."""
    import keras

    total = 0
    for ref in graph.anatomy(model).layers:
        if not counted(ref.path):
            continue
        # A layer inside a composite one (MultiHeadAttention's projections, a keras-hub block's MLP) has no
        # traced shape at this size: its own, at the model's size, stands in (an estimate, as all of this).
        inp, out = shapes.get(ref.path, (None, None))
        if inp is None or out is None:
            inp, out = ref.input_shape, ref.output_shape
        if inp is None or out is None or not isinstance(out, tuple) or any(d is None for d in out[1:]):
            continue
        if isinstance(ref.layer, keras.layers.EinsumDense):
            total += einsum_macs(ref.layer, out)
        else:
            total += layer_macs(ref.layer, inp, out)
    return int(total)


def einsum_macs(layer: Any, out: tuple) -> int:
    """An EinsumDense's multiply-adds: each output value sums over the kernel's contracted axes (those of
    its letters that the output does not keep)."""
    try:
        inputs, result = getattr(layer, "equation", "").replace(" ", "").split("->")
        kernel_letters = inputs.split(",")[1]
        shape = tuple(int(d) for d in layer.kernel.shape)
        contracted = int(np.prod([d for c, d in zip(kernel_letters, shape) if c not in result]))
        return int(np.prod([int(d) for d in out[1:]])) * contracted
    except Exception:  # noqa: BLE001  (an equation not of the input,kernel->output form: not counted)
        return 0


def layer_macs(lay: Any, inp: tuple, out: tuple) -> int:
    import keras

    if isinstance(lay, (keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D)):
        k = int(np.prod(lay.kernel_size))
        return int(np.prod(out[1:])) * k
    if isinstance(lay, (keras.layers.SeparableConv1D, keras.layers.SeparableConv2D)):
        k = int(np.prod(lay.kernel_size))
        cin = int(inp[-1])
        return int(np.prod(out[1:-1])) * (
            k * cin * lay.depth_multiplier + cin * lay.depth_multiplier * int(out[-1])
        )
    if graph.is_conv(lay):
        k = int(np.prod(lay.kernel_size))
        cin = int(inp[-1])
        return int(np.prod(out[1:])) * k * cin // max(1, getattr(lay, "groups", 1))
    if isinstance(lay, keras.layers.Dense):
        return int(np.prod(out[1:])) * int(inp[-1])
    return 0


# The default number of ascent steps for a layer (without --pattern-steps): as many as
# fit STEP_BUDGET_FLOPS, at least MIN_STEPS (the earlier fixed default) and at most
# MAX_STEPS. One step of n filters costs about 4 x macs_up_to x n floating-point
# operations (forward 2 per multiply-add, backward to the input 2). VGG16's cheapest
# default layer, block1_conv1 at 64 px for 64 filters, costs 1.8 GFLOP a step, so every
# VGG16 layer keeps 20 steps; the demo's first conv layer (28 px, 32 filters) costs 29
# MFLOP a step and gets 200, its second (64 filters) 1 GFLOP and gets 25.
STEP_BUDGET_FLOPS = 25e9
MIN_STEPS, MAX_STEPS = 20, 200


def steps_within_budget(
    macs_per_image: int,
    filters: int,
    budget: float = STEP_BUDGET_FLOPS,
    low: int = MIN_STEPS,
    high: int = MAX_STEPS,
) -> int:
    """Steps whose ascent costs at most ``budget`` FLOPs, clamped to [low, high]."""
    per_step = 4.0 * max(1, int(macs_per_image)) * max(1, int(filters))
    return int(min(high, max(low, budget // per_step)))
