"""Kernel grids: each conv filter as a small image on ONE symmetric colour scale per layer.

The tutorials draw ``kernel[:, :, 0, i]`` with ``vmin=-0.5, vmax=0.5``; we
derive the symmetric limit from the layer's own weights so no layer is clipped
or washed out, and keep it shared across the layer's filters so they compare.

Which slice is shown:

- Conv2D / Conv2DTranspose: the kernel's
  spatial taps for one input channel: by default the channel with the largest
  kernel norm over all of the layer's filters (channel 0 of a deeper layer may
  be fed by a dead filter upstream, and every tile would be blank), or the one
  ``--kernel-channel`` names (``channel``); a layer with fewer channels shows its last.
- DepthwiseConv2D and SeparableConv2D's depthwise part: every (channel,
  multiplier) filter, each its own tap set: tile i filters input channel
  i // multiplier, and is labelled so. A separable conv's pointwise (1x1)
  kernel is a matrix (depthwise outputs x filters), drawn as one
  (:func:`pointwise_matrix`).
- Conv1D: each filter as a 1 x k strip; Conv3D: the middle depth slice.
- A first conv layer on 3-channel input also as RGB composites (each filter's
  three input channels as one colour tile, on the same symmetric scale).
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from reportgen import graph


def filter_bank(layer: Any, values: dict | None = None) -> np.ndarray:
    """The layer's kernel as (kh, kw, in_channels, filters), whatever its type.

    ``values`` (variable name -> array) stands in for the layer's own weights
    (the freshly initialised baseline).
    """
    var = graph.main_kernel(layer)
    if values is not None:
        from reportgen.analyses.baseline import variable_name

        kernel = np.asarray(values[variable_name(var)], dtype=np.float32)
    else:
        kernel = np.asarray(keras.ops.convert_to_numpy(var.value), dtype=np.float32)
    if isinstance(
        layer, (keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose, keras.layers.Conv3DTranspose)
    ):
        kernel = np.swapaxes(kernel, -1, -2)  # transposed convs store (..., out, in)
    depthwise = (keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D)
    if isinstance(layer, depthwise) or "depthwise_kernel" in graph.kernel_variables(layer):
        # depthwise and separable: (..., in, multiplier), every (channel, multiplier) pair is one filter
        kernel = kernel.reshape(kernel.shape[:-2] + (1, -1))
    if kernel.ndim == 3:  # Conv1D: (k, in, out) -> (1, k, in, out)
        kernel = kernel[np.newaxis]
    elif kernel.ndim == 5:  # Conv3D: middle depth slice
        kernel = kernel[kernel.shape[0] // 2]
    return kernel


CHOSEN_BY_NORM = "largest kernel norm"
CHOSEN_BY_OPTION = "--kernel-channel"
CHOSEN_BY_OPTION_CLAMPED = "--kernel-channel (beyond the layer's channels: its last)"
ONLY_CHANNEL = "only channel"
DEPTHWISE = "depthwise"  # every tile is its own input channel's filter: no channel to choose


def channel_norms(bank: np.ndarray) -> np.ndarray:
    """L2 norm of each input channel's taps over all filters, (in_channels,); NaN/Inf count as 0."""
    b = np.asarray(bank, dtype=np.float64)
    b = np.where(np.isfinite(b), b, 0.0)
    return np.sqrt(np.einsum("hwcf,hwcf->c", b, b))


def kernel_grid(
    layer: Any,
    max_filters: int = 64,
    channel: int | None = None,
    rgb: bool = False,
    limit: float | None = None,
    values: dict | None = None,
) -> dict:
    """The tiles to draw for one conv layer, and the shared colour scale.

    Returns ``tiles`` (n, kh, kw) for the chosen input channel, ``rgb_tiles``
    (n, kh, kw, 3) when ``rgb`` and the layer has 3 input channels, ``limit``
    (the symmetric scale, from all of the layer's weights unless given), the
    counts shown / total, the ``channel`` drawn and why (``channel_chosen_by``):
    ``channel=None`` picks the input channel with the largest kernel norm over
    all filters (:func:`channel_norms`), an int is ``--kernel-channel``.
    """
    bank = filter_bank(layer, values)
    kh, kw, cin, cout = bank.shape
    n = min(max_filters, cout)
    depthwise = depthwise_shape(layer)
    if depthwise is not None:
        used_channel, chosen_by = 0, DEPTHWISE
    elif channel is None:
        used_channel, chosen_by = int(np.argmax(channel_norms(bank))), CHOSEN_BY_NORM
    else:
        used_channel = min(max(int(channel), 0), cin - 1)
        chosen_by = CHOSEN_BY_OPTION if used_channel == channel else CHOSEN_BY_OPTION_CLAMPED
    lim = symmetric_limit(bank) if limit is None else float(limit)
    out = {
        "tiles": np.moveaxis(bank[:, :, used_channel, :n], -1, 0),
        "rgb_tiles": np.moveaxis(bank[:, :, :3, :n], -1, 0)
        if rgb and cin == 3 and depthwise is None
        else None,
        "limit": lim,
        "channel": used_channel,
        "channel_chosen_by": chosen_by,
        "in_channels": int(cin) if depthwise is None else depthwise[0],
        "depth_multiplier": None if depthwise is None else depthwise[1],
        "labels": tile_labels(n, depthwise),
        "shown": int(n),
        "total": int(cout),
        "kernel_size": [int(kh), int(kw)],
    }
    return out


def depthwise_shape(layer: Any) -> tuple[int, int] | None:
    """(input channels, depth multiplier) of a depthwise or separable conv's depthwise kernel; None for
    others."""
    kernels = graph.kernel_variables(layer)
    var = kernels.get("depthwise_kernel")
    if var is None and isinstance(layer, (keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D)):
        var = kernels.get("kernel")
    if var is None:
        return None
    shape = tuple(int(d) for d in var.shape)
    return shape[-2], shape[-1]


def tile_labels(n: int, depthwise: tuple[int, int] | None) -> list[str]:
    """Each tile's label: the filter index; for a depthwise kernel, the input channel it filters (tile i is
    input channel i // multiplier), with the multiplier's index after a dot when there are several."""
    if depthwise is None or depthwise[1] == 1:
        return [str(i) for i in range(n)]
    m = depthwise[1]
    return [f"{i // m}.{i % m}" for i in range(n)]


def pointwise_matrix(layer: Any, max_rows: int = 64, max_cols: int = 64) -> dict | None:
    """A separable conv's pointwise (1x1) kernel as a matrix: rows the depthwise outputs (input channel x
    multiplier), columns the output filters, on one symmetric scale; None for a layer without one."""
    var = graph.kernel_variables(layer).get("pointwise_kernel")
    if var is None:
        return None
    kernel = np.asarray(keras.ops.convert_to_numpy(var.value), dtype=np.float32)
    matrix = kernel.reshape(
        -1, kernel.shape[-1]
    )  # (1, 1, in x multiplier, filters) -> (in x multiplier, filters)
    rows, cols = matrix.shape
    return {
        "matrix": matrix[:max_rows, :max_cols],
        "rows": int(rows),
        "columns": int(cols),
        "limit": symmetric_limit(matrix),
    }


def symmetric_limit(values: np.ndarray) -> float:
    """One symmetric scale [-v, v] for a whole layer: its largest finite magnitude.

    The tutorials hard-code ``vmin=-0.5, vmax=0.5``; a layer's own largest
    magnitude keeps every filter comparable without clipping.
    """
    finite = np.abs(np.asarray(values, dtype=np.float64))
    finite = finite[np.isfinite(finite)]
    v = float(finite.max()) if finite.size else 0.0
    return v if v > 0 else 1.0


def fresh_kernel(ref: Any, seed: int) -> dict | None:
    """A conv layer's freshly initialised kernel, as the layer's own variables would hold it (the untrained
    grid beside the trained one)."""
    from reportgen.analyses.baseline import fresh_values, variable_name

    values = fresh_values(ref.layer, ref.path, seed, ref.input_shape)
    if not values:
        return None
    return {variable_name(v): a for v, a in zip(ref.layer.weights, values)}
