"""Is a CAM what the model uses? Deletion and insertion against a random and an edge map.

A plausible heat map need not be what the model relies on (Petsiuk et al. 2018, RISE; Rong et al.
2022, ROAD). The test: rank the image's pixels by the map, replace the highest-ranked ones first
and watch the explained class' probability. A faithful map makes it fall fast when pixels are
*deleted* in its order and rise fast when they are *inserted* in it. A map is only worth as much as
it beats maps that know nothing of the model -- a random map and a Sobel edge map, the baselines of
pytorch-grad-cam's metrics tutorial -- measured under the same protocol (docs/findings.md, "CAM
faithfulness", the one definition):

- **order**: the map upsampled (bilinearly, as the overlays) to the input size; pixels ranked from
  the strongest down, ties broken by one seeded random ranking per image, the same for every map;
- **replacement**: the first of :data:`REPLACEMENTS` under which the test can tell anything on this
  image -- replacing every pixel moves the explained score by at least the ``faithfulness_informative``
  margin --: a Gaussian-blurred copy of the image (sigma = :data:`BLUR` x the shorter side), else the
  image's mean colour, else seeded uniform noise over the image's own range, all in the model's input
  space (each commutes with every per-channel affine preprocessing). Where none moves the score, the
  curves are measured under the blur and the verdict is ``uninformative`` (:func:`judge`);
- **steps**: S steps of 1/S of the pixels each; deletion goes from the image to the blurred copy,
  insertion from the blurred copy to the image: S + 1 points per curve. S is :data:`STEPS` (20) where
  the model is cheap enough, else 10 or 5 (:func:`fitted_steps`: every curve of one image within
  :data:`BUDGET_FLOPS` of forward passes); a model over the budget even at 5 steps (EfficientNetB7,
  NASNetLarge, ConvNeXtXLarge: 2.8 to 7 TFLOP, minutes on 2 cores) is not measured by default, and the
  report says so and names ``--faithfulness-steps``, which sets S;
- **score**: the explained class' probability (for a raw output, the score through a sigmoid; for a
  map, the explained mean of the map, through a sigmoid unless the output is already a probability);
- **AUC**: trapezoid rule over the fraction 0..1 of pixels changed: between 0 and 1;
- **baselines**: a random map at the CAM layer's resolution (:data:`RANDOM_DRAWS` seeded draws,
  their AUCs averaged) -- as smooth as a CAM, so it differs only in where it points -- and the Sobel
  magnitude of the image's grey level (the channel mean).

All perturbed images of one image -- every method, every explained class, both baselines -- go
through the model in batches (:func:`reportgen.graph.probe.images_per_batch`): the two end points
are shared by every curve, the baselines by every class (one pass gives every class' probability),
and maps with the same pixel order are measured once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from reportgen import backend, graph
from reportgen.analyses.cam.base import pick, upsample
from reportgen.analyses.cam.head import Head
from reportgen.analyses.cam.targets import BinaryClasses, ClassScores, Target
from reportgen.graph import forward
from reportgen.graph.inputs import model_inputs

STEPS = 20  # 5% of the pixels per step: the full protocol
STEP_CHOICES = (20, 10, 5)  # the fitted default: 5%, 10% or 20% of the pixels per step
# Forward-pass FLOPs of one report image's curves (all maps, both curves) for the fitted default:
# ResNet50 (7.7 GFLOP per 224 px image, 268 images) and EfficientNetB3 keep 20 steps, VGG16 gets 5
# (31 GFLOP an image; 20 steps took 42 s of a 246 s report on 2 cores), EfficientNetB7 (76 GFLOP at
# 600 px: 20 steps took 283 s on 2 cores, more than its whole ascent) is over even at 5.
BUDGET_FLOPS = 2.5e12
RANDOM_DRAWS = 3
BLUR = 0.1  # sigma of the replacement's Gaussian blur, as a fraction of the image's shorter side
INFORMATIVE = 0.1  # the fully replaced image must move the score by this much (scores lie in [0, 1])
FLAT_BAND = 0.02  # every AUC (the map's and the baselines') within this band: the curves tell nothing
VERDICTS = ("faithful", "not better than random", "uninformative")
BATCH_BYTES = 512 << 20  # activations of one forward pass (the forward-only rule of images_per_batch)
KEYS = (
    "deletion_auc",
    "insertion_auc",
    "random_deletion_auc",
    "random_insertion_auc",
    "edge_deletion_auc",
    "edge_insertion_auc",
)


@dataclass
class Curve:
    """Deletion and insertion curves of one map for one explained class: steps + 1 points each."""

    deletion: np.ndarray
    insertion: np.ndarray

    @property
    def deletion_auc(self) -> float:
        return auc(self.deletion)

    @property
    def insertion_auc(self) -> float:
        return auc(self.insertion)


@dataclass
class ImageCurves:
    """One image's curves: per method a list over explained classes, and the baselines' per class."""

    cams: dict[str, list[Curve]] = field(default_factory=dict)
    random: list[Curve] = field(default_factory=list)  # the mean curve of the draws (its AUC = the mean AUC)
    edge: list[Curve] = field(default_factory=list)
    replacement: str = "gaussian_blur"  # what replaced the pixels of these curves
    # Per replacement tried, in order: how far replacing every pixel moved each explained class' score (K,).
    moved: dict[str, list[float]] = field(default_factory=dict)
    constant: dict[str, list[bool]] = field(default_factory=dict)  # per method and class: a map of one value

    def scores(self, method: str, k: int) -> dict[str, float]:
        """The six AUCs of report.json's ``faithfulness`` entry for ``method`` and explained class ``k``."""
        c, r, e = self.cams[method][k], self.random[k], self.edge[k]
        return {
            "deletion_auc": c.deletion_auc,
            "insertion_auc": c.insertion_auc,
            "random_deletion_auc": r.deletion_auc,
            "random_insertion_auc": r.insertion_auc,
            "edge_deletion_auc": e.deletion_auc,
            "edge_insertion_auc": e.insertion_auc,
        }


@dataclass
class Faithfulness:
    """Every image's curves, and what measuring them cost."""

    images: list[ImageCurves] = field(default_factory=list)
    methods: list[str] = field(default_factory=list)
    blur_sigma: float = 0.0  # in pixels of the input
    steps: int = STEPS
    steps_source: str = (
        "option"  # "fitted" (to the model's cost, BUDGET_FLOPS) or "option" (--faithfulness-steps)
    )
    flops_per_image: float | None = (
        None  # forward-pass FLOPs of one image's curves (estimated from the layers)
    )
    forward_passes: int = 0
    perturbed_images: int = 0
    seconds: float = 0.0
    note: str | None = None  # why nothing was measured
    layer: str | None = None  # the CAM layer, for the finding
    stand_in: bool = False  # every image is reportgen's stand-in photo, not the model's data
    score: str = "the explained class' probability"  # what the curves measure (:func:`score_name`)
    informative: float = INFORMATIVE  # the margin a replacement must move the score by

    def protocol(self) -> dict:
        """The protocol as report.json states it (``gradcam.faithfulness``)."""
        return {
            "steps": self.steps,
            "steps_source": self.steps_source,
            "forward_flops_per_image": None if self.flops_per_image is None else float(self.flops_per_image),
            "budget_flops_per_image": float(BUDGET_FLOPS),
            "replacement": self.replacement_summary(),
            "replacements": list(REPLACEMENTS),
            "informative_margin": self.informative,
            "blur_sigma": self.blur_sigma,
            "random_draws": RANDOM_DRAWS,
            "order": "map upsampled to the input, strongest first; "
            "ties by one seeded random ranking per image",
            "score": self.score,
            "forward_passes": self.forward_passes,
            "perturbed_images": self.perturbed_images,
            "seconds": round(self.seconds, 3),
            "note": self.note,
        }

    def replacement_summary(self) -> str:
        """The replacement of every image's curves, or ``mixed`` when they differ (each entry names its
        own)."""
        used = {ic.replacement for ic in self.images}
        return used.pop() if len(used) == 1 else ("mixed" if used else REPLACEMENTS[0])


def auc(curve: np.ndarray) -> float:
    """Area under a curve sampled at equal steps over the fraction 0..1 (trapezoid rule)."""
    y = np.asarray(curve, dtype=np.float64)
    return float((y[:-1] + y[1:]).sum() / (2.0 * (len(y) - 1)))


def blur_sigma(height: int, width: int) -> float:
    """The replacement blur's sigma in pixels: large enough to wipe out an object, not the image's colours."""
    return max(1.0, BLUR * min(height, width))


def blurred(x: np.ndarray, sigma: float) -> np.ndarray:
    """(H, W, C) Gaussian blur over the two spatial axes (reflected at the borders)."""
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(np.asarray(x, dtype=np.float32), sigma=(sigma, sigma, 0), mode="reflect")


def edge_map(x: np.ndarray) -> np.ndarray:
    """(H, W) Sobel gradient magnitude of the image's grey level (its channel mean): the edge baseline."""
    from scipy.ndimage import sobel

    grey = np.asarray(x, dtype=np.float64).mean(axis=-1)
    return np.hypot(sobel(grey, axis=0), sobel(grey, axis=1))


def mean_colour(x: np.ndarray) -> np.ndarray:
    """The image's per-channel mean everywhere: no shape, no texture, its own colour."""
    x = np.asarray(x, dtype=np.float32)
    return np.broadcast_to(x.mean(axis=(0, 1), keepdims=True), x.shape).astype(np.float32)


def uniform_noise(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Seeded uniform noise over each channel's own range in the image: no trace of the image but its
    range."""
    x = np.asarray(x, dtype=np.float32)
    lo, hi = x.min(axis=(0, 1), keepdims=True), x.max(axis=(0, 1), keepdims=True)
    return (lo + (hi - lo) * rng.uniform(0.0, 1.0, x.shape)).astype(np.float32)


# What replaces the pixels, tried in this order (docs/findings.md, "CAM faithfulness"): the blur keeps the
# image's colours and low frequencies (the fewest artefacts at the mask's edges), the mean colour removes
# every shape, the noise even the colour. Each takes (image, sigma, rng).
REPLACEMENTS: dict[str, Callable[[np.ndarray, float, np.random.Generator], np.ndarray]] = {
    "gaussian_blur": lambda x, sigma, rng: blurred(x, sigma),
    "mean_colour": lambda x, sigma, rng: mean_colour(x),
    "uniform_noise": lambda x, sigma, rng: uniform_noise(x, rng),
}


def pixel_order(heatmap: np.ndarray, tiebreak: np.ndarray) -> np.ndarray:
    """Flat pixel indices, strongest first, of ``heatmap`` upsampled to ``tiebreak``'s (H, W); equal values
    in the order of the seeded ``tiebreak`` ranking (the same for every map of the image)."""
    height, width = tiebreak.shape
    m = np.asarray(heatmap, dtype=np.float32)
    if m.shape != (height, width):
        m = upsample(m / max(float(m.max()), 1e-12) if m.max() > 0 else m, height, width)
    return np.lexsort((tiebreak.ravel(), -m.astype(np.float64).ravel()))


def counts(pixels: int, steps: int = STEPS) -> np.ndarray:
    """Pixels changed after each step 0..steps."""
    return np.round(np.arange(steps + 1) * pixels / steps).astype(np.int64)


def perturbed(
    x: np.ndarray, base: np.ndarray, order: np.ndarray, step: int, insertion: bool, steps: int = STEPS
) -> np.ndarray:
    """The image after ``step`` steps: deletion puts ``base`` in place of the first pixels of ``order``,
    insertion puts the image's own pixels into ``base``."""
    height, width = x.shape[:2]
    mask = np.zeros(height * width, dtype=bool)
    mask[order[: counts(height * width, steps)[step]]] = True
    mask = mask.reshape(height, width, 1)
    return np.where(mask, x, base) if insertion else np.where(mask, base, x)


# --- what is scored -----------------------------------------------------------------------------------


def _bounded_map(model: Any, head: Head) -> bool:
    """Whether a map output is already in [0, 1] (a sigmoid or softmax at its last layer)."""
    if head.kind == "pixel-softmax":
        return True
    layer = graph.anatomy(model).by_path.get(head.final_path) if head.final_path else None
    return layer is not None and (graph.activation_name(layer) or "") in ("sigmoid", "softmax")


def scorer(
    model: Any, head: Head, target: Target, outputs: np.ndarray, index: int
) -> Callable[[np.ndarray], np.ndarray]:
    """A function from the model's own output for a batch (B, ...) to (B, K): image ``index``'s explained
    classes as probabilities (a raw output through a sigmoid)."""

    def sigmoid(z: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-np.clip(z, -60.0, 60.0)))

    if isinstance(target, (ClassScores, BinaryClasses)):
        classes = np.asarray(target.classes[index], dtype=np.int64)

        def classes_of(out: np.ndarray) -> np.ndarray:
            out = out.reshape(len(out), -1)
            if head.is_binary:
                p = out[:, -1:]
                return np.where(classes[None, :] == 1, p, 1.0 - p)
            picked = out[:, classes]
            return picked if head.is_classifier else sigmoid(picked)

        return classes_of
    rows = [c[index] for c in target.cotangents(outputs)]  # linear targets: fixed weights on the output
    bounded = _bounded_map(model, head)

    def weighted(out: np.ndarray) -> np.ndarray:
        s = np.stack([(r[None] * out).reshape(len(out), -1).sum(axis=1) for r in rows], axis=1)
        return s if bounded else sigmoid(s)

    return weighted


def inference(model: Any, head: Head, feeds: Any) -> Callable[[np.ndarray], np.ndarray]:
    """The model's own (chosen) output for a batch of model inputs: ONE compiled inference pass (as the
    pixel-convention measurement's), built once per report; the node-by-node eager walk is slower."""

    def outputs(x: Any) -> Any:
        return pick(forward.run(model, model_inputs(feeds, x)).output, head.output)

    compiled = backend.function(outputs, list(model.variables))

    def run(batch: np.ndarray) -> np.ndarray:
        with backend.no_grad():
            return backend.numpy(compiled(backend.tensor(np.asarray(batch, dtype=np.float32)))).astype(
                np.float64
            )

    return run


# --- the measurement ---------------------------------------------------------------------------------


def _tasks(orders: Sequence[Any], steps: int = STEPS) -> list[tuple[int, int, bool]]:
    """(order, step, insertion) of every image to run: the two end points, the image and its blurred copy
    (``(-1, 0, False)`` and ``(-1, steps, False)``), shared by every curve and run once, then the interior
    steps of each order's two curves."""
    return [(-1, 0, False), (-1, steps, False)] + [
        (o, s, ins) for o in range(len(orders)) for ins in (False, True) for s in range(1, steps)
    ]


def images_needed(maps: int, steps: int) -> int:
    """Perturbed images of one report image with ``maps`` maps (no two alike) at ``steps`` steps: the image
    and each replacement of it (the end points), then each map's interior steps of both curves."""
    return 1 + len(REPLACEMENTS) + 2 * (steps - 1) * maps


def fitted_steps(flops_per_forward: float | None, maps: int, budget: float | None = None) -> int:
    """The default steps: the most of :data:`STEP_CHOICES` whose curves cost at most ``budget`` FLOPs per
    image; 0 when even the fewest are over it; :data:`STEPS` when the cost is unknown."""
    if flops_per_forward is None:
        return STEPS
    budget = BUDGET_FLOPS if budget is None else budget
    fits = [s for s in STEP_CHOICES if images_needed(maps, s) * flops_per_forward <= budget]
    return max(fits, default=0)


def forward_flops(model: Any, height: int, width: int) -> float | None:
    """FLOPs of one forward pass of one image (:func:`reportgen.analyses.patterns.cost.model_macs`, 2 per
    multiply-add); None when the layers cannot be counted (or count nothing)."""
    from reportgen.analyses.patterns.cost import model_macs

    macs = model_macs(model, height, width)
    return 2.0 * macs if macs else None


def choose_replacement(moved: dict[str, np.ndarray], margin: float) -> str | None:
    """The first replacement (in :data:`REPLACEMENTS`' order) that moves the first explained class' score by
    at least ``margin``; None when none does (the test cannot tell anything on this image)."""
    return next(
        (name for name in REPLACEMENTS if name in moved and abs(float(moved[name][0])) >= margin), None
    )


def _chunks(items: Sequence, size: int) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def chunk_size(images: int, batch: int) -> int:
    """Images per forward pass for ``images`` images at most ``batch`` at a time, the passes as even as they
    can be (:func:`reportgen.graph.even_batches`), so that padding the last one to the same size (one
    compiled shape for the whole measurement: a second batch size traces the model again, seconds on a
    large one) wastes less than one image per pass."""
    return graph.even_batches(images, batch)


def curves_for(
    run: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    maps: list[np.ndarray],
    score: Callable[[np.ndarray], np.ndarray],
    batch: int,
    tiebreak: np.ndarray,
    sigma: float,
    steps: int = STEPS,
    bases: dict[str, np.ndarray] | None = None,
    informative: float = INFORMATIVE,
) -> tuple[list[Curve], int, int, str, dict[str, np.ndarray]]:
    """Deletion and insertion curves (per explained class) of each map in ``maps`` on one image ``x``.

    ``bases``: the replacements in the order they are tried (the blurred copy alone by default). The first
    pass holds the image, every replacement and the first interior steps under the first replacement; if
    that one does not move the score by ``informative`` and a later one does, the interior steps are run
    again under it (:func:`choose_replacement`): the common case costs two images more than one
    replacement. Every pass holds exactly ``batch`` images (the last one padded by repeating its last
    image), so the compiled inference sees one shape. Returns ([per map: a Curve whose arrays are
    (steps + 1, K)], forward passes, images run, the replacement used, {replacement tried: how far it
    moved each class' score}). Maps that rank the pixels alike are measured once.
    """
    bases = {"gaussian_blur": blurred(x, sigma)} if bases is None else bases
    names = list(bases)
    orders, which, seen = [], [], {}
    for m in maps:
        order = pixel_order(m, tiebreak)
        key = order.tobytes()
        if key not in seen:
            seen[key] = len(orders)
            orders.append(order)
        which.append(seen[key])
    tasks = _tasks(orders, steps)[2:]  # the interior steps; the end points are the image and each replacement

    def image(task: tuple[int, int, bool], base: np.ndarray) -> np.ndarray:
        o, s, insertion = task
        return perturbed(x, base, orders[o], s, insertion, steps)

    passes, run_images = 0, 0

    def scores(images: list[np.ndarray]) -> list[np.ndarray]:
        nonlocal passes, run_images
        values: list[np.ndarray] = []
        for chunk in _chunks(images, batch):
            imgs = list(chunk) + [chunk[-1]] * (batch - len(chunk))
            values.extend(score(run(np.stack(imgs)))[: len(chunk)])
            passes += 1
        run_images += len(images)
        return values

    ends = [x] + [bases[n] for n in names]
    fill = -(-len(ends) // batch) * batch - len(ends)  # the rest of the first pass(es): interior steps
    head = scores(ends + [image(t, bases[names[0]]) for t in tasks[:fill]])
    end_scores, values = head[: len(ends)], head[len(ends) :]
    moved = {n: np.asarray(end_scores[0]) - np.asarray(end_scores[1 + r]) for r, n in enumerate(names)}
    found = choose_replacement(moved, informative)
    chosen = found or names[0]  # none can tell: the curves under the first, the verdict "uninformative"
    if chosen == names[0]:
        values += scores([image(t, bases[chosen]) for t in tasks[fill:]])
    else:
        values = scores([image(t, bases[chosen]) for t in tasks])
    tried = names[: names.index(found) + 1] if found else names
    k = np.asarray(end_scores[0]).shape[0]
    dele = np.zeros((len(orders), steps + 1, k))
    ins = np.zeros((len(orders), steps + 1, k))
    start, stop = end_scores[0], end_scores[1 + names.index(chosen)]
    dele[:, 0], dele[:, steps], ins[:, 0], ins[:, steps] = start, stop, stop, start
    for (o, s, insertion), v in zip(tasks, values):
        (ins if insertion else dele)[o, s] = v
    return ([Curve(dele[w], ins[w]) for w in which], passes, run_images, chosen, {n: moved[n] for n in tried})


def measure(
    model: Any,
    head: Head,
    inputs: np.ndarray,
    heatmaps: dict[str, np.ndarray],
    target: Target,
    outputs: np.ndarray,
    feeds: Any = None,
    seed: int = 0,
    batch: int | None = None,
    progress: Callable[..., Any] | None = None,
    steps: int = STEPS,
    informative: float = INFORMATIVE,
) -> Faithfulness:
    """Deletion and insertion curves of every method's maps and of the baselines, for every image.

    ``inputs``: (N, H, W, C) model inputs; ``heatmaps``: method -> (N, K, h, w) CAMs; ``target`` and
    ``outputs``: what the CAMs explained and the model's output on ``inputs`` (``CamResult``'s).
    ``informative``: the margin by which replacing every pixel must move the score
    (:func:`choose_replacement`), decided from each image's first pass (:func:`curves_for`).
    """
    started = time.perf_counter()
    x_all = np.asarray(inputs, dtype=np.float32)
    n, height, width = x_all.shape[:3]
    methods = list(heatmaps)
    k = next(iter(heatmaps.values())).shape[1]
    layer_shape = next(iter(heatmaps.values())).shape[2:]
    if batch is None:
        batch = graph.images_per_batch(model, BATCH_BYTES)
    maps_per_image = len(methods) * k + RANDOM_DRAWS + 1
    batch = chunk_size(images_needed(maps_per_image, steps), batch)
    sigma = blur_sigma(height, width)
    out = Faithfulness(methods=methods, blur_sigma=sigma, steps=steps, informative=informative)
    run = inference(model, head, feeds)
    bar = progress(range(n), desc="CAM faithfulness") if progress else range(n)
    for i in bar:
        rng = np.random.default_rng([seed, i])
        tiebreak = rng.permutation(height * width).reshape(height, width)  # one ranking for every map
        randoms = [rng.uniform(0.0, 1.0, layer_shape).astype(np.float32) for _ in range(RANDOM_DRAWS)]
        maps = [heatmaps[m][i, j] for m in methods for j in range(k)] + randoms + [edge_map(x_all[i])]
        score = scorer(model, head, target, outputs, i)
        bases = {
            name: make(x_all[i], sigma, np.random.default_rng([seed, i, 1]))
            for name, make in REPLACEMENTS.items()
        }
        curves, passes, images, use, moved = curves_for(
            run, x_all[i], maps, score, batch, tiebreak, sigma, steps, bases=bases, informative=informative
        )
        out.forward_passes += passes
        out.perturbed_images += images
        per_class = lambda c, j: Curve(c.deletion[:, j], c.insertion[:, j])  # noqa: E731
        ic = ImageCurves(
            replacement=use,
            moved={t: [float(v) for v in m] for t, m in moved.items()},
            constant={m: [bool(np.ptp(heatmaps[m][i, j]) == 0) for j in range(k)] for m in methods},
        )
        for a, m in enumerate(methods):
            ic.cams[m] = [per_class(curves[a * k + j], j) for j in range(k)]
        drawn = curves[len(methods) * k : len(methods) * k + RANDOM_DRAWS]
        mean = Curve(
            np.mean([c.deletion for c in drawn], axis=0), np.mean([c.insertion for c in drawn], axis=0)
        )
        ic.random = [per_class(mean, j) for j in range(k)]
        ic.edge = [per_class(curves[-1], j) for j in range(k)]
        out.images.append(ic)
    out.seconds = time.perf_counter() - started
    return out


def for_report(
    model: Any,
    cams: Any,
    images: Sequence[Any],
    feeds: Any = None,
    *,
    seed: int = 0,
    progress: Callable[..., Any] | None = None,
    steps: int | None = None,
    informative: float = INFORMATIVE,
) -> Faithfulness:
    """The analysis (``results.faithfulness``): every method's CAMs of the report against the baselines.

    ``steps``: ``--faithfulness-steps`` (0: not measured); None: fitted to the model's cost
    (:func:`fitted_steps`), and not measured where even 5 steps are over the budget.
    """
    if cams is None or not cams.results:
        return Faithfulness(steps=0, note="not measured: the report has no class activation maps")
    if steps == 0:
        return Faithfulness(steps=0, note="not measured: --faithfulness-steps 0")
    first = cams.first
    x = np.stack([np.asarray(im.input, dtype=np.float32) for im in images])
    heatmaps = {m: r.heatmaps for m, r in cams.results.items()}
    maps = len(heatmaps) * next(iter(heatmaps.values())).shape[1] + RANDOM_DRAWS + 1
    flops = forward_flops(model, x.shape[1], x.shape[2])
    source = "option" if steps is not None else "fitted"
    if steps is None:
        steps = fitted_steps(flops, maps)
        if steps == 0:
            fewest = min(STEP_CHOICES)
            need = images_needed(maps, fewest) * flops
            return Faithfulness(
                steps=0,
                steps_source=source,
                flops_per_image=need,
                note=f"not measured by default: its shortest protocol ({fewest} steps, "
                f"{images_needed(maps, fewest)} perturbed images per image) costs {need / 1e12:.1f} TFLOP of "
                f"forward passes per image, over the default budget of {BUDGET_FLOPS / 1e12:.1f} TFLOP; "
                f"--faithfulness-steps {fewest} (or up to {STEPS}) measures it",
            )
    out = measure(
        model,
        cams.head,
        x,
        heatmaps,
        first.target,
        first.outputs,
        feeds,
        seed,
        progress=progress,
        steps=steps,
        informative=informative,
    )
    out.steps_source = source
    out.score = score_name(cams.head, _bounded_map(model, cams.head) if cams.head.is_map else False)
    out.flops_per_image = None if flops is None else images_needed(maps, steps) * flops
    out.layer = cams.layer
    out.stand_in = all(getattr(im, "stand_in", False) for im in images)
    return out


def advantage(result: Faithfulness, method: str, k: int = 0) -> dict[str, float]:
    """Mean over the images of insertion AUC - deletion AUC for ``method`` and each baseline (class ``k``):
    the larger, the more faithful; one number that needs both curves to agree."""

    def gap(pick_curve: Callable[[ImageCurves], Curve]) -> float:
        return float(
            np.mean([pick_curve(ic).insertion_auc - pick_curve(ic).deletion_auc for ic in result.images])
        )

    return {
        "cam": gap(lambda ic: ic.cams[method][k]),
        "random": gap(lambda ic: ic.random[k]),
        "edge": gap(lambda ic: ic.edge[k]),
    }


# --- the verdict ---------------------------------------------------------------------------------------

_BASELINE_WORDS = {"random": "a random map", "edge": "the Sobel edges of the image"}


@dataclass(frozen=True)
class Verdict:
    """What a faithfulness test says of a map: one of :data:`VERDICTS`, why (with the numbers), and the map's
    lead over the better baseline where the test could tell."""

    verdict: str
    why: str
    lead: float | None = None
    baseline: str | None = None  # "random" or "edge": the better of the two

    def to_json(self) -> dict:
        return {"verdict": self.verdict, "why": self.why}


def judge(gaps: dict[str, float], aucs: Sequence[float], margin: float, band: float = FLAT_BAND) -> Verdict:
    """The verdict on curves that could tell (the fully replaced image moved the score): ``uninformative``
    when every AUC -- the map's and the baselines' -- lies within ``band``; else ``faithful`` when the map's
    insertion - deletion AUC (``gaps["cam"]``) leads the better baseline's by more than ``margin``, and
    ``not better than random`` when it does not."""
    lo, hi = float(min(aucs)), float(max(aucs))
    if hi - lo <= band:
        return Verdict(
            "uninformative",
            f"every AUC, the map's and the baselines', lies within {hi - lo:.3f} "
            f"({lo:.3f} to {hi:.3f}; a band of {band} or less tells no map from another)",
        )
    baseline = "edge" if gaps["edge"] >= gaps["random"] else "random"
    lead = float(gaps["cam"] - gaps[baseline])
    numbers = (
        f"insertion - deletion AUC {gaps['cam']:.2f} against {gaps[baseline]:.2f} for "
        f"{_BASELINE_WORDS[baseline]}: a lead of {lead:+.2f}"
    )
    if lead > margin:
        return Verdict("faithful", f"{numbers}, over the {margin} needed", lead, baseline)
    return Verdict("not better than random", f"{numbers}, not over the {margin} needed", lead, baseline)


def _gaps(ic: ImageCurves, method: str, k: int) -> tuple[dict[str, float], list[float]]:
    s = ic.scores(method, k)
    gaps = {
        "cam": s["insertion_auc"] - s["deletion_auc"],
        "random": s["random_insertion_auc"] - s["random_deletion_auc"],
        "edge": s["edge_insertion_auc"] - s["edge_deletion_auc"],
    }
    return gaps, [s[key] for key in KEYS]


def _names(words: Sequence[str]) -> str:
    return ", ".join(w.replace("_", " ") for w in words)


def _uninformative_why(ic: ImageCurves, k: int, informative: float) -> str | None:
    """Why image ``ic``'s test cannot tell for class ``k``: no replacement moved its score (None: one did)."""
    moved = ic.moved.get(ic.replacement)
    if moved is not None and abs(moved[k]) >= informative:
        return None
    tried = ", ".join(f"{name.replace('_', ' ')} {abs(v[k]):.3f}" for name, v in ic.moved.items())
    return (
        f"replacing every pixel moves the score too little to tell anything ({tried}; {informative} needed)"
    )


def entry_verdict(
    ic: ImageCurves,
    method: str,
    k: int,
    margin: float,
    band: float = FLAT_BAND,
    informative: float = INFORMATIVE,
) -> Verdict:
    """The verdict on one map (one image, one explained class)."""
    if ic.constant.get(method, [False] * (k + 1))[k]:
        return Verdict(
            "uninformative",
            "the map is constant: it ranks no pixel above another (its order would "
            "be the seeded tie-break's)",
        )
    why = _uninformative_why(ic, k, informative)
    if why is not None:
        return Verdict("uninformative", why)
    gaps, aucs = _gaps(ic, method, k)
    return judge(gaps, aucs, margin, band)


def method_verdict(
    result: Faithfulness, method: str, margin: float, band: float = FLAT_BAND, k: int = 0
) -> tuple[Verdict, int]:
    """The verdict on a method over the images (their first explained class): only the images whose test
    could tell count (a map that is not constant, a replacement that moved the score, curves that are not
    flat: :func:`entry_verdict`). Returns (verdict, images judged)."""
    usable = [
        ic
        for ic in result.images
        if entry_verdict(ic, method, k, margin, band, result.informative).verdict != "uninformative"
    ]
    n = len(result.images)
    if not usable:
        constant = sum(ic.constant.get(method, [False] * (k + 1))[k] for ic in result.images)
        still = sum(_uninformative_why(ic, k, result.informative) is not None for ic in result.images)
        parts = []
        if constant:
            parts.append(f"{constant} constant map(s), which rank no pixel above another")
        if still:
            worst = max(
                (max(abs(v[k]) for v in ic.moved.values()) for ic in result.images if ic.moved), default=0.0
            )
            parts.append(
                f"{still} image(s) whose score no replacement ({_names(REPLACEMENTS)}) moved by "
                f"{result.informative} (at most {worst:.3f})"
            )
        flat = n - constant - still
        if flat > 0:
            parts.append(f"{flat} image(s) whose curves, the map's and the baselines', are flat")
        return Verdict("uninformative", f"no image's test could tell: {'; '.join(parts)}"), 0
    per = [_gaps(ic, method, k) for ic in usable]
    gaps = {key: float(np.mean([g[key] for g, _a in per])) for key in ("cam", "random", "edge")}
    aucs = [float(np.mean([a[j] for _g, a in per])) for j in range(len(KEYS))]
    verdict = judge(gaps, aucs, margin, band)
    return Verdict(
        verdict.verdict,
        f"{verdict.why} (mean over {len(usable)} of {n} image(s) whose test could tell)",
        verdict.lead,
        verdict.baseline,
    ), len(usable)


def score_name(head: Head, bounded_map: bool = False) -> str:
    """What the curves measure, in words (report.json's ``gradcam.faithfulness.score``)."""
    if head.kind == "pixel-softmax":
        return "the explained class' softmax probability, averaged over the pixels it wins"
    if head.is_map:
        return "the explained mean of the output map" + ("" if bounded_map else ", through a sigmoid")
    if head.is_binary:
        return "the explained class' sigmoid probability (the model's own output)"
    if head.kind == "softmax":
        return "the explained class' softmax probability (the model's own output)"
    if head.kind == "sigmoid":
        return "the explained class' sigmoid probability (the model's own output)"
    return "the sigmoid of the explained raw output (the model's output is not a probability)"
