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
  multiplier) filter, each its own tap set.
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
    if isinstance(layer, (keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose, keras.layers.Conv3DTranspose)):
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


def channel_norms(bank: np.ndarray) -> np.ndarray:
    """L2 norm of each input channel's taps over all filters, (in_channels,); NaN/Inf count as 0."""
    b = np.asarray(bank, dtype=np.float64)
    b = np.where(np.isfinite(b), b, 0.0)
    return np.sqrt(np.einsum("hwcf,hwcf->c", b, b))


def kernel_grid(layer: Any, max_filters: int = 64, channel: int | None = None, rgb: bool = False,
                limit: float | None = None, values: dict | None = None) -> dict:
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
    if cin == 1:
        used_channel, chosen_by = 0, ONLY_CHANNEL
    elif channel is None:
        used_channel, chosen_by = int(np.argmax(channel_norms(bank))), CHOSEN_BY_NORM
    else:
        used_channel = min(max(int(channel), 0), cin - 1)
        chosen_by = CHOSEN_BY_OPTION if used_channel == channel else CHOSEN_BY_OPTION_CLAMPED
    lim = symmetric_limit(bank) if limit is None else float(limit)
    out = {
        "tiles": np.moveaxis(bank[:, :, used_channel, :n], -1, 0),
        "rgb_tiles": np.moveaxis(bank[:, :, :3, :n], -1, 0) if rgb and cin == 3 else None,
        "limit": lim,
        "channel": used_channel,
        "channel_chosen_by": chosen_by,
        "in_channels": int(cin),
        "shown": int(n),
        "total": int(cout),
        "kernel_size": [int(kh), int(kw)],
    }
    return out


def symmetric_limit(values: np.ndarray) -> float:
    """One symmetric scale [-v, v] for a whole layer: its largest finite magnitude.

    The tutorials hard-code ``vmin=-0.5, vmax=0.5``; a layer's own largest
    magnitude keeps every filter comparable without clipping.
    """
    finite = np.abs(np.asarray(values, dtype=np.float64))
    finite = finite[np.isfinite(finite)]
    v = float(finite.max()) if finite.size else 0.0
    return v if v > 0 else 1.0
