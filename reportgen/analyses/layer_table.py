"""The layer table: every layer and graph operation in call order, as ``model.summary()`` lists it and
more."""

from __future__ import annotations

from typing import Any

import keras

from reportgen import graph


def _activation(layer: Any) -> str | None:
    act = getattr(layer, "activation", None)
    if act is None:
        return None
    return getattr(act, "__name__", None) or str(act)


def _params(layer: Any) -> int:
    if not isinstance(layer, keras.layers.Layer) or not getattr(layer, "built", False):
        return 0
    try:
        return int(layer.count_params())
    except Exception:  # a layer whose weights are not all created
        return int(sum(int(__import__("numpy").prod(w.shape)) for w in graph.weights_of(layer)))


def layer_rows(model: Any) -> list[dict]:
    """One row per layer (nested layers included, with their path and depth); operations have 0 params."""
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
                "params": _params(layer),
                "kernel_shape": list(kernel.shape) if kernel is not None else None,
                "bias_shape": list(bias.shape) if bias is not None else None,
                "other_kernels": extra or None,
                "activation": _activation(layer),
                "trainable": bool(getattr(layer, "trainable", True)),
                "depth": ref.depth,
                "is_model": ref.is_model,
                "operation": ref.is_op,
            }
        )
    return rows


def stage_summary(rows: list[dict]) -> list[dict]:
    """The top-level rows of :func:`layer_rows` grouped into stages (:func:`reportgen.graph.stages`): each
    stage's spatial size, first and last layer, layers, parameters and channels at the end."""
    out: list[dict] = []
    for run in graph.stages([r for r in rows if r["depth"] == 0], shape=lambda r: r["output_shape"]):
        shape = run[0]["output_shape"]
        channels = shape[-1] if shape else None
        for r in run:
            if r["output_shape"] and len(r["output_shape"]) >= 2:
                channels = r["output_shape"][-1]
        size = graph.spatial_part(shape)
        out.append(
            {
                "size": size,
                "first": run[0]["name"],
                "last": run[-1]["name"],
                "layers": len(run),
                "params": sum(r["params"] for r in run),
                "channels": channels,
            }
        )
    return out
