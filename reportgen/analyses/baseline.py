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

Keras' standard initialisers (the variance-scaling family -- Glorot, He,
LeCun --, uniform, normal, truncated normal, constants) are drawn with NumPy
in float32, from the same distributions: no backend tensor is made, so a
411 MB kernel costs 411 MB once, and the baseline is the same on every
backend. Any other initialiser is called as Keras calls it.
"""

from __future__ import annotations

import threading
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


def initializer_of(layer: Any, var: Any) -> Any:
    """The initializer that made ``var`` (the layer's ``<name>_initializer``), or None.

    A depthwise convolution calls its kernel ``kernel`` and its initializer
    ``depthwise_initializer``.
    """
    import keras

    name = variable_name(var)
    for attr in (
        _INITIALIZER_ATTRS.get(name, "_none_"),
        "depthwise_initializer" if name == "kernel" else "_none_",
    ):
        init = getattr(layer, attr, None)
        if isinstance(init, keras.initializers.Initializer):
            return init
    return None


def support(init: Any, shape: tuple) -> tuple[float, float] | None:
    """The interval every fresh draw of ``init`` lies in, when it has one (uniform and truncated kinds).

    A weight outside it cannot come from the initialiser: the layer has
    moved, whatever its histogram looks like. None for unbounded kinds.
    """
    from keras import initializers as I

    if isinstance(init, I.VarianceScaling):
        fan_in, fan_out = _fans(shape)
        n = {"fan_in": fan_in, "fan_out": fan_out}.get(init.mode, (fan_in + fan_out) / 2.0)
        scale = init.scale / max(1.0, n)
        if init.distribution == "uniform":
            limit = float(np.sqrt(3.0 * scale))
            return -limit, limit
        if init.distribution == "truncated_normal":
            limit = 2.0 * float(np.sqrt(scale) / 0.87962566103423978)
            return -limit, limit
        return None
    if isinstance(init, I.TruncatedNormal):
        return init.mean - 2 * init.stddev, init.mean + 2 * init.stddev
    if isinstance(init, I.RandomUniform):
        return float(init.minval), float(init.maxval)
    if isinstance(init, (I.Zeros, I.Ones, I.Constant)):
        value = 0.0 if isinstance(init, I.Zeros) else 1.0 if isinstance(init, I.Ones) else float(init.value)
        return value, value
    return None


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


def fresh_values(
    layer: Any, path: str, seed: int = 0, input_shape: tuple | None = None
) -> list[np.ndarray] | None:
    """Freshly initialised values for each of ``layer.weights`` (float32), or None when unknown."""
    weights = list(getattr(layer, "weights", []) or [])
    if not weights:
        return []
    if any(initializer_of(layer, var) is None for var in weights):
        return _rebuilt(layer, path, seed, input_shape)
    return [fresh_value(layer, var, path, seed) for var in weights]


def fresh_value(layer: Any, var: Any, path: str, seed: int = 0) -> np.ndarray | None:
    """One variable's fresh value, the same as :func:`fresh_values` draws for it; None when that
    would rebuild the layer (a variable without an initializer attribute).

    For the extra draws that only one kernel's top singular value reads: drawing the
    whole layer each time cost as much again.
    """
    import keras

    if any(initializer_of(layer, v) is None for v in getattr(layer, "weights", []) or []):
        return None
    name = variable_name(var)
    init = initializer_of(layer, var)
    shape = tuple(int(d) for d in var.shape)
    drawn = draw(init, shape, derived_seed(seed, path, name))
    if drawn is None:
        value = _seeded(init, derived_seed(seed, path, name))(shape, dtype="float32")
        drawn = np.asarray(keras.ops.convert_to_numpy(value), dtype=np.float32)
    return drawn


def _fans(shape: tuple) -> tuple[float, float]:
    """Keras' fan-in and fan-out of a weight shape
    (keras.src.initializers.random_initializers.compute_fans)."""
    if len(shape) == 0:
        return 1.0, 1.0
    if len(shape) == 1:
        return float(shape[0]), float(shape[0])
    if len(shape) == 2:
        return float(shape[0]), float(shape[1])
    field = float(np.prod(shape[:-2]))
    return shape[-2] * field, shape[-1] * field


def aligned(shape: tuple) -> np.ndarray:
    """An uninitialised float32 array whose data starts on a 64-byte boundary.

    Backends can then use the draw's own buffer (:func:`reportgen.backend.from_numpy`)
    instead of copying a 411 MB kernel.
    """
    n = int(np.prod(shape)) if shape else 1
    raw = np.empty(n * 4 + 64, dtype=np.uint8)
    offset = (-raw.ctypes.data) % 64
    return raw[offset : offset + n * 4].view(np.float32).reshape(shape)


def _normal(rng: np.random.Generator, shape: tuple) -> np.ndarray:
    out = aligned(shape)
    rng.standard_normal(dtype=np.float32, out=out)
    return out


def _uniform(rng: np.random.Generator, shape: tuple) -> np.ndarray:
    out = aligned(shape)
    rng.random(dtype=np.float32, out=out)
    return out


def _truncated(rng: np.random.Generator, shape: tuple, mean: float, std: float) -> np.ndarray:
    """Normal values redrawn until within two standard deviations (as Keras' truncated normal)."""
    out = _normal(rng, shape)
    flat = out.reshape(-1)
    bad = np.flatnonzero(np.abs(flat) > 2.0)
    while bad.size:
        flat[bad] = rng.standard_normal(bad.size, dtype=np.float32)
        bad = bad[np.abs(flat[bad]) > 2.0]
    out *= np.float32(std)
    out += np.float32(mean)
    return out


def draw(init: Any, shape: tuple, seed: int) -> np.ndarray | None:
    """A float32 NumPy draw from a standard Keras initializer's distribution; None for any other."""
    from keras import initializers as I

    rng = np.random.default_rng(seed)
    if isinstance(init, (I.Zeros, I.Ones, I.Constant)):
        out = aligned(shape)
        out[...] = (
            0.0 if isinstance(init, I.Zeros) else 1.0 if isinstance(init, I.Ones) else float(init.value)
        )
        return out
    if isinstance(init, I.VarianceScaling):
        fan_in, fan_out = _fans(shape)
        n = {"fan_in": fan_in, "fan_out": fan_out}.get(init.mode, (fan_in + fan_out) / 2.0)
        scale = init.scale / max(1.0, n)
        if init.distribution == "uniform":
            limit = np.sqrt(3.0 * scale)
            out = _uniform(rng, shape)
            out *= np.float32(2 * limit)
            out -= np.float32(limit)
            return out
        if init.distribution == "untruncated_normal":
            out = _normal(rng, shape)
            out *= np.float32(np.sqrt(scale))
            return out
        return _truncated(rng, shape, 0.0, np.sqrt(scale) / 0.87962566103423978)
    if isinstance(init, I.TruncatedNormal):
        return _truncated(rng, shape, init.mean, init.stddev)
    if isinstance(init, I.RandomNormal):
        out = _normal(rng, shape)
        out *= np.float32(init.stddev)
        out += np.float32(init.mean)
        return out
    if isinstance(init, I.RandomUniform):
        out = _uniform(rng, shape)
        out *= np.float32(init.maxval - init.minval)
        out += np.float32(init.minval)
        return out
    return None


_REBUILD_LOCK = threading.Lock()  # Python's global random state and Keras' layer construction: one at a time


def _rebuilt(layer: Any, path: str, seed: int, input_shape: tuple | None) -> list[np.ndarray] | None:
    """Re-create the layer from its config, build it, and read its fresh weights."""
    with _REBUILD_LOCK:  # the weights pass describes layers on several threads
        return _rebuilt_alone(layer, path, seed, input_shape)


def _rebuilt_alone(layer: Any, path: str, seed: int, input_shape: tuple | None) -> list[np.ndarray] | None:
    import keras

    import random

    if input_shape is None:
        return None
    # Keras draws an unseeded initializer's seed from Python's random module; seed it for this one
    # layer and give the user's program its random state back (keras.utils.set_random_seed would
    # also import TensorFlow on any backend).
    state = random.getstate()
    try:
        random.seed(derived_seed(seed, path, "*"))
        clone = layer.__class__.from_config(layer.get_config())
        clone.build(input_shape)
        values = [np.asarray(keras.ops.convert_to_numpy(v), dtype=np.float32) for v in clone.weights]
    except Exception:
        return None
    finally:
        random.setstate(state)
    if [v.shape for v in values] != [tuple(w.shape) for w in layer.weights]:
        return None
    return values


def state_mapping(layer: Any, values: list[np.ndarray]) -> list[tuple[Any, Any]]:
    """``(variable, value)`` pairs for a ``keras.StatelessScope``: the layer as if untrained."""
    return list(zip(layer.weights, values))
