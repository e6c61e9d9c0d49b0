"""Checks that read only the weights (:class:`~reportgen.analyses.weights.LayerWeights` facts)."""

from __future__ import annotations

import numpy as np

from reportgen.analyses.activations import RELU_LIKE
from reportgen.analyses.findings.core import Finding, finding, num
from reportgen.analyses.weights import LayerWeights, dead_rows
from reportgen.config import Thresholds

# With a bounded initialiser, "no weight left its interval" is itself evidence, so the KS test may
# judge small kernels too (a 3x3x1x32 first conv: 288 weights); below this it says nothing.
MIN_BOUNDED_WEIGHTS = 100


def check_nonfinite(lw: LayerWeights, t: Thresholds) -> list[Finding]:
    """NaN or Inf in any weight (kernel, bias, BN statistics): the model's outputs are garbage."""
    out = []
    for nf in lw.nonfinite:
        what = " and ".join(
            p for p in (f"{nf.nan} NaN" if nf.nan else "", f"{nf.inf} Inf" if nf.inf else "") if p
        )
        filters = nf.filters
        where = (
            f"filter {filters[0]}"
            if len(filters) == 1
            else f"{len(filters)} filters (first: {filters[0]})"
            if filters
            else "a scalar"
        )
        out.append(
            finding(
                "nonfinite_weights",
                lw.path,
                filters[0] if filters else None,
                nf.nan + nf.inf,
                0,
                f"{lw.path} {nf.variable} holds {what} value(s) in {where}: every output depending on it is "
                "invalid; retrain from a checkpoint before the divergence (lower the learning rate, "
                "clip gradients).",
            )
        )
    return out


def _dead_rows(lw: LayerWeights, t: Thresholds) -> tuple[np.ndarray, float, float]:
    return dead_rows(lw.norms, lw.finite_rows, t.dead_kernel_norm)


def check_dead_kernels(lw: LayerWeights, t: Thresholds) -> list[Finding]:
    """Conv filters / Dense units whose incoming weights are (near) zero: they ignore their input.

    "Near zero" is relative to the layer's median filter norm, so the check does
    not depend on the layer's scale. A Dense unit is reported when its output is
    constant (zero weights); for ReLU units with bias <= 0 that constant is 0.
    """
    if lw.norms is None or lw.norms.size < 2:
        return []
    dead, ref, limit = _dead_rows(lw, t)
    out = []
    for f in dead:
        if lw.is_dense:
            b = lw.bias_values
            bf = float(b[f]) if b is not None and f < b.size else 0.0
            if lw.activation in RELU_LIKE and bf <= 0:
                consequence = "its ReLU output is 0 for every input"
            else:
                consequence = f"its output is the constant {lw.activation or 'linear'}({num(bf)})"
            out.append(
                finding(
                    "dead_unit",
                    lw.path,
                    f,
                    lw.norms[f],
                    limit,
                    f"unit {f} of {lw.path} has all-zero incoming weights (norm {num(lw.norms[f])}), so "
                    f"{consequence}; prune it or re-initialise it and retrain.",
                )
            )
        else:
            out.append(
                finding(
                    "dead_filter",
                    lw.path,
                    f,
                    lw.norms[f],
                    limit,
                    f"filter {f} of {lw.path} has a (near) zero "
                    f"kernel (norm {num(lw.norms[f])}, layer median "
                    f"{num(ref)}): it ignores its input; prune it or re-initialise it and retrain.",
                )
            )
    return out


def untrained_verdict(lw: LayerWeights, t: Thresholds) -> bool | None:
    """Whether the layer looks freshly initialised (True), trained (False), or cannot be judged (None).

    The one test behind both the ``untrained_layer`` finding and the model's
    ``weights_state`` (see :func:`check_untrained` for the reasoning).
    """
    if lw.ks is None:
        return None
    if lw.outside_init:
        return False  # a weight outside a bounded initialiser's interval has moved
    bounded = lw.outside_init is not None  # every weight inside the initialiser's interval
    if lw.kernel_size < (MIN_BOUNDED_WEIGHTS if bounded else t.untrained_min_weights):
        return None
    d, p = lw.ks
    if not np.isfinite(d):
        return None
    if p <= t.untrained_p:
        return False
    if not bounded and d >= t.untrained_ks:
        return False
    s1, s0 = lw.sv
    if s1 is not None and s0 and s1 / s0 >= t.untrained_sv_ratio and s1 - s0 > 4 * lw.sv_spread:
        return False  # same histogram, but training gave the kernel a dominant direction
    return True


def weights_state(weights: dict[str, LayerWeights], t: Thresholds) -> dict:
    """``trained``, ``fresh`` or ``partly fresh``, measured layer by layer (``unknown`` when no layer can be
    judged): what a title may say about weights that code set, instead of assuming them fresh."""
    verdicts = {path: untrained_verdict(lw, t) for path, lw in weights.items()}
    judged = {p: v for p, v in verdicts.items() if v is not None}
    fresh = sorted(p for p, v in judged.items() if v)
    if not judged:
        state = "unknown"
    elif not fresh:
        state = "trained"
    elif len(fresh) == len(judged):
        state = "fresh"
    else:
        state = "partly fresh"
    return {"state": state, "layers_judged": len(judged), "layers_fresh": len(fresh), "fresh": fresh[:50]}


def check_untrained(lw: LayerWeights, t: Thresholds) -> list[Finding]:
    """A layer whose weight distribution is indistinguishable from a fresh initialisation.

    Training moves weights away from the initialiser's distribution (it widens
    and reshapes it); when the KS test cannot tell the trained kernel from a
    fresh draw of the same initialiser (small statistic, large p-value), and
    the kernel has no dominant direction a fresh one lacks (largest singular
    value within ``untrained_sv_ratio``), the layer looks as if it had never
    been trained: frozen by mistake, never reached by gradients, or its weights
    were not loaded. A kernel with a single weight outside the support of a
    bounded initialiser (Glorot and He uniform, truncated normal) has moved,
    whatever its histogram says: a layer half of whose inputs are dead ReLUs
    keeps those rows at their initial values and mixes the KS statistic down,
    but its live rows left the initialiser's interval. When every weight is
    inside that interval, the KS p-value alone decides, down to
    ``MIN_BOUNDED_WEIGHTS`` weights; for unbounded initialisers the statistic
    must also be below ``untrained_ks`` and the kernel hold at least
    ``untrained_min_weights`` weights.
    """
    if untrained_verdict(lw, t) is not True:
        return []
    d, p = lw.ks
    return [
        finding(
            "untrained_layer",
            lw.path,
            None,
            d,
            t.untrained_ks,
            f"{lw.path} looks untrained: its weights are distributed like a fresh initialisation "
            f"(KS statistic {num(d)}, p = {num(p)}); check that it is trainable, that gradients "
            "reach it and that its weights were loaded.",
        )
    ]


def check_scale(lw: LayerWeights, t: Thresholds) -> list[Finding]:
    """Weight std far above (exploding) or below (vanishing) the initialiser's."""
    ratio = lw.std_ratio
    if ratio is None or not np.isfinite(ratio) or (lw.stats or {}).get("count", 0) < 2:
        return []
    s, s0 = lw.stats["std"], lw.baseline["std"]
    if ratio > t.scale_ratio:
        return [
            finding(
                "exploding_scale",
                lw.path,
                None,
                ratio,
                t.scale_ratio,
                f"{lw.path} weights have {num(ratio)}x the std of its initialiser ({num(s)} vs "
                f"{num(s0)}): the scale is exploding; add weight decay or normalisation, or lower "
                "the learning rate.",
            )
        ]
    mean = lw.stats.get("mean") or 0.0
    rms = float(np.hypot(s, mean)) if s0 else 0.0
    if ratio < 1.0 / t.scale_ratio and s0 and rms / s0 > t.scale_ratio:
        # Weights all (nearly) equal and huge (3e38 everywhere): no spread, but far from any initialiser.
        return [
            finding(
                "exploding_scale",
                lw.path,
                None,
                rms / s0,
                t.scale_ratio,
                f"{lw.path} weights are all about {num(mean)}, {num(rms / s0)}x the std of its initialiser "
                f"({num(s0)}), with almost no spread: the scale "
                "is exploding; add weight decay or normalisation, "
                "or lower the learning rate.",
            )
        ]
    if ratio < 1.0 / t.scale_ratio:
        return [
            finding(
                "vanishing_scale",
                lw.path,
                None,
                ratio,
                1.0 / t.scale_ratio,
                f"{lw.path} weights have only {num(ratio)}x the std of its initialiser ({num(s)} vs "
                f"{num(s0)}): the scale is vanishing; check the weight decay and the initialiser.",
            )
        ]
    return []


def chance_duplicates(n: int, dim: int, cosine: float) -> float:
    """Expected pairs among ``n`` random directions in ``dim`` dimensions with cosine above ``cosine``.

    For a uniform direction, P(cos > c) = I_{1-c^2}((dim-1)/2, 1/2) / 2 (the regularised incomplete beta).
    """
    from scipy.special import betainc

    if dim < 2 or n < 2:
        return float("inf")
    c = min(max(float(cosine), 0.0), 1.0)
    return n * (n - 1) / 2 * float(betainc((dim - 1) / 2, 0.5, 1 - c * c)) / 2


def check_duplicates(lw: LayerWeights, t: Thresholds) -> list[Finding]:
    """Near-duplicate filters: two kernels pointing the same way (cosine > threshold).

    Convolutions only (depthwise filters see different channels, so equal
    kernels there are not redundant). One finding per duplicated filter, naming
    the earlier filter it repeats. Short filters are not judged: a 1x1 conv on
    4 channels (EfficientNet's squeeze-and-excitation expand) has 4 weights a
    filter, and among 96 random 4-vectors about 8 pairs exceed a cosine of 0.98
    by chance -- a fresh EfficientNetB0 got 13 such warnings. A layer is judged
    only when fewer than 0.01 pairs would pass the threshold by chance.
    """
    if (
        lw.duplicate_cos is None
        or chance_duplicates(len(lw.duplicate_cos), lw.filter_dim, t.duplicate_cosine) > 0.01
    ):
        return []
    out = []
    for b in np.flatnonzero(lw.duplicate_cos > t.duplicate_cosine):
        a, c = int(lw.duplicate_of[b]), float(lw.duplicate_cos[b])
        out.append(
            finding(
                "duplicate_filters",
                lw.path,
                int(b),
                c,
                t.duplicate_cosine,
                f"filters {a} and {int(b)} of {lw.path} are near-duplicates (cosine similarity "
                f"{c:.4f}): one is redundant; prune it or add a diversity regulariser.",
            )
        )
    return out


def check_batchnorm(lw: LayerWeights, t: Thresholds) -> list[Finding]:
    """BatchNormalization channels switched off (gamma ~ 0) or fed a constant (variance ~ 0)."""
    out = []
    if lw.gamma is not None:
        g = lw.gamma.astype(np.float64).ravel()
        for c in np.flatnonzero(np.isfinite(g) & (np.abs(g) <= t.bn_gamma)):
            out.append(
                finding(
                    "bn_gamma",
                    lw.path,
                    c,
                    abs(g[c]),
                    t.bn_gamma,
                    f"channel {c} of {lw.path} has gamma {num(g[c])}: the channel outputs a constant "
                    "and carries no information; prune it or check the weight decay on gamma.",
                )
            )
    if lw.moving_variance is not None:
        v = lw.moving_variance.astype(np.float64).ravel()
        for c in np.flatnonzero(np.isfinite(v) & (v <= t.bn_variance)):
            out.append(
                finding(
                    "bn_variance",
                    lw.path,
                    c,
                    v[c],
                    t.bn_variance,
                    f"channel {c} of {lw.path} has moving variance {num(v[c])}: its input was constant "
                    "on the training data (a dead filter or a unit "
                    "that never fires upstream); find that unit and "
                    "prune or re-initialise it.",
                )
            )
    return out


def check_gains(lw: LayerWeights, t: Thresholds) -> list[Finding]:
    """A LayerScale or LayerNorm whose every gain still equals its initial constant: its block never trained.

    ConvNeXt's LayerScale starts at 1e-6, so an untrained block's residual
    branch adds almost nothing and the block is an identity; a trained one
    moves every factor. Exact equality is the test: any training step moves
    a gain that gets a gradient.
    """
    if not lw.at_initial or lw.gains is None or lw.gains.size < 2:
        return []
    what = "LayerScale factors" if "layerscale" in lw.class_name.lower() else "gains (gamma)"
    return [
        finding(
            "untrained_layer",
            lw.path,
            None,
            lw.gains_init,
            None,
            f"all {lw.gains.size} {what} of {lw.path} are still "
            f"exactly {num(lw.gains_init)}, their initial value: "
            "the block they scale never trained (a gradient step moves every one of them).",
        )
    ]


def check_alpha(lw: LayerWeights, t: Thresholds) -> list[Finding]:
    """A spectral alpha outside [alpha_over_trained, alpha_under_trained] (WeightWatcher's 2 and 6).

    Heavy-tailed self-regularisation (Martin & Mahoney): training builds
    correlations that make the tail of the eigenvalue spectrum of WᵀW a power
    law; its exponent alpha falls from ~10+ at initialisation towards 2 as the
    layer learns. Below 2 the layer is very heavy-tailed (over-trained,
    possibly over-fit or memorising); above 6 it is close to random (under-
    trained: it learned little, or more data or epochs would help). A heuristic
    read from the weights alone, hence info: it points at layers to look at,
    it does not say they are wrong. Layers with too few eigenvalues for a fit
    (``alpha`` None) are not judged.
    """
    sp = lw.spectral
    if sp is None or sp.alpha is None:
        return []
    what = (
        f"the power law fitted to the {sp.num_tail} largest of the {sp.num_evals} eigenvalues of "
        f"{lw.path}'s WᵀW (xmin {num(sp.xmin)})"
    )
    if sp.alpha < t.alpha_over_trained:
        return [
            finding(
                "over_trained",
                lw.path,
                None,
                sp.alpha,
                t.alpha_over_trained,
                f"{lw.path} may be over-trained: {what} has alpha "
                f"{num(sp.alpha)} < {num(t.alpha_over_trained)} "
                "(WeightWatcher's heuristic); check it for over-fitting on held-out data (early stopping, "
                "more regularisation).",
            )
        ]
    if sp.alpha > t.alpha_under_trained:
        return [
            finding(
                "under_trained",
                lw.path,
                None,
                sp.alpha,
                t.alpha_under_trained,
                f"{lw.path} may be under-trained: {what} has alpha "
                f"{num(sp.alpha)} > {num(t.alpha_under_trained)} "
                "(WeightWatcher's heuristic: close to random); train longer or on more data, or check that "
                "it learns.",
            )
        ]
    return []


CHECKS = (
    check_nonfinite,
    check_dead_kernels,
    check_duplicates,
    check_batchnorm,
    check_untrained,
    check_scale,
    check_gains,
    check_alpha,
)


def weight_findings(weights: dict[str, LayerWeights], t: Thresholds) -> list[Finding]:
    """Every weight-based check over every layer's facts."""
    out: list[Finding] = []
    for lw in weights.values():
        for check in CHECKS:
            out += check(lw, t)
    return out


def dead_units(weights: dict[str, LayerWeights], t: Thresholds) -> dict[str, set[int]]:
    """Filters/units dead by their weights, per layer: the activation checks do not report them twice."""
    out: dict[str, set[int]] = {}
    for lw in weights.values():
        if lw.norms is not None and lw.norms.size >= 2:
            out[lw.path] = {int(f) for f in _dead_rows(lw, t)[0]}
    return out
