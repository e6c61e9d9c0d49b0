"""Audit findings: what is wrong with the model, as checks a reviewer (or CI) can act on.

Each check is a small pure function over one layer's weights (or activations,
or another section's JSON) returning a list of *findings*::

    {kind, severity, layer, filter, value, threshold, message, anchor}

``filter`` is the output filter / unit / channel index where the finding is
about one (else ``None``); ``value`` is the measured number that crossed
``threshold``; ``message`` is one sentence saying what is wrong and what to do;
``anchor`` is the id of the report figure holding the evidence (see the anchor
convention: ``<section>-<slug of layer path>``).

The checks read the weights straight from the model (and the freshly
initialised baseline), not from other sections' JSON, so they work whichever
sections ran. Activation-based checks take the activations as arrays; the
section module computes them once for every layer that needs them.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import keras
import numpy as np

from reportgen import graph
from reportgen.config import KINDS, SEVERITIES, Thresholds

Finding = dict

# The section whose figure shows the evidence of each kind (the anchor's prefix).
ANCHOR_SECTION: dict[str, str] = {
    "nonfinite_weights": "weights",
    "dead_filter": "kernels",
    "dead_unit": "weights",
    "inactive_unit": "features",
    "inactive_layer": "features",
    "untrained_layer": "weights",
    "duplicate_filters": "kernels",
    "exploding_scale": "weights",
    "vanishing_scale": "weights",
    "saturation": "features",
    "bn_gamma": "findings-bn",
    "bn_variance": "findings-bn",
    "gradcam_sanity": "findings",
    "pattern_not_rising": "patterns",
}

# Samples per side for the KS test: the statistic's sampling error is ~1/sqrt(n),
# far below the default threshold, and VGG16's 100M-weight fc1 stays affordable.
KS_SAMPLES = 50_000


def _slug(text: Any) -> str:
    from reportgen.render import slug

    return slug(text)


def finding(kind: str, layer: str | None, filter: int | None, value: Any, threshold: Any,
            message: str, anchor: str | None = None) -> Finding:
    """One finding with its default severity and the default anchor of its kind."""
    if anchor is None:
        section = ANCHOR_SECTION[kind]
        anchor = "findings-sanity" if kind == "gradcam_sanity" else f"{section}-{_slug(layer)}"
    return {
        "kind": kind,
        "severity": KINDS[kind],
        "layer": layer,
        "filter": None if filter is None else int(filter),
        "value": None if value is None else float(value),
        "threshold": None if threshold is None else float(threshold),
        "message": message,
        "anchor": anchor,
    }


def _num(v: float) -> str:
    """A number in a message: short, NaN/Inf spelled out."""
    if not np.isfinite(v):
        return "NaN" if np.isnan(v) else ("Inf" if v > 0 else "-Inf")
    if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e4):
        return f"{v:.2e}"
    return f"{v:.3g}"


def _array(var: Any) -> np.ndarray:
    return np.asarray(var.numpy() if hasattr(var, "numpy") else var)


# --- layer anatomy ------------------------------------------------------------------

def filter_matrix(layer: Any) -> np.ndarray | None:
    """Each output filter's (or Dense unit's) incoming weights, one row each: (filters, fan_in).

    Conv kernels are ``(..., in, out)``; transposed convs store ``(..., out, in)``;
    a depthwise conv's filters are its ``in * multiplier`` spatial kernels; a
    separable conv's output filters are the columns of its pointwise kernel.
    """
    if isinstance(layer, (keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D)):
        k = _array(layer.kernel)
        return k.reshape(-1, k.shape[-2] * k.shape[-1]).T
    if isinstance(layer, (keras.layers.SeparableConv1D, keras.layers.SeparableConv2D)):
        k = _array(layer.pointwise_kernel)
        return k.reshape(-1, k.shape[-1]).T
    kernel = getattr(layer, "kernel", None)
    if kernel is None or not isinstance(layer, graph.KERNEL_TYPES):
        return None
    k = _array(kernel)
    if isinstance(layer, (keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose,
                          keras.layers.Conv3DTranspose)):
        k = np.moveaxis(k, -2, -1)
    return k.reshape(-1, k.shape[-1]).T


def activation_name(layer: Any) -> str | None:
    """The elementwise activation a layer applies to its output (``relu``, ``tanh``...)."""
    if isinstance(layer, keras.layers.ReLU):
        return "relu"
    fn = getattr(layer, "activation", None)
    if fn is None:
        return None
    if isinstance(fn, str):
        return fn
    return getattr(fn, "__name__", None)


RELU_LIKE = ("relu", "relu6")
SATURATING = ("sigmoid", "tanh")


# --- weight checks ------------------------------------------------------------------

def check_nonfinite(path: str, layer: Any) -> list[Finding]:
    """NaN or Inf in any weight (kernel, bias, BN statistics): the model's outputs are garbage."""
    out = []
    for var in layer.weights:
        w = _array(var).astype(np.float64, copy=False)
        bad = ~np.isfinite(w)
        if not bad.any():
            continue
        name = var.path.rsplit("/", 1)[-1] if hasattr(var, "path") else var.name
        nan, inf = int(np.isnan(w).sum()), int(np.isinf(w).sum())
        per_filter = bad.reshape(-1, w.shape[-1]).any(axis=0) if w.ndim else bad.reshape(1)
        filters = np.flatnonzero(per_filter)
        what = " and ".join(p for p in (f"{nan} NaN" if nan else "", f"{inf} Inf" if inf else "") if p)
        where = (f"filter {filters[0]}" if len(filters) == 1
                 else f"{len(filters)} filters (first: {filters[0]})")
        out.append(finding(
            "nonfinite_weights", path, int(filters[0]) if w.ndim else None, nan + inf, 0,
            f"{path} {name} holds {what} value(s) in {where}: every output depending on it is "
            "invalid; retrain from a checkpoint before the divergence (lower the learning rate, "
            "clip gradients)."))
    return out


def check_dead_kernels(path: str, layer: Any, t: Thresholds) -> list[Finding]:
    """Conv filters / Dense units whose incoming weights are (near) zero: they ignore their input.

    "Near zero" is relative to the layer's median filter norm, so the check does
    not depend on the layer's scale. A Dense unit is reported when its output is
    constant (zero weights); for ReLU units with bias <= 0 that constant is 0.
    """
    w = filter_matrix(layer)
    if w is None or w.shape[0] < 2:
        return []
    w = w.astype(np.float64)
    norms = np.linalg.norm(np.where(np.isfinite(w), w, 0.0), axis=1)
    finite_rows = np.isfinite(w).all(axis=1)
    ref = float(np.median(norms[finite_rows])) if finite_rows.any() else 0.0
    if ref == 0.0 and finite_rows.any():
        ref = float(norms[finite_rows].max())
    limit = t.dead_kernel_norm * ref
    dead = np.flatnonzero(finite_rows & (norms <= limit))
    is_dense = isinstance(layer, keras.layers.Dense)
    bias = getattr(layer, "bias", None)
    b = _array(bias).astype(np.float64) if bias is not None and getattr(layer, "use_bias", True) else None
    act = activation_name(layer)
    out = []
    for f in dead:
        if is_dense:
            bf = float(b[f]) if b is not None and f < b.size else 0.0
            if act in RELU_LIKE and bf <= 0:
                consequence = "its ReLU output is 0 for every input"
            else:
                consequence = f"its output is the constant {act or 'linear'}({_num(bf)})"
            out.append(finding(
                "dead_unit", path, f, norms[f], limit,
                f"unit {f} of {path} has all-zero incoming weights (norm {_num(norms[f])}), so "
                f"{consequence}; prune it or re-initialise it and retrain."))
        else:
            out.append(finding(
                "dead_filter", path, f, norms[f], limit,
                f"filter {f} of {path} has a (near) zero kernel (norm {_num(norms[f])}, layer median "
                f"{_num(ref)}): it ignores its input; prune it or re-initialise it and retrain."))
    return out


def ks_test(trained: np.ndarray, baseline: np.ndarray,
            rng: np.random.Generator | None = None) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov test between two weight samples: (statistic, p-value).

    Non-finite values are left out; large layers are subsampled to
    ``KS_SAMPLES`` values per side (seeded), which keeps the p-value valid.
    """
    from scipy.stats import ks_2samp

    rng = rng if rng is not None else np.random.default_rng(0)
    a = np.asarray(trained, dtype=np.float64).ravel()
    b = np.asarray(baseline, dtype=np.float64).ravel()
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if a.size == 0 or b.size == 0:
        return float("nan"), float("nan")
    if a.size > KS_SAMPLES:
        a = rng.choice(a, KS_SAMPLES, replace=False)
    if b.size > KS_SAMPLES:
        b = rng.choice(b, KS_SAMPLES, replace=False)
    res = ks_2samp(a, b)
    return float(res.statistic), float(res.pvalue)


def top_singular_value(matrix: np.ndarray | None) -> float | None:
    """Largest singular value of a (filters, fan_in) matrix; None when not a usable 2-D matrix."""
    if matrix is None or matrix.ndim != 2 or min(matrix.shape) < 2 or not np.isfinite(matrix).all():
        return None
    if matrix.size > 4_000_000:
        # VGG16's fc1 (4096 x 25088): power iteration, a few dozen matrix-vector products.
        m = matrix.astype(np.float32, copy=False)
        v = np.random.default_rng(0).standard_normal(m.shape[1]).astype(np.float32)
        sigma = 0.0
        for _ in range(40):
            u = m @ v
            v = m.T @ u
            norm = float(np.linalg.norm(v))
            if norm == 0.0:
                return 0.0
            v /= norm
            sigma = float(np.sqrt(norm))
        return sigma
    return float(np.linalg.svd(matrix.astype(np.float64), compute_uv=False)[0])


def check_untrained(path: str, trained: np.ndarray, baseline: np.ndarray, t: Thresholds,
                    rng: np.random.Generator | None = None, sv_ratio: float | None = None) -> list[Finding]:
    """A layer whose weight distribution is indistinguishable from a fresh initialisation.

    Training moves weights away from the initialiser's distribution (it widens
    and reshapes it); when the KS test cannot tell the trained kernel from a
    fresh draw of the same initialiser (small statistic, large p-value), the
    layer looks as if it had never been trained: frozen by mistake, never
    reached by gradients, or its weights were not loaded.
    """
    n = int(np.isfinite(np.asarray(trained, dtype=np.float64)).sum())
    if n < t.untrained_min_weights:
        return []
    d, p = ks_test(trained, baseline, rng)
    if not np.isfinite(d) or d >= t.untrained_ks or p <= t.untrained_p:
        return []
    if sv_ratio is not None and sv_ratio >= t.untrained_sv_ratio:
        return []  # same histogram, but training gave the kernel a dominant direction
    return [finding(
        "untrained_layer", path, None, d, t.untrained_ks,
        f"{path} looks untrained: its weights are distributed like a fresh initialisation "
        f"(KS statistic {_num(d)}, p = {_num(p)}); check that it is trainable, that gradients "
        "reach it and that its weights were loaded.")]


def check_scale(path: str, trained: np.ndarray, baseline: np.ndarray, t: Thresholds) -> list[Finding]:
    """Weight std far above (exploding) or below (vanishing) the initialiser's."""
    a = np.asarray(trained, dtype=np.float64).ravel()
    b = np.asarray(baseline, dtype=np.float64).ravel()
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if a.size < 2 or b.size < 2:
        return []
    s, s0 = float(a.std()), float(b.std())
    if s0 <= 0:
        return []
    ratio = s / s0
    if ratio > t.scale_ratio:
        return [finding(
            "exploding_scale", path, None, ratio, t.scale_ratio,
            f"{path} weights have {_num(ratio)}x the std of its initialiser ({_num(s)} vs "
            f"{_num(s0)}): the scale is exploding; add weight decay or normalisation, or lower "
            "the learning rate.")]
    if ratio < 1.0 / t.scale_ratio:
        return [finding(
            "vanishing_scale", path, None, ratio, 1.0 / t.scale_ratio,
            f"{path} weights have only {_num(ratio)}x the std of its initialiser ({_num(s)} vs "
            f"{_num(s0)}): the scale is vanishing; check the weight decay and the initialiser.")]
    return []


def check_duplicates(path: str, layer: Any, t: Thresholds) -> list[Finding]:
    """Near-duplicate filters: two kernels pointing the same way (cosine > threshold).

    Convolutions only (depthwise filters see different channels, so equal
    kernels there are not redundant). One finding per duplicated filter, naming
    the earlier filter it repeats.
    """
    if not graph.is_conv(layer) or isinstance(
            layer, (keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D)):
        return []
    w = filter_matrix(layer)
    if w is None or w.shape[0] < 2 or w.shape[1] < 2:
        return []
    w = w.astype(np.float64)
    ok = np.isfinite(w).all(axis=1)
    norms = np.linalg.norm(np.where(np.isfinite(w), w, 0.0), axis=1)
    ref = float(np.median(norms[ok])) if ok.any() else 0.0
    ok &= norms > max(1e-12, t.dead_kernel_norm * ref)  # dead filters have no direction
    idx = np.flatnonzero(ok)
    if idx.size < 2:
        return []
    unit = w[idx] / norms[idx, None]
    cos = unit @ unit.T
    np.fill_diagonal(cos, -np.inf)
    out = []
    for col in range(1, idx.size):
        earlier = cos[col, :col]
        i = int(np.argmax(earlier))
        if earlier[i] > t.duplicate_cosine:
            a, b = int(idx[i]), int(idx[col])
            out.append(finding(
                "duplicate_filters", path, b, earlier[i], t.duplicate_cosine,
                f"filters {a} and {b} of {path} are near-duplicates (cosine similarity "
                f"{earlier[i]:.4f}): one is redundant; prune it or add a diversity regulariser."))
    return out


def check_batchnorm(path: str, layer: Any, t: Thresholds) -> list[Finding]:
    """BatchNormalization channels switched off (gamma ~ 0) or fed a constant (variance ~ 0)."""
    if not isinstance(layer, keras.layers.BatchNormalization):
        return []
    out = []
    gamma = getattr(layer, "gamma", None)
    if gamma is not None:
        g = _array(gamma).astype(np.float64).ravel()
        for c in np.flatnonzero(np.isfinite(g) & (np.abs(g) <= t.bn_gamma)):
            out.append(finding(
                "bn_gamma", path, c, abs(g[c]), t.bn_gamma,
                f"channel {c} of {path} has gamma {_num(g[c])}: the channel outputs a constant "
                "and carries no information; prune it or check the weight decay on gamma."))
    var = getattr(layer, "moving_variance", None)
    if var is not None:
        v = _array(var).astype(np.float64).ravel()
        for c in np.flatnonzero(np.isfinite(v) & (v <= t.bn_variance)):
            out.append(finding(
                "bn_variance", path, c, v[c], t.bn_variance,
                f"channel {c} of {path} has moving variance {_num(v[c])}: its input is constant "
                "on the training data (a dead filter upstream); prune that filter."))
    return out


# --- activation checks --------------------------------------------------------------

def channel_peaks(activations: np.ndarray) -> np.ndarray:
    """Largest absolute activation per channel (channels last) over images and positions."""
    a = np.abs(np.asarray(activations, dtype=np.float64).reshape(-1, np.shape(activations)[-1]))
    # NaN activations (from NaN weights, reported on their own) must not look silent:
    # a channel that is NaN everywhere gets a NaN peak, which no threshold calls inactive.
    a = np.where(np.isnan(a), -np.inf, a)
    peak = a.max(axis=0)
    return np.where(np.isneginf(peak), np.nan, peak)


def saturated_count(outputs: np.ndarray, function: str, margin: float) -> tuple[int, int]:
    """How many sigmoid/tanh outputs lie within ``margin`` of the function's limits, of how many."""
    y = np.asarray(outputs, dtype=np.float64).ravel()
    y = y[np.isfinite(y)]
    if function == "sigmoid":
        sat = (y <= margin) | (y >= 1.0 - margin)
    else:
        sat = np.abs(y) >= 1.0 - margin
    return int(sat.sum()), int(y.size)


def check_dead_activations(path: str, peaks: np.ndarray, n_images: int, t: Thresholds,
                           skip: Iterable[int] = ()) -> list[Finding]:
    """Units whose output is zero on every input image and position (a ReLU silent on the data).

    ``peaks`` is each channel's largest absolute activation over all images
    and positions (:func:`channel_peaks`). A few silent units are normal in a
    trained ReLU network and a few images are weak evidence, so each unit is
    ``inactive_unit`` (info); when more than ``inactive_fraction`` of a layer is
    silent on at least ``inactive_min_images`` images, one ``inactive_layer``
    finding (warning) says so.
    """
    peaks = np.asarray(peaks, dtype=np.float64).ravel()
    if n_images <= 0 or peaks.size == 0:
        return []
    skip = set(int(s) for s in skip)
    silent = np.flatnonzero(peaks <= t.dead_activation)
    out = []
    for c in silent:
        if int(c) in skip:
            continue
        out.append(finding(
            "inactive_unit", path, c, peaks[c], t.dead_activation,
            f"unit {c} of {path} outputs 0 on every one of the {n_images} input image(s): a dead "
            "ReLU if it stays silent on more data; re-initialise it, lower the learning rate or "
            "use a leaky activation."))
    fraction = silent.size / peaks.size
    if fraction > t.inactive_fraction and n_images >= t.inactive_min_images:
        out.append(finding(
            "inactive_layer", path, None, fraction, t.inactive_fraction,
            f"{100 * fraction:.0f}% of the units of {path} ({silent.size} of {peaks.size}) output 0 "
            f"on all {n_images} input images: the layer has largely died; lower the learning rate, "
            "use a leaky activation or normalise its input."))
    return out


def check_saturation(path: str, fraction: float, function: str, t: Thresholds) -> list[Finding]:
    """Most sigmoid/tanh outputs at the function's limits, where gradients vanish.

    ``fraction`` is the saturated share of the layer's outputs over the input
    images (:func:`saturated_count`).
    """
    if not np.isfinite(fraction) or fraction <= t.saturation_fraction:
        return []
    return [finding(
        "saturation", path, None, fraction, t.saturation_fraction,
        f"{100 * fraction:.0f}% of the {function} outputs of {path} are saturated (within "
        f"{t.saturation_margin:g} of the limits), where its gradient vanishes; normalise its input "
        "or lower the weight scale.")]


# --- other sections' results --------------------------------------------------------

def check_patterns(patterns: dict, t: Thresholds) -> list[Finding]:
    """Filters whose activation never rose during the pattern gradient ascent.

    Reads report.json's ``patterns`` block: ``{layer: {filters, activation_start,
    activation_end, dead}}`` where ``filters`` lists the filter indices and the
    activation lists are aligned with it.
    """
    out = []
    for path, entry in (patterns or {}).items():
        if not isinstance(entry, dict):
            continue
        filters = entry.get("filters")
        start, end = entry.get("activation_start"), entry.get("activation_end")
        flagged: dict[int, float] = {}
        change: dict[int, float] = {}
        if isinstance(filters, (list, tuple)) and isinstance(start, (list, tuple)) \
                and isinstance(end, (list, tuple)) and len(start) == len(end) == len(filters):
            for f, s, e in zip(filters, start, end):
                change[int(f)] = float("nan") if s is None or e is None else float(e - s)
                if s is None or e is None or not np.isfinite(e - s) or e - s <= t.pattern_min_rise:
                    flagged[int(f)] = change[int(f)]
        for f in entry.get("dead") or []:
            flagged.setdefault(int(f), change.get(int(f), float("nan")))
        for f in sorted(flagged):
            rise = flagged[f]
            out.append(finding(
                "pattern_not_rising", path, f, rise if np.isfinite(rise) else None, t.pattern_min_rise,
                f"the activation of filter {f} of {path} never rose during the pattern ascent "
                f"(change {_num(rise)}): its pattern shows nothing; the filter may be dead or "
                "need more --pattern-steps."))
    return out


# --- bookkeeping --------------------------------------------------------------------

SEVERITY_RANK = {s: i for i, s in enumerate(SEVERITIES)}


def apply_severity(findings: Sequence[Finding], t: Thresholds) -> list[Finding]:
    """Set each finding's severity from the configuration; drop kinds switched ``off``."""
    out = []
    for f in findings:
        level = t.severity.get(f["kind"], f["severity"])
        if level == "off":
            continue
        out.append({**f, "severity": level})
    return out


def cap(findings: Sequence[Finding], per_layer: int) -> list[Finding]:
    """At most ``per_layer`` findings of one kind in one layer; the rest summed up in one."""
    groups: dict[tuple, list[Finding]] = {}
    for f in findings:
        groups.setdefault((f["kind"], f["layer"]), []).append(f)
    out = []
    for (kind, layer), group in groups.items():
        out.extend(group[:per_layer])
        rest = group[per_layer:]
        if rest:
            more = ", ".join(str(f["filter"]) for f in rest[:20]) + (", ..." if len(rest) > 20 else "")
            out.append({**rest[0], "filter": None, "value": float(len(rest)), "threshold": None,
                        "filters": [f["filter"] for f in rest],
                        "message": f"{len(rest)} more {kind.replace('_', ' ')} finding(s) in {layer} "
                                   f"(filters {more}); report.json lists them all under 'filters'."})
    return out


def sort_findings(findings: Sequence[Finding], layer_order: Sequence[str] = ()) -> list[Finding]:
    """Most severe first, then in model order, then by filter."""
    pos = {p: i for i, p in enumerate(layer_order)}
    return sorted(findings, key=lambda f: (-SEVERITY_RANK[f["severity"]],
                                           pos.get(f["layer"], len(pos)),
                                           f["filter"] if f["filter"] is not None else 1 << 30))


def summarise(findings: Iterable[Finding]) -> dict[str, int]:
    """Counts by severity, most severe first: ``{error: n, warning: n, info: n}``."""
    counts = {s: 0 for s in reversed(SEVERITIES)}
    for f in findings:
        counts[f["severity"]] += 1
    return counts


def exceeds(findings: Iterable[Finding], level: str | None) -> bool:
    """True when a finding at or above ``level`` (``warning`` or ``error``) exists: ``--fail-on``."""
    if level is None:
        return False
    if level not in SEVERITY_RANK:
        raise ValueError(f"unknown severity {level!r}")
    need = SEVERITY_RANK[level]
    return any(SEVERITY_RANK[f["severity"]] >= need for f in findings)


# --- the whole model ----------------------------------------------------------------

def weight_findings(model: keras.Model, baseline: keras.Model | None, t: Thresholds,
                    rng: np.random.Generator | None = None) -> list[Finding]:
    """Every check that needs only the weights (and the fresh baseline for KS and scale)."""
    from reportgen.analyses.weights import kernel_values

    rng = rng if rng is not None else np.random.default_rng(0)
    base = {r.path: r.layer for r in graph.walk(baseline)} if baseline is not None else {}
    out: list[Finding] = []
    for ref in graph.walk(model):
        if ref.is_model:
            continue
        layer = ref.layer
        bad = check_nonfinite(ref.path, layer)
        out += bad
        out += check_dead_kernels(ref.path, layer, t)
        out += check_duplicates(ref.path, layer, t)
        out += check_batchnorm(ref.path, layer, t)
        if graph.kernel_variables(layer) and ref.path in base:
            w, w0 = kernel_values(layer), kernel_values(base[ref.path])
            if w.size == w0.size:
                flagged = check_untrained(ref.path, w, w0, t, rng)
                if flagged:  # the spectrum only for layers the KS test cannot tell apart
                    s1 = top_singular_value(filter_matrix(layer))
                    s0 = top_singular_value(filter_matrix(base[ref.path]))
                    if s1 is not None and s0 and s1 / s0 >= t.untrained_sv_ratio:
                        flagged = []
                out += flagged
                out += check_scale(ref.path, w, w0, t)
    return out


def activation_layers(model: keras.Model) -> list[graph.LayerRef]:
    """Layers whose outputs the activation checks read: ReLU-family and sigmoid/tanh outputs.

    The model's own output layer is left out of the saturation check (a
    confident sigmoid classifier saturates by design).
    """
    refs = []
    for ref in graph.walk(model):
        if ref.is_model or ref.output_shape is None or len(ref.output_shape) < 2:
            continue
        act = activation_name(ref.layer)
        if act in RELU_LIKE or act in SATURATING:
            refs.append(ref)
    return refs


def activation_findings(model: keras.Model, inputs: np.ndarray, t: Thresholds,
                        already: Iterable[Finding] = (), batch: int = 4) -> list[Finding]:
    """Dead-on-the-data units and saturation over the input images.

    ONE multi-output sub-model gives every checked layer's output; images go
    through in small batches and only per-channel peaks and saturation counts
    are kept, so VGG16's 224x224 feature maps never pile up in memory.
    """
    refs = activation_layers(model)
    x = np.asarray(inputs, dtype=np.float32)
    if not refs or x.shape[0] == 0:
        return []
    sub = graph.submodel(model, [r.path for r in refs])
    peaks: list[np.ndarray | None] = [None] * len(refs)
    sat = np.zeros((len(refs), 2), dtype=np.int64)
    for start in range(0, x.shape[0], batch):
        outs = sub([x[start:start + batch]], training=False)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        for i, (ref, o) in enumerate(zip(refs, outs)):
            o = np.asarray(o)
            p = channel_peaks(o)
            peaks[i] = p if peaks[i] is None else np.maximum(peaks[i], p)
            act = activation_name(ref.layer)
            if act in SATURATING:
                sat[i] += saturated_count(o, act, t.saturation_margin)
    known = {(f["layer"], f["filter"]) for f in already if f["kind"] in ("dead_filter", "dead_unit")}
    outputs = set(output_paths(model))
    out: list[Finding] = []
    for i, ref in enumerate(refs):
        act = activation_name(ref.layer)
        if act in RELU_LIKE:
            skip = [f for (layer, f) in known if layer == ref.path]
            out += check_dead_activations(ref.path, peaks[i], x.shape[0], t, skip)
        elif act in SATURATING and ref.path not in outputs and sat[i, 1]:
            out += check_saturation(ref.path, sat[i, 0] / sat[i, 1], act, t)
    return out


def output_paths(model: keras.Model) -> list[str]:
    """Paths of the layers producing the model's outputs (nested output layers included)."""
    flat = graph.flat_graph(model)
    outs = flat.outputs if isinstance(flat.outputs, (list, tuple)) else [flat.outputs]
    ids = {id(o) for o in outs}
    return [p for p, _layer, _d in flat.order if id(flat.by_path.get(p)) in ids]
