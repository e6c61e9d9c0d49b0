"""Weights, one layer at a time: statistics beside a fresh initialisation, and the facts the audit reads.

One pass over the layers that hold weights computes everything weight-based
for each layer and then lets its arrays go, so that peak memory grows with
the largest layers, not with their number: two layers of up to
``ALONE_ABOVE`` weights at a time (on two threads), a larger one alone
(VGG16's 103M-weight ``fc1`` is the largest there is to hold):

- kernel statistics (mean, std, min, max, near-zero fraction, NaN/Inf counts)
  and a histogram, beside the same for a freshly initialised copy of the
  layer (:mod:`reportgen.analyses.baseline`) on shared bins -- computed in
  float32 chunks with float64 sums, never a float64 copy of a large kernel
  (the top singular value works on a float32 Gram of the smaller side, or on
  the kernel itself above ``SV_GRAM_MAX``);
- the facts the findings read: per-filter kernel norms, each conv filter's
  most similar earlier filter, a two-sample Kolmogorov-Smirnov test against
  the fresh draw (on seeded samples of at most ``KS_SAMPLES`` per side), the
  largest singular values of both, BatchNormalization's gamma and moving
  variance, and where NaN/Inf sit.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from reportgen import graph
from reportgen.analyses.baseline import fresh_values, variable_name
from reportgen.analyses.spectral import SpectralFit, spectral_fit

NEAR_ZERO = 1e-3
BINS = 60
CHUNK = 1 << 22  # values per chunk in the streaming statistics
# Samples per side for the KS test: the statistic's sampling error is ~1/sqrt(n),
# far below the default threshold, and VGG16's 100M-weight fc1 stays affordable.
KS_SAMPLES = 50_000
DEAD_KERNEL_NORM = (
    1e-3  # the default of reportgen.config.Thresholds.dead_kernel_norm (dead filters, relative)
)
SV_DRAWS, SV_DRAWS_BELOW = 8, 1_000_000  # fresh draws for the top singular value of kernels up to this size


def _array(var: Any) -> np.ndarray:
    """A variable's value as float32 NumPy (a read-only view where possible; 16-bit weights are widened)."""
    from reportgen import backend

    arr = backend.array(var)
    return arr if arr.dtype == np.float32 else arr.astype(np.float32)


def _chunks(arrays: Iterable[np.ndarray]) -> Iterable[np.ndarray]:
    for a in arrays:
        flat = a.reshape(-1)
        for lo in range(0, flat.size, CHUNK):
            yield flat[lo : lo + CHUNK]


def statistics(arrays: Iterable[np.ndarray] | np.ndarray) -> dict:
    """Mean, std, min, max and the near-zero fraction over the finite values, streamed in chunks.

    NaN and Inf are counted, not propagated: a report on a broken model must
    still say what the rest of the weights look like.
    """
    arrays = [np.asarray(arrays)] if isinstance(arrays, np.ndarray) else [np.asarray(a) for a in arrays]
    count = nan = inf = finite = near = 0
    total = 0.0
    lo, hi = np.inf, -np.inf
    for c in _chunks(arrays):
        count += c.size
        ok = np.isfinite(c)
        n_ok = int(ok.sum())
        nan += int(np.isnan(c).sum())
        inf += c.size - n_ok - int(np.isnan(c).sum())
        if n_ok == 0:
            continue
        v = c if n_ok == c.size else c[ok]
        finite += n_ok
        total += float(v.sum(dtype=np.float64))
        lo, hi = min(lo, float(v.min())), max(hi, float(v.max()))
        near += int((np.abs(v) < NEAR_ZERO).sum())
    stats = {"count": int(count), "nan_count": int(nan), "inf_count": int(inf)}
    if not finite:
        stats.update(mean=None, std=None, min=None, max=None, near_zero_fraction=None)
        return stats
    mean = total / finite
    squares = 0.0
    for c in _chunks(arrays):
        v = c[np.isfinite(c)]
        d = v.astype(np.float64) - mean
        squares += float(np.dot(d, d))
    stats.update(
        mean=mean, std=float(np.sqrt(squares / finite)), min=lo, max=hi, near_zero_fraction=near / finite
    )
    return stats


def shared_edges(*arrays: Any, bins: int = BINS) -> np.ndarray:
    """Histogram bin edges covering the finite values of all arrays (same bins for both)."""
    lo, hi = np.inf, -np.inf
    for group in arrays:
        for c in _chunks(group if isinstance(group, (list, tuple)) else [np.asarray(group)]):
            v = c[np.isfinite(c)]
            if v.size:
                lo, hi = min(lo, float(v.min())), max(hi, float(v.max()))
    if not np.isfinite(lo):
        return np.linspace(-1.0, 1.0, bins + 1)
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5, hi + 0.5
    return np.linspace(lo, hi, bins + 1)


def histogram(arrays: Any, edges: np.ndarray) -> dict:
    counts = np.zeros(len(edges) - 1, dtype=np.int64)
    for c in _chunks(arrays if isinstance(arrays, (list, tuple)) else [np.asarray(arrays)]):
        counts += np.histogram(c[np.isfinite(c)], bins=edges)[0]
    return {"edges": edges.tolist(), "counts": counts.astype(int).tolist()}


def sample(arrays: list[np.ndarray], n: int, rng: np.random.Generator) -> np.ndarray:
    """Up to ``n`` finite values drawn without replacement across ``arrays`` (float64)."""
    sizes = [a.size for a in arrays]
    total = sum(sizes)
    if total <= n:
        flat = np.concatenate([a.reshape(-1) for a in arrays]).astype(np.float64)
        return flat[np.isfinite(flat)]
    idx = np.sort(rng.choice(total, n, replace=False))
    out, start = [], 0
    for a, size in zip(arrays, sizes):
        sel = idx[(idx >= start) & (idx < start + size)] - start
        out.append(a.reshape(-1)[sel].astype(np.float64))
        start += size
    v = np.concatenate(out)
    return v[np.isfinite(v)]


def ks_test(trained: np.ndarray, baseline: np.ndarray) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov test between two weight samples: (statistic, p-value)."""
    from scipy.stats import ks_2samp

    if trained.size == 0 or baseline.size == 0:
        return float("nan"), float("nan")
    res = ks_2samp(trained, baseline)
    return float(res.statistic), float(res.pvalue)


SV_RTOL = 1e-3  # Lanczos stops when its residual bound puts the top Gram eigenvalue within this (relative)
SV_EXACT_BELOW = (
    160  # Gram matrices up to this side: exact eigvalsh (cheaper than the Lanczos loop's overhead)
)
SV_GRAM_MAX = 2048  # larger smaller-sides (VGG16's fc1, 4096 x 25088): Lanczos on the matrix, no Gram


def top_singular_value(matrix: np.ndarray | None, finite: bool | None = None) -> float | None:
    """Largest singular value of a (filters, fan_in) matrix; None when not a usable 2-D matrix.

    See :func:`top_singular_values`, which does a stack of same-shaped matrices in one solve.
    """
    if matrix is None or matrix.ndim != 2 or min(matrix.shape) < 2:
        return None
    if not (finite if finite is not None else _all_finite(matrix)):
        return None
    return float(top_singular_values([matrix])[0])


def top_singular_values(matrices: Sequence[np.ndarray]) -> np.ndarray:
    """The largest singular value of each of several same-shaped finite matrices (a list or a stack).

    The top eigenvalue of each one's smaller Gram matrix (formed in float32, one
    BLAS-3 product per matrix straight from its view, no stacked copy; the cost is the
    kernel's size times its smaller side): exact ``eigvalsh`` when that side is at most
    ``SV_EXACT_BELOW``, otherwise Lanczos with full reorthogonalisation on all of them
    at once, stopped when the residual bound puts every top eigenvalue within ``SV_RTOL``
    (relative; so each singular value within half that -- in practice the error is the
    residual's square, ~1e-7). A full eigendecomposition of a 1536 x 1536 Gram per draw
    cost EfficientNetB3 most of its weights analysis; power iteration would need hundreds
    of steps, since a random matrix's top singular values crowd together. Matrices whose
    smaller side exceeds ``SV_GRAM_MAX`` (VGG16's fc1) run the same Lanczos on
    ``x -> M^T (M x)`` instead of forming a Gram of hundreds of GFLOP. Float32 products
    agree with float64 to ~1e-6.
    """
    mats = [np.asarray(m, dtype=np.float32) for m in matrices]
    # Extreme but finite weights (3e38) overflow a float32 Gram: such a matrix is scaled to a largest
    # entry of 1 first (in float64, then back to float32) and its singular value scaled back, since
    # sv(M) = s * sv(M / s). Weights of ordinary size are not copied.
    scales = np.ones(len(mats))
    for i, m in enumerate(mats):
        peak = float(np.max(np.abs(m), initial=0.0))
        if peak > _SV_SAFE or 0.0 < peak < 1.0 / _SV_SAFE:
            scales[i] = peak
            mats[i] = (m.astype(np.float64) / peak).astype(np.float32)
    if np.any(scales != 1.0):
        return scales * _top_singular_values(mats)
    return _top_singular_values(mats)


_SV_SAFE = (
    1e15  # largest entry beyond which (or below whose inverse) a float32 Gram may overflow or underflow
)


def _top_singular_values(mats: list[np.ndarray]) -> np.ndarray:
    """:func:`top_singular_values` of float32 matrices whose Gram cannot overflow."""
    b = len(mats)
    rows, cols = mats[0].shape
    k = min(rows, cols)
    wide = rows <= cols  # the Gram is on the smaller side
    if k > SV_GRAM_MAX:

        def apply(x: np.ndarray) -> np.ndarray:  # (b, k) -> (b, k), one matrix at a time
            out = np.empty_like(x)
            for i, m in enumerate(mats):
                v = x[i].astype(np.float32)
                out[i] = m @ (m.T @ v) if wide else m.T @ (m @ v)
            return out

        return np.sqrt(np.maximum(0.0, _lanczos_top(apply, b, k)))
    gram = np.empty((b, k, k))
    for i, m in enumerate(mats):
        gram[i] = m @ m.T if wide else m.T @ m
    if k <= SV_EXACT_BELOW:
        top = np.linalg.eigvalsh(gram)[:, -1]
    else:
        top = _lanczos_top(lambda x: np.matmul(gram, x[:, :, None])[:, :, 0], b, k)
    return np.sqrt(np.maximum(0.0, top))


def _lanczos_top(
    apply: Callable[[np.ndarray], np.ndarray], b: int, k: int, rtol: float = SV_RTOL, max_steps: int = 300
) -> np.ndarray:
    """The largest eigenvalue of ``b`` symmetric positive semi-definite k x k operators, by Lanczos.

    ``apply`` maps a (b, k) block of vectors to the operators' products. Full
    reorthogonalisation (the basis is at most ``max_steps`` x k), a seeded start, and
    a stop when every operator's top Ritz pair has residual ``beta_j |y_j|`` at most
    ``rtol`` x its Ritz value (an eigenvalue lies within the residual of it).
    """
    rng = np.random.default_rng(0)
    steps = min(k, max_steps)
    basis = np.zeros((b, steps, k))
    q = rng.standard_normal((b, k))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    alpha, beta = np.zeros((b, steps)), np.zeros((b, steps))
    top = np.zeros(b)
    for j in range(steps):
        basis[:, j] = q
        w = apply(q)
        alpha[:, j] = np.einsum("bk,bk->b", w, q)
        v = basis[:, : j + 1]
        for _ in range(2):  # twice is enough (Kahan): the basis stays orthonormal to rounding
            w -= (np.matmul(v, w[:, :, None]).transpose(0, 2, 1) @ v)[:, 0]
        beta[:, j] = np.linalg.norm(w, axis=1)
        if j + 1 == steps or (j >= 7 and j % 4 == 3) or np.all(beta[:, j] == 0):
            t = np.zeros((b, j + 1, j + 1))
            idx = np.arange(j + 1)
            t[:, idx, idx] = alpha[:, : j + 1]
            t[:, idx[1:], idx[:-1]] = t[:, idx[:-1], idx[1:]] = beta[:, :j]
            vals, vecs = np.linalg.eigh(t)
            top = vals[:, -1]
            residual = beta[:, j] * np.abs(vecs[:, -1, -1])
            if np.all(residual <= rtol * np.maximum(np.abs(top), 1e-300)):
                break
        q = w / np.where(beta[:, j] > 0, beta[:, j], 1.0)[:, None]
    _lanczos_top.steps = j + 1  # type: ignore[attr-defined]  (read by bench/weights_speed.py)
    return top


def filter_matrix(layer: Any, kernel: np.ndarray | None = None) -> np.ndarray | None:
    """Each output filter's (or Dense unit's) incoming weights, one row each: (filters, fan_in).

    Conv kernels are ``(..., in, out)``; transposed convs store ``(..., out, in)``;
    a depthwise conv's filters are its ``in * multiplier`` spatial kernels; a
    separable conv's output filters are the columns of its pointwise kernel.
    A view where possible (no copy of a large kernel).
    """
    import keras

    if isinstance(layer, (keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D)):
        k = _array(layer.kernel) if kernel is None else kernel
        return k.reshape(-1, k.shape[-2] * k.shape[-1]).T
    if isinstance(layer, (keras.layers.SeparableConv1D, keras.layers.SeparableConv2D)):
        k = _array(layer.pointwise_kernel) if kernel is None else kernel
        return k.reshape(-1, k.shape[-1]).T
    var = getattr(layer, "kernel", None)
    if var is None or not isinstance(layer, graph.KERNEL_TYPES):
        return None
    k = _array(var) if kernel is None else kernel
    if isinstance(layer, keras.layers.EinsumDense):
        return einsum_matrix(getattr(layer, "equation", ""), k)
    if isinstance(
        layer, (keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose, keras.layers.Conv3DTranspose)
    ):
        k = np.moveaxis(k, -2, -1)
    return k.reshape(-1, k.shape[-1]).T


def einsum_matrix(equation: str, k: np.ndarray) -> np.ndarray:
    """An ``EinsumDense`` kernel (a transformer's 3-D query, key, value or output projection) as
    (output units, fan_in): the axes it contracts with the input are the fan-in, the others the units.

    ``"abc,cde->abde"`` (a query projection, kernel ``(C, heads, d)``) gives
    ``(heads*d, C)``; ``"abcd,cde->abe"`` (the output projection, ``(heads, d, C)``)
    gives ``(C, heads*d)``. An equation it cannot read falls back to the last axis as units.
    """
    try:
        inputs, out = equation.replace(" ", "").split("->")
        lhs, spec = inputs.split(",")
    except ValueError:
        return k.reshape(-1, k.shape[-1]).T
    if len(spec) != k.ndim:
        return k.reshape(-1, k.shape[-1]).T
    fan_in = [i for i, c in enumerate(spec) if c in lhs and c not in out]
    units = [i for i in range(k.ndim) if i not in fan_in]
    if not fan_in or not units:
        return k.reshape(-1, k.shape[-1]).T
    moved = np.transpose(k, fan_in + units)
    n_in = int(np.prod([k.shape[i] for i in fan_in]))
    return moved.reshape(n_in, -1).T


def row_norms(w: np.ndarray) -> np.ndarray:
    """L2 norm of each row, NaN/Inf counted as 0, without a full-size temporary."""
    out = np.empty(w.shape[0], dtype=np.float64)
    step = max(1, CHUNK // max(1, w.shape[1]))
    for lo in range(0, w.shape[0], step):
        rows = np.nan_to_num(w[lo : lo + step].astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        out[lo : lo + step] = np.sqrt(np.einsum("ij,ij->i", rows, rows))
    return out


def dead_rows(
    norms: np.ndarray, finite: np.ndarray, dead_kernel_norm: float = DEAD_KERNEL_NORM
) -> tuple[np.ndarray, float, float]:
    """The filters / units whose incoming weights are (near) zero, and so ignore their input.

    "Near zero": a norm at most ``dead_kernel_norm`` x the layer's median
    finite norm (its largest when that median is 0), so the rule does not
    depend on the layer's scale. Returns (their indices, the reference norm,
    the limit). The one rule: the dead-filter findings report these rows and
    the duplicate check leaves them out.
    """
    ref = float(np.median(norms[finite])) if finite.any() else 0.0
    if ref == 0.0 and finite.any():
        ref = float(norms[finite].max())
    limit = dead_kernel_norm * ref
    return np.flatnonzero(finite & (norms <= limit)), ref, limit


def nearest_earlier(w: np.ndarray, usable: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each row, the most cosine-similar earlier usable row: (cosine, index); -inf/-1 where none.

    One float32 product of the unit rows with themselves, the diagonal and everything
    after it masked, an ``argmax`` per row -- then the chosen pairs' cosines again in
    float64, so that the reported values are float64's (only a near-tie within
    float32 rounding could pick the other partner).
    """
    n = w.shape[0]
    best = np.full(n, -np.inf)
    which = np.full(n, -1, dtype=np.int64)
    idx = np.flatnonzero(usable)
    if idx.size < 2:
        return best, which
    unit = w[idx].astype(np.float64)
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    single = unit.astype(np.float32)
    cos = single @ single.T
    order = np.arange(idx.size)
    np.putmask(cos, order[:, None] <= order, -np.inf)  # a row's own and later rows
    pick = np.argmax(cos[1:], axis=1)
    best[idx[1:]] = np.einsum("ij,ij->i", unit[1:], unit[pick])
    which[idx[1:]] = idx[pick]
    return best, which


@dataclass
class Nonfinite:
    variable: str
    nan: int
    inf: int
    filters: list[int]


@dataclass
class LayerWeights:
    """Everything the report knows of one layer's weights (arrays released after the pass)."""

    path: str
    class_name: str
    has_kernel: bool
    is_conv: bool
    is_dense: bool
    is_depthwise: bool
    activation: str | None
    stats: dict | None = None  # kernel statistics (trained)
    baseline: dict | None = None  # the same for the fresh initialisation
    histogram: dict | None = None
    bias: dict | None = None  # {"mean", "std"}
    std_ratio: float | None = None
    ks: tuple[float, float] | None = None  # (statistic, p-value) trained vs fresh
    outside_init: int | None = None  # kernel weights outside the initialiser's support (None: unbounded)
    kernel_size: int = 0  # number of finite kernel weights
    sv: tuple[float | None, float | None] = (
        None,
        None,
    )  # top singular value, trained and fresh (mean of draws)
    sv_spread: float = 0.0  # std of the fresh draws' top singular values (small kernels: several draws)
    norms: np.ndarray | None = None  # per output filter / unit
    finite_rows: np.ndarray | None = None
    duplicate_cos: np.ndarray | None = None
    duplicate_of: np.ndarray | None = None
    filter_dim: int = 0  # weights per filter (the length of the vectors whose cosines are compared)
    bias_values: np.ndarray | None = None  # Dense layers (what a dead unit outputs)
    gamma: np.ndarray | None = None
    gains: np.ndarray | None = None  # a LayerNorm's gamma or a LayerScale's factor, per channel
    gains_stats: dict | None = None
    gains_init: float | None = (
        None  # the constant those gains start at (1e-6 in ConvNeXt's LayerScale, 1.0 ...)
    )
    moving_variance: np.ndarray | None = None
    nonfinite: list[Nonfinite] = field(default_factory=list)
    spectral: SpectralFit | None = None  # power-law alpha of the kernel's ESD (reportgen.analyses.spectral)

    def to_json(self) -> dict:
        """The ``weights`` entry of report.json (kernel layers)."""
        entry = dict(self.stats or {})
        entry["histogram"] = self.histogram
        entry["bias_mean"] = (self.bias or {}).get("mean")
        entry["bias_std"] = (self.bias or {}).get("std")
        if self.baseline is not None:
            entry["baseline"] = dict(self.baseline)
        entry["std_ratio"] = self.std_ratio
        if self.ks is not None:
            entry["ks_statistic"], entry["ks_pvalue"] = self.ks
        if self.spectral is not None:
            sp = self.spectral
            entry.update(
                alpha=sp.alpha, alpha_num_evals=sp.num_evals, alpha_xmin=sp.xmin, alpha_reason=sp.reason
            )
        return entry

    def gains_json(self) -> dict | None:
        """The ``gains`` entry of report.json: a LayerNorm's or LayerScale's per-channel gain, and its start
        value."""
        if self.gains_stats is None:
            return None
        return {k: self.gains_stats[k] for k in ("count", "mean", "std", "min", "max")} | {
            "initial": self.gains_init,
            "at_initial": self.at_initial,
        }

    @property
    def at_initial(self) -> bool:
        """Every gain still equals the constant it was initialised to: the block never trained."""
        return (
            self.gains_init is not None
            and self.gains is not None
            and bool(np.all(self.gains == self.gains_init))
        )


def _all_finite(w: np.ndarray) -> bool:
    """No NaN or Inf, checked with a float64 sum (no full-size temporary; finite float32 cannot overflow
    it)."""
    return bool(np.isfinite(w.sum(dtype=np.float64))) if w.size else True


def _nonfinite(layer: Any, values: list[np.ndarray]) -> list[Nonfinite]:
    out = []
    for var, w in zip(layer.weights, values):
        if _all_finite(w):
            continue
        bad = ~np.isfinite(w)
        if not bad.any():
            continue
        per_filter = bad.reshape(-1, w.shape[-1]).any(axis=0) if w.ndim else bad.reshape(1)
        nan = int(np.isnan(w).sum())
        out.append(
            Nonfinite(
                variable_name(var),
                nan,
                int(bad.sum()) - nan,
                [int(f) for f in np.flatnonzero(per_filter)] if w.ndim else [],
            )
        )
    return out


def describe_layer(
    ref: graph.LayerRef,
    seed: int = 0,
    rng: np.random.Generator | None = None,
    dead_kernel_norm: float = DEAD_KERNEL_NORM,
) -> LayerWeights:
    """One layer's :class:`LayerWeights` (trained values read once, a fresh draw made once); the filters
    :func:`dead_rows` finds at ``dead_kernel_norm`` take no part in the duplicate check."""
    import keras

    layer = ref.layer
    rng = rng if rng is not None else np.random.default_rng(seed)
    kernels = graph.kernel_variables(layer)
    lw = LayerWeights(
        path=ref.path,
        class_name=ref.class_name,
        has_kernel=bool(kernels),
        is_conv=graph.is_conv(layer),
        is_dense=isinstance(layer, keras.layers.Dense),
        is_depthwise=isinstance(layer, (keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D)),
        activation=graph.activation_name(layer),
    )
    values = [_array(v) for v in layer.weights]
    lw.nonfinite = _nonfinite(layer, values)
    by_name = {variable_name(v): a for v, a in zip(layer.weights, values)}
    if isinstance(layer, keras.layers.BatchNormalization):
        lw.gamma = by_name.get("gamma")
        lw.moving_variance = by_name.get("moving_variance")
    if isinstance(
        layer, (keras.layers.LayerNormalization, keras.layers.GroupNormalization)
    ) or _is_layer_scale(layer):
        # A transformer's gains: LayerNorm's gamma, and LayerScale's per-channel factor, which starts
        # at a constant (1e-6 in ConvNeXt) and stays there in a block that never trained.
        lw.gains = by_name.get(
            "gamma", next(iter(by_name.values()), None) if _is_layer_scale(layer) else None
        )
        if lw.gains is not None:
            lw.gains_stats = statistics(lw.gains)
            fresh = fresh_values(layer, ref.path, seed, ref.input_shape)
            if fresh:
                f0 = dict(zip((variable_name(v) for v in layer.weights), fresh))
                g0 = f0.get("gamma", next(iter(f0.values()), None))
                if g0 is not None and g0.shape == lw.gains.shape and np.ptp(g0) == 0:
                    lw.gains_init = float(g0.reshape(-1)[0])
    if not kernels:
        return lw
    # The spectrum first, before the fresh draw exists: VGG's fc1 would hold both at once.
    main = _main_for_filters(layer, by_name)
    if isinstance(layer, keras.layers.EinsumDense) and main is not None:
        main = einsum_matrix(
            getattr(layer, "equation", ""), main
        ).T  # one (fan-in, units) matrix, not conv slices
    lw.spectral = spectral_fit(main)
    fresh = fresh_values(layer, ref.path, seed, ref.input_shape)
    fresh_by_name = {variable_name(v): a for v, a in zip(layer.weights, fresh)} if fresh else {}
    trained = [by_name[variable_name(v)] for v in kernels.values()]
    lw.outside_init = _outside_support(layer, kernels.values(), trained)
    base = [fresh_by_name[variable_name(v)] for v in kernels.values()] if fresh else None
    edges = shared_edges(trained, base) if base else shared_edges(trained)
    lw.stats = statistics(trained)
    lw.histogram = histogram(trained, edges)
    bias = by_name.get("bias") if getattr(layer, "use_bias", True) else None
    if bias is not None:
        finite = bias[np.isfinite(bias)].astype(np.float64)  # float64: a float32 sum of 3e38s overflows
        lw.bias = {
            "mean": float(finite.mean()) if finite.size else None,
            "std": float(finite.std()) if finite.size else None,
        }
        if lw.is_dense:
            lw.bias_values = bias.astype(np.float64)
    lw.kernel_size = int(lw.stats["count"] - lw.stats["nan_count"] - lw.stats["inf_count"])
    if base is not None:
        lw.baseline = statistics(base)
        lw.baseline["histogram"] = histogram(base, edges)
        b0 = fresh_by_name.get("bias")
        lw.baseline["bias_mean"] = float(b0.mean()) if b0 is not None and b0.size else None
        lw.baseline["bias_std"] = float(b0.std()) if b0 is not None and b0.size else None
        s, s0 = lw.stats["std"], lw.baseline["std"]
        lw.std_ratio = float(s / s0) if s is not None and s0 else None
        lw.ks = ks_test(sample(trained, KS_SAMPLES, rng), sample(base, KS_SAMPLES, rng))
    w = filter_matrix(layer, _main_for_filters(layer, by_name))
    if w is not None:
        lw.norms = row_norms(w)
        if not lw.nonfinite:
            lw.finite_rows = np.ones(w.shape[0], dtype=bool)
        else:
            lw.finite_rows = np.array([np.isfinite(w[i]).all() for i in range(w.shape[0])])
        w0 = filter_matrix(layer, _main_for_filters(layer, fresh_by_name)) if fresh else None
        draws = [w0] if w0 is not None else []
        if fresh and w.size <= SV_DRAWS_BELOW:
            # a small random matrix's top singular value varies by +-10% between draws: average several
            draws += [_sv_draw(layer, ref, seed, k) for k in range(1, SV_DRAWS)]
        draws = [d for d in draws if d is not None and d.ndim == 2 and min(d.shape) >= 2]
        if len(draws) > 1:  # small kernels: the trained one and its draws share a shape, one solve for all
            usable = min(w.shape) >= 2 and not lw.nonfinite
            tops = top_singular_values(([w] if usable else []) + draws)
            trained, s0 = (float(tops[0]) if usable else None), [float(v) for v in tops[int(usable) :]]
        elif (
            lw.is_dense and lw.spectral is not None and lw.spectral.top_eval is not None and not lw.nonfinite
        ):
            # A Dense kernel's spectrum is already known, in float64: its largest eigenvalue is the top
            # singular value squared (ConvNeXtXLarge: 61 Grams of up to 2048 x 8192 not formed twice).
            trained = float(np.sqrt(max(0.0, lw.spectral.top_eval)))
            s0 = [top_singular_value(d, finite=True) for d in draws]
        else:
            trained = top_singular_value(w, finite=not lw.nonfinite)
            s0 = [top_singular_value(d, finite=True) for d in draws]
        lw.sv = (trained, float(np.mean(s0)) if s0 else None)
        lw.sv_spread = float(np.std(s0)) if len(s0) > 1 else 0.0
        if lw.is_conv and not lw.is_depthwise and w.shape[0] >= 2 and w.shape[1] >= 2:
            ok = lw.finite_rows & (lw.norms > 1e-12)  # dead filters have no direction
            ok[dead_rows(lw.norms, lw.finite_rows, dead_kernel_norm)[0]] = False
            lw.duplicate_cos, lw.duplicate_of = nearest_earlier(np.nan_to_num(w), ok)
            lw.filter_dim = int(w.shape[1])
    return lw


def _is_layer_scale(layer: Any) -> bool:
    """A LayerScale: one per-channel factor on a residual branch (keras.applications' ConvNeXt
    ``LayerScale``, keras-hub's ``DINOV2LayerScale``), named so by its class."""
    return "layerscale" in type(layer).__name__.lower() and len(getattr(layer, "weights", [])) == 1


def _sv_draw(layer: Any, ref: graph.LayerRef, seed: int, k: int) -> np.ndarray | None:
    """The k-th extra fresh draw's filter matrix: only the kernel it reads is drawn (the same values as
    drawing the whole layer under the path ``<path>#sv<k>``)."""
    from reportgen.analyses.baseline import fresh_value

    path = f"{ref.path}#sv{k}"
    names = {"pointwise_kernel", "kernel", "depthwise_kernel"}
    main = [v for v in layer.weights if variable_name(v) in names]
    by = {variable_name(v): fresh_value(layer, v, path, seed) for v in main}
    if not main or any(a is None for a in by.values()):
        extra = fresh_values(layer, path, seed, ref.input_shape)
        if not extra:
            return None
        by = {variable_name(v): a for v, a in zip(layer.weights, extra)}
    return filter_matrix(layer, _main_for_filters(layer, by))


def _outside_support(layer: Any, variables: Iterable[Any], arrays: list[np.ndarray]) -> int | None:
    """How many kernel weights lie outside the support of the initialisers that drew them (None:
    unbounded)."""
    from reportgen.analyses.baseline import initializer_of, support

    total = 0
    for var, a in zip(variables, arrays):
        bounds = support(initializer_of(layer, var), tuple(a.shape))
        if bounds is None:
            return None
        lo, hi = bounds
        tol = 1e-6 * max(abs(lo), abs(hi), 1e-12)
        for c in _chunks([a]):
            total += int(((c < lo - tol) | (c > hi + tol)).sum())
    return total


def _main_for_filters(layer: Any, by_name: dict) -> np.ndarray | None:
    """The array :func:`filter_matrix` reads for this layer type (pointwise for separable convs)."""
    import keras

    if isinstance(layer, (keras.layers.SeparableConv1D, keras.layers.SeparableConv2D)):
        return by_name.get("pointwise_kernel")
    if isinstance(layer, (keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D)):
        return by_name.get("kernel", by_name.get("depthwise_kernel"))
    return by_name.get("kernel")


def weight_analysis(
    model: Any,
    seed: int = 0,
    progress: Callable[..., Any] | None = None,
    dead_kernel_norm: float = DEAD_KERNEL_NORM,
) -> dict[str, LayerWeights]:
    """:class:`LayerWeights` for every leaf layer that holds weights, in model order, by path.

    ``dead_kernel_norm``: the configured threshold (``Thresholds.dead_kernel_norm``) -- the filters
    it calls dead are left out of the duplicate check.
    """
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    from reportgen.analyses.baseline import derived_seed

    refs = graph.weighted_layers(model)
    done: dict[str, LayerWeights] = {}

    def one(ref: graph.LayerRef) -> LayerWeights:
        # Each layer's own generator (its KS samples): the same numbers whatever thread or order runs it.
        rng = np.random.default_rng(derived_seed(seed, ref.path, "ks"))
        return describe_layer(ref, seed, rng, dead_kernel_norm)

    workers = max(1, min(WORKERS, os.cpu_count() or 1))
    with _one_blas_thread(), ThreadPoolExecutor(workers) as pool:

        def described() -> Iterable[graph.LayerRef]:
            """Each layer once its description is done, in model order (what the progress bar counts)."""
            pending: deque = deque()
            for ref in refs:
                if _weight_count(ref.layer) > ALONE_ABOVE:
                    while pending:  # a big layer alone: its draws and Gram never meet another's
                        r, future = pending.popleft()
                        done[r.path] = future.result()
                        yield r
                    done[ref.path] = one(ref)
                    yield ref
                    continue
                pending.append((ref, pool.submit(one, ref)))
                while len(pending) > 2 * workers:  # a few layers in flight: memory stays a few layers'
                    r, future = pending.popleft()
                    done[r.path] = future.result()
                    yield r
            while pending:
                r, future = pending.popleft()
                done[r.path] = future.result()
                yield r

        try:
            for _ in progress(described(), desc="weights", total=len(refs)) if progress else described():
                pass
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)  # Ctrl-C or an error: drop the queued layers
            raise
    return {ref.path: done[ref.path] for ref in refs}


# The pass describes layers on WORKERS threads: its work is NumPy and LAPACK calls that release the GIL
# (drawing, Grams, eigenvalues, sorting) on one BLAS thread each, so two layers at once use both cores of
# a 2-core machine (EfficientNetB7: 16.0 s on one thread, 10.7 on two). A layer over ALONE_ABOVE weights
# (VGG16's fc1 and fc2, ConvNeXtXLarge's last stage) is described alone, so the peak memory stays one big
# layer's (ConvNeXtXLarge's model alone peaks at ~2.6 GB while Keras builds it).
WORKERS = 2
ALONE_ABOVE = 8_000_000


def _weight_count(layer: Any) -> int:
    return int(sum(int(np.prod(v.shape)) for v in layer.weights))


def _one_blas_thread() -> Any:
    """BLAS and LAPACK on one thread for the pass (a no-op without threadpoolctl, which scikit-learn brings).

    The pass is hundreds of small products and solves (Grams of a few hundred rows);
    split over two threads, each pays a hand-off, and when anything else wants the
    cores -- TensorFlow's spinning pool, another process -- OpenBLAS's waiting threads
    made a stack of 160 x 160 ``eigvalsh`` 20x slower (349 ms against 17 ms, measured
    on the 2-core machine of docs/benchmarks.md).
    """
    import contextlib

    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def kernel_values(layer: Any) -> np.ndarray:
    """All kernel weights of a layer, flattened, float32 (both kernels of a separable conv)."""
    parts = [_array(v).ravel() for v in graph.kernel_variables(layer).values()]
    return np.concatenate(parts) if len(parts) > 1 else (parts[0] if parts else np.zeros(0, dtype=np.float32))


def bias_values(layer: Any) -> np.ndarray | None:
    bias = getattr(layer, "bias", None)
    if bias is None:
        return None
    return _array(bias).ravel()
