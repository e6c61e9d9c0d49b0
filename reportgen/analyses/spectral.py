"""Spectral alpha per kernel layer: a power law fitted to the eigenvalues of WᵀW (the WeightWatcher method).

Martin & Mahoney's heavy-tailed self-regularisation reads how well a layer is
trained from its weights alone -- no data, which is all a reviewer has when
only the weights are shared: the tail of the empirical spectral density (ESD)
of the layer's correlation matrix WᵀW follows a power law p(λ) ~ λ^-alpha;
well-trained layers have 2 <= alpha <= 6, a smaller alpha suggests an
over-trained (over-fit) layer and a larger one an under-trained layer.

This module reproduces WeightWatcher 0.7.7's default ``analyze()`` (so that
its alpha can be checked against WeightWatcher's, and its literature applies):

- the matrices: a Dense kernel is one (in, out) matrix; a convolution kernel
  ``(*spatial, in, out)`` is its ``prod(spatial)`` slices, each an (in, out)
  matrix, and the slices' eigenvalues are pooled into ONE ESD (WeightWatcher's
  ``pool=True``, its default), so a 3x3 conv with min(in, out) = 16 has 144
  eigenvalues. Transposed convs store (out, in) slices: the same singular
  values. A depthwise conv's slices are (in, multiplier); a separable conv is
  read through its pointwise kernel (WeightWatcher, seeing "conv2d" in the
  class name, would read the depthwise kernel, whose few eigenvalues it does
  not fit anyway);
- the eigenvalues: the squared singular values of each slice, i.e. the
  eigenvalues of the smaller Gram matrix, with convolution slices scaled by
  1/2 first (WeightWatcher's ``conv2d_norm``: W * sqrt(1/2)); no division by N
  (WeightWatcher's ``normalize`` is off since 0.6.5). alpha does not depend on
  the scale; the reported ``xmin`` is in these units;
- which layers: at least ``MIN_EVALS`` (50) eigenvalues in the pooled ESD --
  fewer leave too little tail to fit -- and at most ``MAX_EVALS`` (15,000,
  WeightWatcher's ``max_evals``; the xmin scan costs O(n²));
- the fit: eigenvalues at most ``EVALS_THRESH`` (1e-5) are dropped; then
  WeightWatcher's own power-law fit (``WW_powerlaw.WWFit``, the Clauset et al.
  xmin scan): for every eigenvalue but the largest as a candidate xmin, the
  maximum-likelihood alpha = 1 + n / sum(log(λ / xmin)) over the n
  eigenvalues >= xmin, and the Kolmogorov-Smirnov distance between that
  power law and the tail; the xmin with the smallest distance wins (the first
  on a tie). Below ``SMALL_N`` (20) eigenvalues it uses WeightWatcher's
  small-sample variant (bias-corrected alpha, tails of at least 8, a
  tail-size bonus in the objective).

Pure NumPy and vectorised: the Gram matrices of all slices in one batched
product and one batched ``eigvalsh``, the xmin scan in blocks of candidates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_EVALS = 50  # fewer eigenvalues: no fit (WeightWatcher fits only layers with at least this many)
MAX_EVALS = 15_000  # WeightWatcher's max_evals: more is not fitted (the xmin scan is quadratic)
EVALS_THRESH = 1e-5  # WeightWatcher's EVALS_THRESH: eigenvalues at or below are numerical zeros
CONV_SCALE = 0.5  # WeightWatcher's conv2d_norm: slices multiplied by sqrt(1/2), eigenvalues by 1/2
SMALL_N, SMALL_N_MIN_TAIL = 20, 8  # WeightWatcher's small-sample fit: below 20 eigenvalues, tails of >= 8
_BLOCK = 1 << 20  # elements per block of the vectorised xmin scan (a few 8 MB temporaries)
GRAM_CHUNK = 1 << 24  # float64 values per chunk of the Gram product (128 MB)


@dataclass(frozen=True)
class SpectralFit:
    """One layer's power-law fit: ``alpha`` None (and ``reason`` says why) when not fitted."""

    alpha: float | None
    num_evals: int  # eigenvalues in the pooled ESD (WeightWatcher's num_evals)
    xmin: float | None = None  # the fitted lower bound of the tail (eigenvalue units above)
    ks_distance: float | None = None  # KS distance between the fitted power law and the tail
    num_tail: int | None = None  # eigenvalues >= xmin
    reason: str | None = None
    top_eval: float | None = (
        None  # the largest eigenvalue (float64): a Dense kernel's top singular value, squared
    )


def slices(kernel: np.ndarray) -> np.ndarray:
    """The matrices whose eigenvalues make the ESD: (1, in, out) for a 2-D kernel, (prod(spatial), in, out)
    for a convolution's ``(*spatial, in, out)`` (a view where possible)."""
    k = np.asarray(kernel)
    if k.ndim < 2:
        raise ValueError(f"a kernel has at least 2 dimensions, got shape {k.shape}")
    return k.reshape(-1, k.shape[-2], k.shape[-1])


def eigenvalues(kernel: np.ndarray) -> np.ndarray:
    """The pooled ESD of a kernel, ascending: every slice's squared singular values (conv slices scaled
    as WeightWatcher scales them), computed as the eigenvalues of each slice's smaller Gram matrix."""
    mats = slices(kernel)
    if mats.shape[1] < mats.shape[2]:
        mats = mats.transpose(0, 2, 1)  # (slices, long side, small side)
    # The Gram of the small side in float64, summed over chunks of the long side: never a float64 copy of
    # the whole kernel (VGG's fc1 would take 822 MB more at the report's peak).
    gram = np.zeros((mats.shape[0], mats.shape[2], mats.shape[2]))
    step = max(1, GRAM_CHUNK // max(1, mats.shape[0] * mats.shape[2]))
    for lo in range(0, mats.shape[1], step):
        part = mats[:, lo : lo + step].astype(np.float64)
        gram += part.transpose(0, 2, 1) @ part
    if (
        gram.shape[0] == 1
    ):  # one big matrix (a Dense kernel): LAPACK's evr in place, not a copy and syevd's 2n^2
        from scipy.linalg import eigh

        evals = eigh(gram[0], eigvals_only=True, overwrite_a=True, check_finite=False, driver="evr")
    else:
        evals = np.linalg.eigvalsh(gram).reshape(-1)
    evals = np.clip(evals, 0.0, None)  # round-off below 0 on rank-deficient slices
    if np.asarray(kernel).ndim > 2:
        evals *= CONV_SCALE
    return np.sort(evals)


def _ks_distances(x: np.ndarray, alphas: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """For each candidate index i (xmin = x[i]), max |F_fit - F_emp| over the tail x[i:] (ascending x).

    F_fit(λ) = 1 - (λ / xmin)^(1 - alpha); F_emp of the k-th tail value = k / n (WeightWatcher's form).
    Candidates with alpha <= 1 get 1, as in WeightWatcher.
    """
    n_all = x.size
    logx = np.log(x)
    out = np.ones(candidates.size)
    step = max(1, _BLOCK // max(1, n_all))
    j = np.arange(n_all)
    for lo in range(0, candidates.size, step):
        idx = candidates[lo : lo + step]
        a = alphas[idx]
        n = (n_all - idx).astype(np.float64)
        k = j[None, :] - idx[:, None]  # position in the tail; < 0 before xmin
        with np.errstate(over="ignore", invalid="ignore"):
            fit = 1.0 - np.exp((1.0 - a)[:, None] * (logx[None, :] - logx[idx][:, None]))
            d = np.abs(fit - k / n[:, None])
        d[k < 0] = 0.0
        dist = d.max(axis=1)
        out[lo : lo + step] = np.where(a > 1.0, np.nan_to_num(dist, nan=np.inf), 1.0)
    return out


def fit_power_law(evals: np.ndarray) -> tuple[float, float, float, int]:
    """WeightWatcher 0.7.7's power-law fit of ``evals``: (alpha, xmin, KS distance, tail size).

    ``evals``: positive values (at least 2). The xmin scan over every value but
    the largest; the maximum-likelihood alpha for each, the KS distance of the
    fitted law to the tail, the smallest distance wins. Below ``SMALL_N``
    values, WeightWatcher's small-sample objective (see the module docstring).
    """
    x = np.sort(np.asarray(evals, dtype=np.float64))
    n_all = x.size
    if n_all < 2:
        raise ValueError("a power-law fit needs at least 2 values")
    logx = np.log(x)
    suffix = np.cumsum(logx[::-1])[::-1]  # sum of log x[i:]
    i = np.arange(n_all - 1)
    n = (n_all - i).astype(np.float64)
    s = suffix[:-1] - n * logx[:-1]  # sum of log(x / xmin) over the tail
    small = n_all < SMALL_N
    with np.errstate(divide="ignore", invalid="ignore"):
        alphas = 1.0 + ((n - 1.0) if small else n) / s
    if not small:
        d = _ks_distances(x, alphas, i)
        best = int(np.argmin(d))
        return float(alphas[best]), float(x[best]), float(d[best]), int(n_all - best)
    ok = (n >= SMALL_N_MIN_TAIL) & (s > 1e-12)
    d = np.ones(n_all - 1)
    if ok.any():
        d[ok] = _ks_distances(x, alphas, i[ok])
    objective = np.where(ok & (alphas > 1.0), d - 0.868 / np.sqrt(n), np.inf)
    if np.isfinite(objective).any():
        best = int(np.argmin(objective))
    else:
        best = 0
        if s[0] <= 1e-12:
            return 1.0, float(x[0]), 1.0, n_all
        alphas[0] = 1.0 + (n[0] - 1.0) / s[0]
        d[0] = _ks_distances(x, alphas, np.array([0]))[0]
    return float(alphas[best]), float(x[best]), float(d[best]), int(n_all - best)


def num_evals(kernel_shape: tuple[int, ...]) -> int:
    """How many eigenvalues a kernel of this shape has (rf x min(in, out)), without computing them."""
    if len(kernel_shape) < 2:
        return 0
    return int(np.prod(kernel_shape[:-2], dtype=np.int64)) * min(kernel_shape[-2], kernel_shape[-1])


def spectral_fit(
    kernel: np.ndarray | None, min_evals: int = MIN_EVALS, max_evals: int = MAX_EVALS
) -> SpectralFit | None:
    """The layer's :class:`SpectralFit`; None for no kernel. Not fitted (``alpha`` None, a ``reason``) with
    fewer than ``min_evals`` or more than ``max_evals`` eigenvalues, NaN/Inf weights or too few non-zero
    eigenvalues."""
    if kernel is None or np.ndim(kernel) < 2:
        return None
    count = num_evals(tuple(np.shape(kernel)))
    if count < min_evals:
        return SpectralFit(None, count, reason=f"{count} eigenvalues, fewer than the {min_evals} a fit needs")
    if count > max_evals:
        return SpectralFit(
            None,
            count,
            reason=f"{count} eigenvalues, more than the {max_evals} fitted "
            "(WeightWatcher's max_evals; the fit's cost grows with the square)",
        )
    if not np.isfinite(np.asarray(kernel).sum(dtype=np.float64)):
        return SpectralFit(None, count, reason="the kernel holds NaN or Inf")
    evals = eigenvalues(kernel)
    positive = evals[evals > EVALS_THRESH]
    if positive.size < 2:
        return SpectralFit(
            None,
            count,
            reason=f"{positive.size} eigenvalue(s) above {EVALS_THRESH:g}: the kernel is (nearly) zero",
            top_eval=float(evals[-1]),
        )
    alpha, xmin, d, tail = fit_power_law(positive)
    if not np.isfinite(alpha):
        return SpectralFit(
            None, count, reason="the power-law fit failed (all eigenvalues equal)", top_eval=float(evals[-1])
        )
    return SpectralFit(alpha, count, xmin, d, tail, top_eval=float(evals[-1]))
