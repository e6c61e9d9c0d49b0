"""Overview: what the model is, where it came from, and what produced the report."""

from __future__ import annotations

import datetime as _dt
import platform
from typing import Any

import numpy as np

from reportgen.loading import LoadedModel


def _shapes(specs: Any) -> Any:
    shapes = [list(s.shape) for s in specs]
    return shapes[0] if len(shapes) == 1 else shapes


def count_params(weights: list) -> int:
    return int(sum(int(np.prod(w.shape)) for w in weights))


def describe_model(loaded: LoadedModel) -> dict:
    """The ``model`` block of report.json."""
    from reportgen import graph

    model = loaded.model
    an = graph.anatomy(model)
    trainable = count_params(model.trainable_weights)
    non_trainable = count_params(model.non_trainable_weights)
    return {
        "name": loaded.name,
        "keras_name": model.name,
        "source": loaded.source,
        "sha256": loaded.sha256,
        "architecture": loaded.architecture,
        "weights": loaded.weights,
        "kind": "subclassed"
        if an.subclassed
        else ("sequential" if type(model).__name__ == "Sequential" else "functional"),
        "total_params": trainable + non_trainable,
        "trainable_params": trainable,
        "non_trainable_params": non_trainable,
        "input_shape": _shapes(an.inputs),
        "output_shape": _shapes(an.outputs),
        "inputs": [{"name": s.name, "shape": list(s.shape), "dtype": s.dtype} for s in an.inputs],
        "outputs": [{"name": s.name, "shape": list(s.shape), "dtype": s.dtype} for s in an.outputs],
        "dtype_policy": getattr(getattr(model, "dtype_policy", None), "name", None),
    }


def versions() -> dict:
    import keras

    from reportgen.names import VERSION
    from reportgen import backend

    return {
        "reportgen": VERSION,
        **backend.versions(),
        "keras": keras.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def generated_at() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
