"""The untrained baseline: each layer's weights freshly drawn from its own initialisers.

Training spreads weights out (the tutorials show a trained std of 0.21-0.25
against 0.08 untrained); a layer whose weights still look like their
initialiser's has learned little. The baseline is made **one layer at a
time**, never as a second copy of the whole model: a variable's initializer
is the layer's ``<name>_initializer`` (``kernel_initializer``,
``depthwise_initializer``, ``gamma_initializer``, ...), re-created with a seed
derived from (``--seed``, layer path, variable name), so that two runs, and
two sections of one run, draw the same values. A layer whose initialisers are
not attributes (ConvNeXt's ``LayerScale``, a custom layer) is re-created from
its config and built on its recorded input shape, under the same seed.
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np

_INITIALIZER_ATTRS = {
    "kernel": "kernel_initializer",
    "bias": "bias_initializer",
    "depthwise_kernel": "depthwise_initializer",
    "pointwise_kernel": "pointwise_initializer",
    "gamma": "gamma_initializer",
    "beta": "beta_initializer",
    "moving_mean": "moving_mean_initializer",
    "moving_variance": "moving_variance_initializer",
    "embeddings": "embeddings_initializer",
    "recurrent_kernel": "recurrent_initializer",
}


def derived_seed(seed: int, path: str, name: str) -> int:
    return zlib.crc32(f"{int(seed)}:{path}:{name}".encode()) & 0x7FFFFFFF


def variable_name(var: Any) -> str:
    return str(getattr(var, "name", None) or getattr(var, "path", "")).rsplit("/", 1)[-1].split(":")[0]


def _seeded(init: Any, seed: int) -> Any:
    try:
        config = init.get_config()
    except Exception:
        return init
    if "seed" not in config:
        return init
    try:
        return init.__class__.from_config({**config, "seed": seed})
    except Exception:
        return init


def fresh_values(layer: Any, path: str, seed: int = 0, input_shape: tuple | None = None) -> list[np.ndarray] | None:
    """Freshly initialised values for each of ``layer.weights`` (float32), or None when unknown."""
    import keras

    weights = list(getattr(layer, "weights", []) or [])
    if not weights:
        return []
    out: list[np.ndarray] = []
    for var in weights:
        name = variable_name(var)
        init = getattr(layer, _INITIALIZER_ATTRS.get(name, "_none_"), None)
        if not isinstance(init, keras.initializers.Initializer):
            return _rebuilt(layer, path, seed, input_shape)
        value = _seeded(init, derived_seed(seed, path, name))(tuple(var.shape), dtype="float32")
        out.append(np.asarray(keras.ops.convert_to_numpy(value), dtype=np.float32))
    return out


def _rebuilt(layer: Any, path: str, seed: int, input_shape: tuple | None) -> list[np.ndarray] | None:
    """Re-create the layer from its config, build it, and read its fresh weights."""
    import keras

    if input_shape is None:
        return None
    try:
        keras.utils.set_random_seed(derived_seed(seed, path, "*"))
        clone = layer.__class__.from_config(layer.get_config())
        clone.build(input_shape)
        values = [np.asarray(keras.ops.convert_to_numpy(v), dtype=np.float32) for v in clone.weights]
    except Exception:
        return None
    if [v.shape for v in values] != [tuple(w.shape) for w in layer.weights]:
        return None
    return values


def state_mapping(layer: Any, values: list[np.ndarray]) -> list[tuple[Any, Any]]:
    """``(variable, value)`` pairs for a ``keras.StatelessScope``: the layer as if untrained."""
    return list(zip(layer.weights, values))
