"""The layer table: every layer in call order, as ``model.summary()`` lists it and more."""

from __future__ import annotations

from typing import Any

import keras

from reportgen import graph


def _activation(layer: Any) -> str | None:
    act = getattr(layer, "activation", None)
    if act is None:
        return None
    return getattr(act, "__name__", None) or str(act)


def layer_rows(model: keras.Model) -> list[dict]:
    """One row per layer (nested layers included, with their path and depth)."""
    rows = []
    for ref in graph.walk(model):
        layer = ref.layer
        kernel = graph.main_kernel(layer)
        bias = getattr(layer, "bias", None) if graph.kernel_variables(layer) else None
        extra = {k: list(v.shape) for k, v in graph.kernel_variables(layer).items() if v is not kernel}
        rows.append(
            {
                "name": ref.path,
                "class_name": ref.class_name,
                "output_shape": list(ref.output_shape) if ref.output_shape is not None else None,
                "params": int(layer.count_params()) if layer.built else 0,
                "kernel_shape": list(kernel.shape) if kernel is not None else None,
                "bias_shape": list(bias.shape) if bias is not None else None,
                "other_kernels": extra or None,
                "activation": _activation(layer),
                "trainable": bool(layer.trainable),
                "depth": ref.depth,
                "is_model": ref.is_model,
            }
        )
    return rows
