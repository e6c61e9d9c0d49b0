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
- **replacement**: a Gaussian-blurred copy of the image (sigma = :data:`BLUR` x the shorter side),
  in the model's input space (blurring commutes with every per-channel affine preprocessing);
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
BATCH_BYTES = 512 << 20  # activations of one forward pass (the forward-only rule of images_per_batch)
KEYS = ("deletion_auc", "insertion_auc", "random_deletion_auc", "random_insertion_auc",
        "edge_deletion_auc", "edge_insertion_auc")


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

    def scores(self, method: str, k: int) -> dict[str, float]:
        """The six AUCs of report.json's ``faithfulness`` entry for ``method`` and explained class ``k``."""
        c, r, e = self.cams[method][k], self.random[k], self.edge[k]
        return {"deletion_auc": c.deletion_auc, "insertion_auc": c.insertion_auc,
                "random_deletion_auc": r.deletion_auc, "random_insertion_auc": r.insertion_auc,
                "edge_deletion_auc": e.deletion_auc, "edge_insertion_auc": e.insertion_auc}


@dataclass
class Faithfulness:
    """Every image's curves, and what measuring them cost."""

    images: list[ImageCurves] = field(default_factory=list)
    methods: list[str] = field(default_factory=list)
    blur_sigma: float = 0.0  # in pixels of the input
    steps: int = STEPS
    steps_source: str = "option"  # "fitted" (to the model's cost, BUDGET_FLOPS) or "option" (--faithfulness-steps)
    flops_per_image: float | None = None  # forward-pass FLOPs of one image's curves (estimated from the layers)
    forward_passes: int = 0
    perturbed_images: int = 0
    seconds: float = 0.0
    note: str | None = None  # why nothing was measured
    layer: str | None = None  # the CAM layer, for the finding
    stand_in: bool = False  # every image is reportgen's stand-in photo, not the model's data

    def protocol(self) -> dict:
        """The protocol as report.json states it (``gradcam.faithfulness``)."""
        return {"steps": self.steps, "steps_source": self.steps_source,
                "forward_flops_per_image": None if self.flops_per_image is None else float(self.flops_per_image),
                "budget_flops_per_image": float(BUDGET_FLOPS), "replacement": "gaussian_blur", "blur_sigma": self.blur_sigma,
                "random_draws": RANDOM_DRAWS, "order": "map upsampled to the input, strongest first; "
                "ties by one seeded random ranking per image", "score": "probability of the explained class "
                "(sigmoid of a raw score)", "forward_passes": self.forward_passes,
                "perturbed_images": self.perturbed_images, "seconds": round(self.seconds, 3), "note": self.note}


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


def perturbed(x: np.ndarray, base: np.ndarray, order: np.ndarray, step: int, insertion: bool,
              steps: int = STEPS) -> np.ndarray:
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


def scorer(model: Any, head: Head, target: Target, outputs: np.ndarray, index: int) -> Callable[[np.ndarray], np.ndarray]:
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
            return backend.numpy(compiled(backend.tensor(np.asarray(batch, dtype=np.float32)))).astype(np.float64)

    return run


# --- the measurement ---------------------------------------------------------------------------------

def _tasks(orders: Sequence[Any], steps: int = STEPS) -> list[tuple[int, int, bool]]:
    """(order, step, insertion) of every image to run: the two end points, the image and its blurred copy
    (``(-1, 0, False)`` and ``(-1, steps, False)``), shared by every curve and run once, then the interior
    steps of each order's two curves."""
    return [(-1, 0, False), (-1, steps, False)] + [
        (o, s, ins) for o in range(len(orders)) for ins in (False, True) for s in range(1, steps)]


def images_needed(maps: int, steps: int) -> int:
    """Perturbed images of one report image with ``maps`` maps (no two alike) at ``steps`` steps."""
    return 2 + 2 * (steps - 1) * maps


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


def _chunks(items: Sequence, size: int) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start: start + size]


def chunk_size(images: int, batch: int) -> int:
    """Images per forward pass for ``images`` images at most ``batch`` at a time, the passes as even as they
    can be (:func:`reportgen.graph.even_batches`), so that padding the last one to the same size (one
    compiled shape for the whole measurement: a second batch size traces the model again, seconds on a
    large one) wastes less than one image per pass."""
    return graph.even_batches(images, batch)


def curves_for(run: Callable[[np.ndarray], np.ndarray], x: np.ndarray, maps: list[np.ndarray],
               score: Callable[[np.ndarray], np.ndarray], batch: int, tiebreak: np.ndarray,
               sigma: float, steps: int = STEPS) -> tuple[list[Curve], int, int]:
    """Deletion and insertion curves (per explained class) of each map in ``maps`` on one image ``x``.

    Every pass holds exactly ``batch`` images (the last one padded by repeating its last image), so the
    compiled inference sees one shape. Returns ([per map: a Curve whose arrays are (steps + 1, K)],
    forward passes, images run). Maps that rank the pixels alike are measured once.
    """
    base = blurred(x, sigma)
    orders, which, seen = [], [], {}
    for m in maps:
        order = pixel_order(m, tiebreak)
        key = order.tobytes()
        if key not in seen:
            seen[key] = len(orders)
            orders.append(order)
        which.append(seen[key])
    tasks = _tasks(orders, steps)

    def image(task: tuple[int, int, bool]) -> np.ndarray:
        o, s, insertion = task
        if o < 0:
            return x if s == 0 else base
        return perturbed(x, base, orders[o], s, insertion, steps)

    values: list[np.ndarray] = []
    passes = 0
    for chunk in _chunks(tasks, batch):
        imgs = [image(t) for t in chunk]
        imgs += [imgs[-1]] * (batch - len(imgs))
        values.extend(score(run(np.stack(imgs)))[: len(chunk)])
        passes += 1
    k = values[0].shape[0]
    dele = np.zeros((len(orders), steps + 1, k))
    ins = np.zeros((len(orders), steps + 1, k))
    ends, values = values[:2], values[2:]
    dele[:, 0], dele[:, steps], ins[:, 0], ins[:, steps] = ends[0], ends[1], ends[1], ends[0]
    for (o, s, insertion), v in zip(tasks[2:], values):
        (ins if insertion else dele)[o, s] = v
    return [Curve(dele[w], ins[w]) for w in which], passes, len(tasks)


def measure(model: Any, head: Head, inputs: np.ndarray, heatmaps: dict[str, np.ndarray], target: Target,
            outputs: np.ndarray, feeds: Any = None, seed: int = 0, batch: int | None = None,
            progress: Callable[..., Any] | None = None, steps: int = STEPS) -> Faithfulness:
    """Deletion and insertion curves of every method's maps and of the baselines, for every image.

    ``inputs``: (N, H, W, C) model inputs; ``heatmaps``: method -> (N, K, h, w) CAMs; ``target`` and
    ``outputs``: what the CAMs explained and the model's output on ``inputs`` (``CamResult``'s).
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
    out = Faithfulness(methods=methods, blur_sigma=sigma, steps=steps)
    run = inference(model, head, feeds)
    bar = progress(range(n), desc="CAM faithfulness") if progress else range(n)
    for i in bar:
        rng = np.random.default_rng([seed, i])
        tiebreak = rng.permutation(height * width).reshape(height, width)  # one ranking for every map
        randoms = [rng.uniform(0.0, 1.0, layer_shape).astype(np.float32) for _ in range(RANDOM_DRAWS)]
        maps = [heatmaps[m][i, j] for m in methods for j in range(k)] + randoms + [edge_map(x_all[i])]
        score = scorer(model, head, target, outputs, i)
        curves, passes, images = curves_for(run, x_all[i], maps, score, batch, tiebreak, sigma, steps)
        out.forward_passes += passes
        out.perturbed_images += images
        per_class = lambda c, j: Curve(c.deletion[:, j], c.insertion[:, j])  # noqa: E731
        ic = ImageCurves()
        for a, m in enumerate(methods):
            ic.cams[m] = [per_class(curves[a * k + j], j) for j in range(k)]
        drawn = curves[len(methods) * k: len(methods) * k + RANDOM_DRAWS]
        mean = Curve(np.mean([c.deletion for c in drawn], axis=0), np.mean([c.insertion for c in drawn], axis=0))
        ic.random = [per_class(mean, j) for j in range(k)]
        ic.edge = [per_class(curves[-1], j) for j in range(k)]
        out.images.append(ic)
    out.seconds = time.perf_counter() - started
    return out


def for_report(model: Any, cams: Any, images: Sequence[Any], feeds: Any = None, seed: int = 0,
               progress: Callable[..., Any] | None = None, steps: int | None = None) -> Faithfulness:
    """The analysis (``ctx.faithfulness``): every method's CAMs of the report against the baselines.

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
                steps=0, steps_source=source, flops_per_image=need,
                note=f"not measured by default: its shortest protocol ({fewest} steps, "
                     f"{images_needed(maps, fewest)} perturbed images per image) costs {need / 1e12:.1f} TFLOP of "
                     f"forward passes per image, over the default budget of {BUDGET_FLOPS / 1e12:.1f} TFLOP; "
                     f"--faithfulness-steps {fewest} (or up to {STEPS}) measures it")
    out = measure(model, cams.head, x, heatmaps, first.target, first.outputs, feeds, seed, progress=progress,
                  steps=steps)
    out.steps_source = source
    out.flops_per_image = None if flops is None else images_needed(maps, steps) * flops
    out.layer = cams.layer
    out.stand_in = all(getattr(im, "stand_in", False) for im in images)
    return out


def advantage(result: Faithfulness, method: str, k: int = 0) -> dict[str, float]:
    """Mean over the images of insertion AUC - deletion AUC for ``method`` and each baseline (class ``k``):
    the larger, the more faithful; one number that needs both curves to agree."""
    def gap(pick_curve: Callable[[ImageCurves], Curve]) -> float:
        return float(np.mean([pick_curve(ic).insertion_auc - pick_curve(ic).deletion_auc for ic in result.images]))

    return {"cam": gap(lambda ic: ic.cams[method][k]), "random": gap(lambda ic: ic.random[k]),
            "edge": gap(lambda ic: ic.edge[k])}
