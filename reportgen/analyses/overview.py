"""Overview: what the model is, where it came from, and what produced the report."""

from __future__ import annotations

import datetime as _dt
import platform
from typing import Any

import numpy as np

from reportgen.context import LoadedModel


def _shapes(tensors: Any) -> Any:
    shapes = [list(t.shape) for t in tensors]
    return shapes[0] if len(shapes) == 1 else shapes


def count_params(weights: list) -> int:
    return int(sum(int(np.prod(w.shape)) for w in weights))


def describe_model(loaded: LoadedModel) -> dict:
    """The ``model`` block of report.json."""
    model = loaded.model
    trainable = count_params(model.trainable_weights)
    non_trainable = count_params(model.non_trainable_weights)
    return {
        "name": loaded.name,
        "keras_name": model.name,
        "source": loaded.source,
        "sha256": loaded.sha256,
        "architecture": loaded.architecture,
        "weights": loaded.weights,
        "total_params": trainable + non_trainable,
        "trainable_params": trainable,
        "non_trainable_params": non_trainable,
        "input_shape": _shapes(model.inputs),
        "output_shape": _shapes(model.outputs),
    }


def versions() -> dict:
    import keras
    import tensorflow as tf

    import reportgen

    return {
        "reportgen": reportgen.__version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def generated_at() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
