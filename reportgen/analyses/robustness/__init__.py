"""Robustness, measured: the model under the common corruptions and under L-infinity attacks.

Compute only (typed results, no plotting); :mod:`reportgen.sections.robustness`
describes, :mod:`reportgen.painters.robustness` draws.

- :mod:`.corruptions`: the 15 corruptions of Hendrycks & Dietterich (ICLR 2019)
  -- 14 here, frost left out (:data:`.corruptions.LEFT_OUT`) -- one registered
  function each, seeded per image, corruption and severity;
- :mod:`.classifier`: the model as a compiled function of pixels 0-255, its
  preprocessing inside;
- :mod:`.attacks`: FGSM and PGD (Madry et al. 2018) on those pixels;
- :func:`measure`: one pass over the images -- the clean prediction, every
  corruption at every severity, every attack at every budget -- keeping only
  counts (correct, agreeing with the clean prediction, summed confidence) per
  condition, so that passes over disjoint shards of the images add up to the
  pass over all of them exactly (:func:`merge`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from reportgen.analyses.robustness import attacks as A
from reportgen.analyses.robustness import corruptions as C

EPSILONS = (1.0, 2.0, 4.0, 8.0)  # L-infinity budgets in pixel units (0-255)
SEVERITIES = C.SEVERITIES
GRAD_COST = 2.25  # a gradient's cost in forward passes (VGG16, 2 cores: 0.184 s against 0.082 s an image)
# A forward pass's cost on a CPU, fitted to two measured ones (2 cores, TensorFlow, batch 8-16;
# docs/benchmarks.md): 4.5 ms per GMAC plus 0.75 ms per million activation elements -- VGG16 (15.5 GMAC, 15.1
# M elements) 81 ms, EfficientNetB0 (0.39 GMAC, 25.0 M elements: depthwise convolutions and normalisations,
# memory-bound) 20.5 ms. In multiply-add equivalents: MACs + ELEMENT_MACS x elements.
ELEMENT_MACS = 167
# The default --robustness-sample: as many images as fit this many multiply-add equivalents of passes. 12
# VGG16 images (178 forward-pass equivalents each at the defaults, 18.0 G each: ~13.5 s an image on 2 cores
# with the corrupting, ~2.7 min alone; 16 images took 5.7 min while other processes shared the 2 cores, so 12
# leaves that margin); ResNet50 21; EfficientNetB0 48 (~3.7 min); small models MAX_SAMPLE, very large ones
# MIN_SAMPLE.
BUDGET_MACS = 3.9e13
MIN_SAMPLE, MAX_SAMPLE, UNKNOWN_SAMPLE = 4, 256, 32


@dataclass
class Counts:
    """Sums over images for one condition: what merges exactly across shards."""

    images: int = 0
    labelled: int = 0
    correct: int = 0  # labelled images classified as their label
    agree: int = 0  # images classified as their clean prediction
    confidence: float = 0.0  # summed top probability
    seconds: float = 0.0  # corrupting or attacking, and the forward passes

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.labelled if self.labelled else None

    @property
    def agreement(self) -> float | None:
        return self.agree / self.images if self.images else None

    @property
    def mean_confidence(self) -> float | None:
        return self.confidence / self.images if self.images else None

    def add(self, other: "Counts") -> "Counts":
        return Counts(
            self.images + other.images,
            self.labelled + other.labelled,
            self.correct + other.correct,
            self.agree + other.agree,
            self.confidence + other.confidence,
            self.seconds + other.seconds,
        )


@dataclass
class Flipped:
    """One image an attack changed the prediction of: pixels and CAMs before and after."""

    key: int
    method: str
    epsilon: float
    clean: np.ndarray  # float32 H x W x C, 0-255
    attacked: np.ndarray  # the attacked pixels (not rounded: rounding could undo a small budget's flip)
    clean_class: int
    attacked_class: int
    clean_confidence: float
    attacked_confidence: float
    label: int  # -1 when unknown
    clean_cam: np.ndarray | None = None  # (h, w) in [0, 1], of the predicted class
    attacked_cam: np.ndarray | None = None


@dataclass
class Robustness:
    """The robustness pass's counts, and what the figures show."""

    corruptions: tuple[str, ...]
    epsilons: tuple[float, ...]
    steps: int
    step_fraction: float
    seed: int
    clean: Counts = field(default_factory=Counts)
    corrupted: dict[tuple[str, int], Counts] = field(default_factory=dict)
    adversarial: dict[tuple[str, float], Counts] = field(default_factory=dict)
    keys: list[int] = field(default_factory=list)  # the images' identities (file indices), in pass order
    classes: int | None = None
    grid: dict[str, np.ndarray] = field(default_factory=dict)  # the first image at severity 3, by corruption
    grid_clean: np.ndarray | None = None
    flipped: list[Flipped] = field(default_factory=list)
    cam_layer: str | None = None
    seconds: float = 0.0
    left_out: dict[str, str] = field(default_factory=dict)
    source: str = ""  # "folders" (a sample of --images) or "images" (the report's images)
    available: int = 0  # images the source had
    skipped: int = 0  # unreadable ones among those chosen
    sample: int = 0  # images asked for (--robustness-sample, or the budget's)
    chosen_by: str = ""  # "option" or "budget"
    predicted: set = field(default_factory=set)  # the classes the clean images are predicted as
    shards: int = 1  # workers the images were split over (--jobs)
    executor: str = "one process"  # "process", "ray" or "one process"
    shards_note: str | None = None  # why the pass ran in one process although --jobs asked for more

    @property
    def images(self) -> int:
        return self.clean.images

    @property
    def labelled(self) -> bool:
        return self.clean.labelled > 0

    @property
    def clean_accuracy(self) -> float | None:
        return self.clean.accuracy

    def measure_of(self, c: Counts) -> float | None:
        """Accuracy with labels, else agreement with the clean prediction."""
        return c.accuracy if self.labelled else c.agreement

    @property
    def mean_corruption(self) -> float | None:
        values = [self.measure_of(c) for c in self.corrupted.values()]
        values = [v for v in values if v is not None]
        return float(np.mean(values)) if values else None

    @property
    def relative_drop(self) -> float | None:
        """(clean - mean corrupted) / clean: mCE-style, not normalised by AlexNet's errors."""
        clean = self.clean.accuracy if self.labelled else 1.0
        mean = self.mean_corruption
        if clean is None or mean is None or clean <= 0:
            return None
        return (clean - mean) / clean

    def drop_at(self, name: str, severity: int) -> float | None:
        """Clean minus corrupted (accuracy with labels, else 1 - agreement) for one condition."""
        c = self.corrupted.get((name, severity))
        if c is None:
            return None
        clean = self.clean.accuracy if self.labelled else 1.0
        value = self.measure_of(c)
        return None if clean is None or value is None else clean - value

    @property
    def chance(self) -> float | None:
        return 1.0 / self.classes if self.classes else None


def forward_equivalents(corruptions: int, epsilons: int, steps: int) -> float:
    """Forward passes (gradients at :data:`GRAD_COST`) the pass spends on one image."""
    return 1 + corruptions * len(SEVERITIES) + epsilons * (GRAD_COST + 1) + epsilons * (steps * GRAD_COST + 1)


def forward_cost(macs: int | None, elements: int | None) -> float | None:
    """One forward pass of one image in multiply-add equivalents: its MACs and its activations (ELEMENT_MACS
    each)."""
    if not macs:
        return None
    return float(macs) + ELEMENT_MACS * float(elements or 0)


def default_sample(cost_per_image: float | None, corruptions: int, epsilons: int, steps: int) -> int:
    """The images that fit :data:`BUDGET_MACS` (within MIN_SAMPLE..MAX_SAMPLE) at ``cost_per_image``
    (:func:`forward_cost`); UNKNOWN_SAMPLE when the model's cost cannot be counted."""
    if not cost_per_image:
        return UNKNOWN_SAMPLE
    n = BUDGET_MACS / (cost_per_image * forward_equivalents(corruptions, epsilons, steps))
    return int(min(MAX_SAMPLE, max(MIN_SAMPLE, n)))


def _count(probs: np.ndarray, labels: np.ndarray, clean_pred: np.ndarray | None) -> tuple[Counts, np.ndarray]:
    pred = probs.argmax(axis=1)
    has = labels >= 0
    c = Counts(
        images=len(probs),
        labelled=int(has.sum()),
        correct=int((pred[has] == labels[has]).sum()),
        agree=int((pred == clean_pred).sum()) if clean_pred is not None else len(probs),
        confidence=float(probs.max(axis=1).sum()),
    )
    return c, pred


def measure(
    clf: Any,
    pixels: np.ndarray,
    labels: np.ndarray,
    keys: Sequence[int],
    corruptions: Sequence[str],
    epsilons: Sequence[float],
    steps: int = A.PGD_STEPS,
    seed: int = 0,
    tick: Callable[[int], None] | None = None,
    grid: bool = True,
) -> Robustness:
    """The pass over ``pixels`` (N, H, W, C) 0-255 with ``labels`` (-1: none) and ``keys`` (each image's
    identity, which seeds its corruptions and its PGD start): counts per condition."""
    t0 = time.perf_counter()
    x = np.asarray(pixels, np.float32)
    labels = np.asarray(labels, np.int64)
    keys = [int(k) for k in keys]
    out = Robustness(
        tuple(corruptions),
        tuple(float(e) for e in epsilons),
        int(steps),
        A.STEP_FRACTION,
        int(seed),
        keys=keys,
        left_out=dict(C.LEFT_OUT),
    )
    clf.probabilities(
        x[: max(1, min(len(x), clf.forward_batch))]
    )  # compiled (traced) before anything is timed
    if len(x) % clf.forward_batch:
        clf.probabilities(x[: len(x) % clf.forward_batch])  # ... at the last batch's size too
    started = time.perf_counter()
    probs = clf.probabilities(x)
    out.classes = probs.shape[1] if probs.ndim == 2 and len(probs) else None
    out.clean, clean_pred = _count(probs, labels, None)
    out.predicted = {int(c) for c in clean_pred}
    out.clean.seconds = time.perf_counter() - started
    if tick:
        tick(1)
    for name in corruptions:
        for s in SEVERITIES:
            started = time.perf_counter()
            bad = np.stack(
                [C.corrupt(x[i], name, s, C.rng_for(seed, name, s, k)) for i, k in enumerate(keys)]
            )
            if grid and s == 3 and len(bad):
                out.grid[name] = np.uint8(np.clip(bad[0] + 0.5, 0, 255))
            counts, _pred = _count(clf.probabilities(bad), labels, clean_pred)
            counts.seconds = time.perf_counter() - started
            out.corrupted[(name, s)] = counts
            if tick:
                tick(1)
    if grid and len(x):
        out.grid_clean = np.uint8(np.clip(x[0] + 0.5, 0, 255))
    targets = np.where(labels >= 0, labels, clean_pred)
    if out.epsilons and len(x):  # the gradient compiled before the attacks are timed, at both batch sizes
        b = clf.backward_batch
        clf.gradient(x[: min(len(x), b)], targets[: min(len(x), b)])
        if len(x) > b and len(x) % b:
            clf.gradient(x[: len(x) % b], targets[: len(x) % b])
    for eps in out.epsilons:
        started = time.perf_counter()
        adv = A.fgsm(clf, x, targets, eps)
        out.adversarial[("fgsm", eps)], _ = _count(clf.probabilities(adv), labels, clean_pred)
        out.adversarial[("fgsm", eps)].seconds = time.perf_counter() - started
        if tick:
            tick(1)
        started = time.perf_counter()
        adv = A.pgd(
            clf, x, targets, eps, steps, seed, np.asarray(keys), tick=(lambda: tick(1)) if tick else None
        )
        p = clf.probabilities(adv)
        counts, pred = _count(p, labels, clean_pred)
        counts.seconds = time.perf_counter() - started
        out.adversarial[("pgd", eps)] = counts
        if grid:
            _keep_flipped(out, x, adv, probs, p, clean_pred, pred, labels, keys, eps)
    out.seconds = time.perf_counter() - t0
    return out


def _keep_flipped(
    out: Robustness,
    x: np.ndarray,
    adv: np.ndarray,
    probs: np.ndarray,
    p: np.ndarray,
    clean_pred: np.ndarray,
    pred: np.ndarray,
    labels: np.ndarray,
    keys: list[int],
    eps: float,
    most: int = 4,
) -> None:
    """The first images PGD flipped at the smallest budget that flips any (correct ones first)."""
    if out.flipped:
        return
    flipped = np.flatnonzero(pred != clean_pred)
    if not len(flipped):
        return
    correct = [i for i in flipped if labels[i] >= 0 and clean_pred[i] == labels[i]]
    order = correct + [i for i in flipped if i not in correct]
    for i in order[:most]:
        out.flipped.append(
            Flipped(
                keys[i],
                "pgd",
                eps,
                x[i].copy(),
                adv[i].copy(),
                int(clean_pred[i]),
                int(pred[i]),
                float(probs[i, clean_pred[i]]),
                float(p[i, pred[i]]),
                int(labels[i]),
            )
        )


def merge(parts: Sequence[Robustness]) -> Robustness:
    """Passes over disjoint shards as the one pass over all their images: counts summed, figures from the
    first."""
    first = parts[0]
    out = Robustness(
        first.corruptions,
        first.epsilons,
        first.steps,
        first.step_fraction,
        first.seed,
        classes=first.classes,
        grid=first.grid,
        grid_clean=first.grid_clean,
        left_out=first.left_out,
        cam_layer=first.cam_layer,
    )
    for part in parts:
        out.clean = out.clean.add(part.clean)
        for k, c in part.corrupted.items():
            out.corrupted[k] = out.corrupted.get(k, Counts()).add(c)
        for k, c in part.adversarial.items():
            out.adversarial[k] = out.adversarial.get(k, Counts()).add(c)
        out.keys += part.keys
        out.predicted |= part.predicted
        out.seconds += part.seconds
    # The one pass's choice: flips at the smallest budget that flipped any, correct ones first, in image
    # order.
    flips = [f for part in parts for f in part.flipped]
    if flips:
        smallest = min(f.epsilon for f in flips)
        at = [f for f in flips if f.epsilon == smallest]
        out.flipped = sorted(at, key=lambda f: not (f.label >= 0 and f.label == f.clean_class))[:4]
    return out


def add_cams(
    out: Robustness, model: Any, head: Any, feeds: Any, preprocessor: Any, layer: str | None
) -> None:
    """Grad-CAM of the predicted class on each flipped image, before and after the attack."""
    if not out.flipped or layer is None:
        return
    from reportgen.analyses.cam import explain

    out.cam_layer = layer
    before = np.stack([preprocessor.forward(f.clean.astype(np.float32)) for f in out.flipped]).astype(
        np.float32
    )
    after = np.stack([preprocessor.forward(f.attacked.astype(np.float32)) for f in out.flipped]).astype(
        np.float32
    )
    a = explain(model, layer, before, [f.clean_class for f in out.flipped], head=head, feeds=feeds)
    b = explain(model, layer, after, [f.attacked_class for f in out.flipped], head=head, feeds=feeds)
    for i, f in enumerate(out.flipped):
        f.clean_cam, f.attacked_cam = a.heatmaps[i, 0], b.heatmaps[i, 0]
