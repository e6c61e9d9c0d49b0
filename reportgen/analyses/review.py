"""The data-set review: what a reviewer signs off on, from what the data-set pass kept per image.

Pure NumPy/SciPy over small per-image arrays (probabilities N x classes, an
embedding of at most :data:`EMBED_DIMS` floats, a 64-bit perceptual hash and a
few pixel properties): per-class precision/recall/F1, calibration (ECE, Brier,
NLL, a fitted temperature), label issues by confident learning (Northcutt et
al., JAIR 2021), near-duplicates and leakage across folders, image outliers by
robust z-score and accuracy by property bins. No model, no plotting.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

EMBED_DIMS = 256  # the model embedding is projected to at most this many dimensions
ECE_BINS = 15  # Guo et al. 2017
HASH_SIDE = 32  # the perceptual hash: DCT of a 32x32 grey image, its 8x8 lowest frequencies
PROPERTIES = ("brightness", "contrast", "sharpness", "width", "height", "aspect", "colour")
Z_PROPERTIES = ("brightness", "contrast", "sharpness", "aspect", "area")  # judged for outliers
SEGMENT_PROPERTIES = ("brightness", "contrast", "sharpness", "aspect", "area", "colour")
GALLERY = 8  # images shown per gallery (label issues, outliers)
LISTED = 200  # label issues, duplicates and outliers listed one by one in report.json (all are counted)


# --- per-image measurements (called from the pass, one image at a time) ------------------------------


def grey(pixels: np.ndarray) -> np.ndarray:
    """Luminance in [0, 1], float32, of uint8 pixels H x W x 1|3 (Pillow's "L": ITU-R 601 weights), made in
    uint8 first so that a 12-megapixel photo costs 48 MB here, not the 288 MB of a float64 RGB copy."""
    from PIL import Image

    p = np.asarray(pixels)
    if p.ndim == 3 and p.shape[-1] >= 3:
        g = np.asarray(Image.fromarray(np.ascontiguousarray(p[..., :3]).astype(np.uint8)).convert("L"))
    else:
        g = p.reshape(p.shape[:2])
    return g.astype(np.float32) / np.float32(255.0)


def properties(pixels: np.ndarray, g: np.ndarray | None = None) -> np.ndarray:
    """brightness (mean luminance), contrast (its std), sharpness (variance of the 4-neighbour Laplacian),
    width, height, aspect (width / height), colour (1 when the channels differ, 0 for grey)."""
    g = grey(pixels) if g is None else g
    h, w = g.shape
    lap = np.zeros(1)
    if h > 2 and w > 2:
        lap = g[:-2, 1:-1] + g[2:, 1:-1] + g[1:-1, :-2] + g[1:-1, 2:] - 4 * g[1:-1, 1:-1]
    colour = 0.0
    if pixels.ndim == 3 and pixels.shape[-1] >= 3:
        step = max(1, int(np.sqrt(h * w / 1e6)))  # about a million pixels decide it
        q = pixels[::step, ::step, :3].astype(np.int16)
        colour = float(max(np.abs(q[..., 0] - q[..., 1]).max(), np.abs(q[..., 1] - q[..., 2]).max()) > 2)
    return np.array(
        [
            g.mean(dtype=np.float64),
            g.std(dtype=np.float64),
            lap.var(dtype=np.float64),
            w,
            h,
            w / max(h, 1),
            colour,
        ],
        dtype=np.float64,
    )


def _dct_rows(n: int = HASH_SIDE, keep: int = 8) -> np.ndarray:
    """The first ``keep`` rows of the orthonormal DCT-II matrix of size ``n`` (scipy's
    ``dct(norm="ortho")``)."""
    k, i = np.arange(keep)[:, None], np.arange(n)[None, :]
    m = np.sqrt(2.0 / n) * np.cos(np.pi * (2 * i + 1) * k / (2 * n))
    m[0] /= np.sqrt(2.0)
    return m


_DCT = _dct_rows()


def perceptual_hash(pixels: np.ndarray, g: np.ndarray | None = None) -> int:
    """The DCT perceptual hash (pHash): 64 bits, each of the 8 x 8 lowest frequencies of the 32 x 32 grey
    image above or below their median (the DC term aside). Two 8 x 32 products instead of a full 2-D DCT:
    the hash was most of the per-file cost."""
    from PIL import Image

    g = grey(pixels) if g is None else g
    small = Image.fromarray(np.rint(g * 255).astype(np.uint8)).resize(
        (HASH_SIDE, HASH_SIDE), Image.Resampling.BILINEAR
    )
    low = (_DCT @ np.asarray(small, dtype=np.float64) @ _DCT.T).ravel()
    bits = low > np.median(low[1:])
    return int(np.packbits(bits).view(">u8")[0])


def facts(pixels: np.ndarray) -> tuple[np.ndarray, int]:
    """An image's properties and perceptual hash, from one luminance image."""
    g = grey(pixels)
    return properties(pixels, g), perceptual_hash(pixels, g)


def projection(dims: int, seed: int = 0) -> np.ndarray | None:
    """The fixed random (Gaussian, Johnson-Lindenstrauss) projection of a ``dims``-wide embedding to
    :data:`EMBED_DIMS`; None when it is that narrow already. Fixed by ``seed``: the same model, the same
    axes."""
    if dims <= EMBED_DIMS:
        return None
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((dims, EMBED_DIMS)) / np.sqrt(EMBED_DIMS)).astype(np.float32)


# --- per-class metrics -----------------------------------------------------------------------------


def class_metrics(confusion: np.ndarray) -> tuple[dict[int, dict], dict]:
    """Per class (true x predicted counts): precision, recall, F1, support; and the macro and weighted
    averages over the classes that occur as a label or a prediction (scikit-learn's default labels; 0 where
    undefined)."""
    cm = np.asarray(confusion, dtype=np.float64)
    tp = np.diag(cm)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    used = np.flatnonzero((support > 0) | (predicted > 0))
    per = {
        int(c): {
            "precision": float(precision[c]),
            "recall": float(recall[c]),
            "f1": float(f1[c]),
            "support": int(support[c]),
        }
        for c in used
    }
    w = support[used] / max(support[used].sum(), 1)
    summary = {
        "macro": {
            "precision": float(precision[used].mean()),
            "recall": float(recall[used].mean()),
            "f1": float(f1[used].mean()),
        },
        "weighted": {
            "precision": float((precision[used] * w).sum()),
            "recall": float((recall[used] * w).sum()),
            "f1": float((f1[used] * w).sum()),
        },
        "classes": int(used.size),
        "support": int(support.sum()),
    }
    return per, summary


def top_k_accuracy(probs: np.ndarray, labels: np.ndarray, ks: Sequence[int]) -> dict[str, float]:
    """Share of images whose label is among the ``k`` highest scores, for each k (ties: the label counts
    when its score beats all but k-1 others)."""
    p = np.asarray(probs, dtype=np.float64)
    own = p[np.arange(len(labels)), labels]
    above = (p > own[:, None]).sum(axis=1)
    return {str(k): float((above < k).mean()) for k in ks}


# --- calibration -------------------------------------------------------------------------------------


@dataclass
class Calibration:
    ece: float
    bins: int
    brier: float
    nll: float
    reliability: list[dict]  # per bin: lower, upper, count, confidence (mean), accuracy
    temperature: float
    ece_after_temperature: float
    reliability_after: list[dict]
    mean_confidence: float
    accuracy: float
    images: int

    def to_json(self) -> dict:
        return {
            "ece": self.ece,
            "bins": self.bins,
            "brier": self.brier,
            "nll": self.nll,
            "reliability": self.reliability,
            "temperature": self.temperature,
            "ece_after_temperature": self.ece_after_temperature,
            "reliability_after_temperature": self.reliability_after,
            "mean_confidence": self.mean_confidence,
            "accuracy": self.accuracy,
            "images": self.images,
        }


def reliability(
    confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS
) -> tuple[float, list[dict]]:
    """ECE over ``bins`` equal-width bins ((i-1)/M, i/M] of the top-label confidence, and each bin's count,
    mean confidence and accuracy (Guo et al. 2017, eq. 3)."""
    conf = np.asarray(confidence, dtype=np.float64)
    ok = np.asarray(correct, dtype=np.float64)
    which = np.clip(np.ceil(conf * bins).astype(int) - 1, 0, bins - 1)
    rows, ece = [], 0.0
    for b in range(bins):
        m = which == b
        n = int(m.sum())
        row = {"lower": b / bins, "upper": (b + 1) / bins, "count": n, "confidence": None, "accuracy": None}
        if n:
            row["confidence"], row["accuracy"] = float(conf[m].mean()), float(ok[m].mean())
            ece += n / len(conf) * abs(row["accuracy"] - row["confidence"])
        rows.append(row)
    return float(ece), rows


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def log_scores(probs: np.ndarray) -> np.ndarray:
    """Log-probabilities: the logits up to a per-image constant, which a softmax ignores (so a temperature
    fitted on them is the one fitted on the logits)."""
    return np.log(np.clip(np.asarray(probs, dtype=np.float64), 1e-300, None))


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    z = np.asarray(logits, dtype=np.float64) / temperature
    zmax = z.max(axis=1, keepdims=True)
    lse = zmax[:, 0] + np.log(np.exp(z - zmax).sum(axis=1))
    return float((lse - z[np.arange(len(labels)), labels]).mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature T > 0 that minimises the NLL of softmax(logits / T) (Guo et al. 2017): a bounded
    1-D search over log T in [1/100, 100]."""
    from scipy.optimize import minimize_scalar

    res = minimize_scalar(
        lambda lt: nll(logits, labels, float(np.exp(lt))),
        bounds=(np.log(1e-2), np.log(1e2)),
        method="bounded",
        options={"xatol": 1e-7},
    )
    return float(np.exp(res.x))


def calibration(
    probs: np.ndarray, labels: np.ndarray, logits: np.ndarray | None = None, bins: int = ECE_BINS
) -> Calibration:
    """ECE, reliability, Brier score, NLL and the NLL-minimising temperature of labelled images."""
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    z = log_scores(p) if logits is None else np.asarray(logits, dtype=np.float64)
    conf, pred = p.max(axis=1), p.argmax(axis=1)
    ece, rows = reliability(conf, pred == y, bins)
    onehot = np.zeros_like(p)
    onehot[np.arange(len(y)), y] = 1.0
    brier = float(((p - onehot) ** 2).sum(axis=1).mean())
    loss = float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-300, None)).mean())
    t = fit_temperature(z, y)
    q = softmax(z / t)
    ece_t, rows_t = reliability(q.max(axis=1), q.argmax(axis=1) == y, bins)
    return Calibration(
        ece, bins, brier, loss, rows, t, ece_t, rows_t, float(conf.mean()), float((pred == y).mean()), len(y)
    )


def classwise_ece(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> dict[int, float]:
    """Per class c, the ECE of p_c against [label == c] (a sigmoid head's units are separate binary
    classifiers, so no top-label confidence exists; Kull et al. 2019's class-wise calibration)."""
    p = np.asarray(probs, dtype=np.float64)
    out = {}
    for c in range(p.shape[1]):
        truth = labels == c
        which = np.clip(np.ceil(p[:, c] * bins).astype(int) - 1, 0, bins - 1)
        e = 0.0
        for b in np.unique(which):
            m = which == b
            e += m.sum() / len(p) * abs(truth[m].mean() - p[m, c].mean())
        out[c] = float(e)
    return out


# --- label issues: confident learning ----------------------------------------------------------------


@dataclass
class LabelIssue:
    index: int  # position among the images passed in (Review: in the pass)
    given: int
    suggested: int
    confidence: float  # the model's probability of the suggested label
    self_confidence: float  # ... and of the given one (the rank's key: lowest first)
    rank: int
    cam: np.ndarray | None = None  # the suggested class' Grad-CAM, for the first few (the gallery)


def label_issues(probs: np.ndarray, labels: np.ndarray) -> list[LabelIssue]:
    """Confident learning (Northcutt et al. 2021): the images counted off the diagonal of the confident joint.

    Each class' threshold is its mean self-confidence (the mean probability of class k over images labelled
    k); an image's likely true label is the class whose probability reaches its threshold (the largest
    probability when several do). An image labelled otherwise is an issue, unless the model's top class is
    its given label. Ranked by self-confidence, lowest first. Equals cleanlab's
    ``find_label_issues(filter_by="confident_learning")`` (the tests compare them): 30 lines of NumPy
    instead of a dependency that brings pandas along.
    """
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    n, k = p.shape
    thresholds = np.full(k, 2.0)  # a class no image is labelled with: no image confidently belongs to it
    for c in np.unique(y):
        thresholds[c] = p[y == c, c].mean()
    thresholds = np.clip(thresholds, 2e-6, None)
    confident = p >= thresholds - 1e-6
    count = confident.sum(axis=1)
    guess = np.where(count > 1, p.argmax(axis=1), confident.argmax(axis=1))
    issue = (count > 0) & (guess != y)
    nudged = p.copy()
    nudged[np.arange(n), y] += 1e-6
    issue &= nudged.argmax(axis=1) != y
    found = np.flatnonzero(issue)
    own = p[found, y[found]]
    order = found[np.argsort(own, kind="stable")]
    return [
        LabelIssue(int(i), int(y[i]), int(guess[i]), float(p[i, guess[i]]), float(p[i, y[i]]), r + 1)
        for r, i in enumerate(order)
    ]


# --- duplicates --------------------------------------------------------------------------------------


@dataclass
class Duplicate:
    a: int
    b: int
    distance: float  # cosine distance of the model embeddings (0: the same direction); None without one
    hash_distance: int  # differing bits of the 64-bit perceptual hashes


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Differing bits of 64-bit hashes (broadcast)."""
    x = np.bitwise_xor(a, b)
    if hasattr(np, "bitwise_count"):  # NumPy 2
        return np.bitwise_count(x).astype(np.int64)
    bytes_ = x[..., None].view(np.uint8)
    return np.unpackbits(bytes_, axis=-1).sum(axis=-1).astype(np.int64)


def near_duplicates(
    hashes: np.ndarray, embeddings: np.ndarray | None, max_bits: int, max_distance: float, block: int = 256
) -> list[Duplicate]:
    """Pairs within ``max_bits`` of each other's perceptual hash AND (when the model gives an embedding)
    within ``max_distance`` cosine distance: two witnesses, the pixels' layout and the model's view, so that
    neither a hash collision of two plain images nor two look-alike embeddings makes a duplicate alone.
    The hashes are compared block by block (``block`` rows against all N: memory O(block x N)); the
    embeddings only for the pairs the hashes let through (a few per image), not N x N."""
    h = np.asarray(hashes, dtype=np.uint64)
    n = len(h)
    e = None
    if embeddings is not None:
        e = np.asarray(embeddings, dtype=np.float32)
        e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    out: list[Duplicate] = []
    for i0 in range(0, n, block):
        i1 = min(n, i0 + block)
        bits = hamming(h[i0:i1, None], h[None, :])
        rows, cols = np.nonzero(bits <= max_bits)
        a = rows + i0
        keep = cols > a
        a, b, bits = a[keep], cols[keep], bits[rows[keep], cols[keep]]
        dist = None
        if e is not None:
            dist = np.maximum(1.0 - np.einsum("ij,ij->i", e[a], e[b]), 0.0)
            close = dist <= max_distance
            a, b, bits, dist = a[close], b[close], bits[close], dist[close]
        for k in range(len(a)):
            out.append(
                Duplicate(int(a[k]), int(b[k]), float(dist[k]) if dist is not None else None, int(bits[k]))
            )
    out.sort(key=lambda d: (d.hash_distance, d.distance or 0.0, d.a, d.b))
    return out


# --- image properties: outliers and weak segments ----------------------------------------------------


def _columns(props: np.ndarray) -> dict[str, np.ndarray]:
    p = np.asarray(props, dtype=np.float64)
    cols = {name: p[:, i] for i, name in enumerate(PROPERTIES)}
    cols["area"] = cols["width"] * cols["height"]
    return cols


def robust_z(x: np.ndarray) -> np.ndarray | None:
    """0.6745 (x - median) / MAD (Iglewicz & Hoaglin); the mean absolute deviation (x 1.2533) where the MAD is
    0; None where every value is the same."""
    med = np.median(x)
    mad = np.median(np.abs(x - med))
    if mad > 0:
        return 0.6745 * (x - med) / mad
    mean_ad = np.abs(x - med).mean()
    if mean_ad > 0:
        return (x - med) / (1.2533 * mean_ad)
    return None


@dataclass
class Outlier:
    index: int
    property: str
    value: float
    z: float


def outliers(props: np.ndarray, limit: float) -> list[Outlier]:
    """Each image's most extreme property with |robust z| above ``limit`` (sharpness and area on a log scale:
    they spread over decades), most extreme first."""
    cols = _columns(props)
    best: dict[int, Outlier] = {}
    for name in Z_PROPERTIES:
        x = cols[name]
        z = robust_z(np.log1p(x) if name in ("sharpness", "area") else x)
        if z is None:
            continue
        for i in np.flatnonzero(np.abs(z) > limit):
            if int(i) not in best or abs(z[i]) > abs(best[int(i)].z):
                best[int(i)] = Outlier(int(i), name, float(x[i]), float(z[i]))
    return sorted(best.values(), key=lambda o: (-abs(o.z), o.index))


@dataclass
class Segment:
    property: str
    lower: float
    upper: float
    images: int
    accuracy: float
    weak: bool


def segments(props: np.ndarray, correct: np.ndarray, drop: float, min_images: int) -> list[Segment]:
    """Accuracy by property bins (quartiles; grey vs colour): a bin is weak when its accuracy is ``drop`` or
    more below the overall one on at least ``min_images`` images."""
    cols = _columns(props)
    ok = np.asarray(correct, dtype=np.float64)
    overall = ok.mean() if len(ok) else 0.0
    out: list[Segment] = []
    for name in SEGMENT_PROPERTIES:
        x = cols[name]
        if name == "colour":
            edges = [(0.0, 0.0), (1.0, 1.0)]
            masks = [x == 0, x == 1]
        else:
            qs = np.unique(np.quantile(x, [0.25, 0.5, 0.75]))
            cuts = np.concatenate([[x.min()], qs, [x.max()]])
            cuts = np.unique(cuts)
            if len(cuts) < 2:
                continue
            which = np.clip(np.searchsorted(cuts, x, side="right") - 1, 0, len(cuts) - 2)
            edges = [(float(cuts[b]), float(cuts[b + 1])) for b in range(len(cuts) - 1)]
            masks = [which == b for b in range(len(cuts) - 1)]
        present = [(e, m) for e, m in zip(edges, masks) if m.any()]
        if len(present) < 2:
            continue
        for (lo, hi), m in present:
            acc = float(ok[m].mean())
            out.append(
                Segment(
                    name, lo, hi, int(m.sum()), acc, bool(m.sum() >= min_images and overall - acc >= drop)
                )
            )
    return out


# --- the review of one pass --------------------------------------------------------------------------


@dataclass
class Review:
    """What the review found; indices are positions in the pass' per-image arrays."""

    per_class: dict[int, dict] = field(default_factory=dict)
    summary: dict | None = None
    top_k: dict[str, float] = field(default_factory=dict)
    calibration: Calibration | None = None
    calibration_note: str | None = None  # why there is none, or how it was read
    classwise_ece: dict[int, float] | None = None
    label_issues: list[LabelIssue] = field(default_factory=list)
    label_issues_note: str | None = None
    labelled: int = 0
    duplicates: list[Duplicate] = field(default_factory=list)
    duplicates_by: str = ""
    outliers: list[Outlier] = field(default_factory=list)
    segments: list[Segment] = field(default_factory=list)
    uniform: list[str] = field(default_factory=list)  # properties every image shares (nothing to judge)
    seconds: float = 0.0


def build(
    probs: np.ndarray | None,
    labels: np.ndarray,
    confusion: np.ndarray | None,
    hashes: np.ndarray | None,
    embeddings: np.ndarray | None,
    props: np.ndarray | None,
    *,
    sigmoid: bool,
    top_k: int,
    t,
) -> Review:
    """The review of one data-set pass (arrays in pass order; ``t``: :class:`reportgen.config.Thresholds`)."""
    import time

    t0 = time.perf_counter()
    r = Review()
    labels = np.asarray(labels, dtype=np.int64)
    known = labels >= 0
    r.labelled = int(known.sum())
    if probs is not None and r.labelled:
        p, y = np.asarray(probs, dtype=np.float64)[known], labels[known]
        if confusion is not None:
            r.per_class, r.summary = class_metrics(confusion)
        ks = [k for k in range(2, top_k + 1) if k < p.shape[1]]
        r.top_k = top_k_accuracy(p, y, ks) if ks else {}
        if sigmoid:
            r.classwise_ece = classwise_ece(p, y)
            r.calibration_note = (
                "a sigmoid head scores each class on its own, so its outputs have no top-label "
                "confidence to bin; shown instead: each class' calibration error, p(class) "
                "against the label being that class"
            )
            r.label_issues_note = (
                "confident learning needs one probability distribution over the classes; a "
                "sigmoid head gives independent scores"
            )
        else:
            r.calibration = calibration(p, y)
            if len(np.unique(y)) >= 2:
                r.label_issues = label_issues(p, y)
                positions = np.flatnonzero(known)  # back from the labelled images to every image of the pass
                for issue in r.label_issues:
                    issue.index = int(positions[issue.index])
            else:
                r.label_issues_note = "one class only among the labels: confident learning compares classes"
        if props is not None:
            r.segments = segments(
                np.asarray(props)[known], p.argmax(axis=1) == y, t.segment_drop, t.segment_min_images
            )
    if hashes is not None and len(hashes) > 1:
        r.duplicates = near_duplicates(hashes, embeddings, t.duplicate_hash_bits, t.duplicate_distance)
        r.duplicates_by = (
            "perceptual hash and model embedding"
            if embeddings is not None
            else "perceptual hash only (the model has no penultimate layer to read)"
        )
    if props is not None and len(props) > 2:
        r.outliers = outliers(props, t.outlier_z)
        cols = _columns(props)
        r.uniform = [name for name in ("width", "height", "aspect", "colour") if np.ptp(cols[name]) == 0]
    r.seconds = time.perf_counter() - t0
    return r
