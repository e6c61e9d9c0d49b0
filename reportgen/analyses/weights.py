"""Weight statistics per kernel layer, beside a freshly initialised copy.

Training spreads weights out (the tutorials show a trained std of 0.21-0.25
against 0.08 untrained); a layer whose weights still look like their
initialiser's has learned little. The baseline is the same architecture
re-initialised with each layer's own initialisers, seeded so that two runs
give the same numbers.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from reportgen import graph

NEAR_ZERO = 1e-3
BINS = 60


def fresh_copy(model: keras.Model, seed: int = 0, unsafe: bool = False) -> keras.Model:
    """The same architecture with freshly initialised weights (reproducible for a seed).

    Cloning re-creates layers from their configs, so a Lambda layer is
    deserialised again: allowed only for a model the user loaded with --unsafe.
    """
    from keras.src.saving.serialization_lib import SafeModeScope

    keras.utils.set_random_seed(seed)
    with SafeModeScope(not unsafe):
        clone = keras.models.clone_model(model)
    if not clone.built:
        clone.build(model.inputs[0].shape)
    return clone


def kernel_values(layer: Any) -> np.ndarray:
    """All kernel weights of a layer, flattened (both kernels of a separable conv)."""
    parts = [np.asarray(v.numpy() if hasattr(v, "numpy") else v, dtype=np.float64).ravel()
             for v in graph.kernel_variables(layer).values()]
    return np.concatenate(parts) if parts else np.zeros(0)


def bias_values(layer: Any) -> np.ndarray | None:
    bias = getattr(layer, "bias", None)
    if bias is None:
        return None
    return np.asarray(bias.numpy(), dtype=np.float64).ravel()


def statistics(values: np.ndarray) -> dict:
    """Mean, std, min, max and the near-zero fraction over the finite values.

    NaN and Inf are counted, not propagated: a report on a broken model must
    still say what the rest of the weights look like.
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    finite = values[np.isfinite(values)]
    stats = {
        "count": int(values.size),
        "nan_count": int(np.isnan(values).sum()),
        "inf_count": int(np.isinf(values).sum()),
    }
    if finite.size:
        stats.update(
            mean=float(finite.mean()),
            std=float(finite.std()),
            min=float(finite.min()),
            max=float(finite.max()),
            near_zero_fraction=float((np.abs(finite) < NEAR_ZERO).mean()),
        )
    else:
        stats.update(mean=None, std=None, min=None, max=None, near_zero_fraction=None)
    return stats


def shared_edges(*arrays: np.ndarray, bins: int = BINS) -> np.ndarray:
    """Histogram bin edges covering the finite values of all arrays (same bins for both)."""
    finite = [a[np.isfinite(a)] for a in arrays]
    finite = [a for a in finite if a.size]
    if not finite:
        return np.linspace(-1.0, 1.0, bins + 1)
    lo = min(float(a.min()) for a in finite)
    hi = max(float(a.max()) for a in finite)
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5, hi + 0.5
    return np.linspace(lo, hi, bins + 1)


def histogram(values: np.ndarray, edges: np.ndarray) -> dict:
    counts, _ = np.histogram(values[np.isfinite(values)], bins=edges)
    return {"edges": edges.tolist(), "counts": counts.astype(int).tolist()}


def describe_layer(trained: Any, baseline: Any) -> dict:
    """Statistics, bias statistics, shared-bin histograms and the std ratio for one layer."""
    w = kernel_values(trained)
    w0 = kernel_values(baseline)
    edges = shared_edges(w, w0)
    entry = statistics(w)
    entry["histogram"] = histogram(w, edges)
    b = bias_values(trained)
    entry["bias_mean"] = float(np.nanmean(b)) if b is not None and np.isfinite(b).any() else None
    entry["bias_std"] = float(np.nanstd(b)) if b is not None and np.isfinite(b).any() else None
    base = statistics(w0)
    base["histogram"] = histogram(w0, edges)
    b0 = bias_values(baseline)
    base["bias_mean"] = float(b0.mean()) if b0 is not None and b0.size else None
    base["bias_std"] = float(b0.std()) if b0 is not None and b0.size else None
    entry["baseline"] = base
    std, std0 = entry["std"], base["std"]
    entry["std_ratio"] = float(std / std0) if std is not None and std0 else None
    return entry


def weight_statistics(model: keras.Model, baseline: keras.Model) -> dict[str, dict]:
    """``weights`` block of report.json: one entry per kernel layer, by layer path."""
    base_refs = {r.path: r for r in graph.kernel_layers(baseline)}
    out = {}
    for ref in graph.kernel_layers(model):
        out[ref.path] = describe_layer(ref.layer, base_refs[ref.path].layer)
    return out
