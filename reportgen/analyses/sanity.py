"""CAM sanity check: the cascading model-parameter randomisation test.

Adebayo et al. (2018), "Sanity Checks for Saliency Maps": an explanation that
stays the same when the model's learned weights are replaced by random ones
does not explain what the model learned (it may just be an edge detector).
The test re-initialises the weights from the top of the model down,
cumulatively, recomputes the explanation after each step and measures how
similar it stays to the original (Spearman rank correlation, as in the paper).

Cost bound: instead of one step per layer, the weighted layers are grouped by
stage (a run of layers at one spatial resolution, the dense head being one
stage), top down, and at most ``max_steps`` steps are taken (the lowest stages
are merged into the last step). Each step is one CAM pass over a few images.

The user's model is never modified and never copied: the randomised weights
are fresh draws from each layer's own initialisers
(:mod:`reportgen.analyses.baseline`), substituted for the trained ones inside
a ``keras.StatelessScope`` for the length of one pass. A layer's draw is kept for
the later steps (which randomise it again, with the same seed) up to
``KEEP_DRAWS_BYTES`` in all; beyond that, one layer's values at a time in memory
beyond the model itself. The explained targets are the
original model's (its top classes, or the mean of its output map) at every
step, as in the paper. It runs for each chosen CAM method.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from reportgen import graph


@dataclass
class SanityResult:
    """The cascade: original heatmaps, each step's heatmaps and their rank correlations."""

    layer: str  # the CAM target layer
    class_indices: np.ndarray  # (N,) the class explained per image (the original model's top-1; -1: a map)
    original: np.ndarray  # (N, h, w)
    method: str = "gradcam"
    steps: list[str] = field(default_factory=list)  # short label per step
    step_layers: list[list[str]] = field(default_factory=list)  # layers re-initialised at each step
    heatmaps: np.ndarray | None = None  # (S, N, h, w)
    correlations: np.ndarray | None = None  # (S, N)

    @property
    def mean_correlations(self) -> np.ndarray:
        """Mean rank correlation over the images whose correlation is defined, per step (NaN: none is)."""
        if self.correlations is None or self.correlations.size == 0:
            return np.zeros(0)
        c = np.asarray(self.correlations, dtype=np.float64)
        defined = np.isfinite(c)
        sums = np.where(defined, c, 0.0).sum(axis=1)
        counts = defined.sum(axis=1)
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)

    @property
    def statistic(self) -> float | None:
        """The lowest mean rank correlation over the steps where it is defined (None where no step has
        one)."""
        m = self.mean_correlations
        m = m[np.isfinite(m)]
        return float(m.min()) if m.size else None

    def verdict(self, threshold: float) -> tuple[str, str]:
        """(``passed`` | ``failed`` | ``uninformative``, why): passed only where some step's maps were
        compared and fell to ``threshold`` or below; a constant original map, or steps whose rank correlation
        is undefined throughout (a constant map on either side), tell nothing."""
        n = len(self.original)
        constant = [bool(np.ptp(np.nan_to_num(np.asarray(m, dtype=np.float64))) == 0) for m in self.original]
        if n and all(constant):
            return "uninformative", (
                f"the original map is constant on every image ({n}): no evidence at this layer, "
                "so there is no ranking to compare"
            )
        if not self.steps:
            return (
                "uninformative",
                "no randomisation step ran (the model has no trained layer to re-initialise)",
            )
        stat = self.statistic
        if stat is None:
            return "uninformative", (
                "no step has a defined rank correlation: the randomised maps are constant "
                "(a map of one value ranks nothing)"
            )
        m = self.mean_correlations
        undefined = int((~np.isfinite(m)).sum())
        note = f"; {undefined} of {len(m)} steps undefined (constant maps)" if undefined else ""
        if stat > threshold:
            return "failed", (
                f"the maps still rank-correlate {stat:.2f} with the original at every step, above "
                f"{threshold}{note}"
            )
        return "passed", f"the lowest mean rank correlation is {stat:.2f}, at or below {threshold}{note}"

    def as_json(self, threshold: float | None = None) -> dict:
        def num(v: float) -> float | None:
            return float(v) if np.isfinite(v) else None

        out = {
            "method": self.method,
            "layer": self.layer,
            "class_indices": [int(c) for c in self.class_indices],
            "steps": [
                {
                    "label": label,
                    "layers": list(layers),
                    "rank_correlation": [num(c) for c in corr],
                    "mean_rank_correlation": num(mean),
                }
                for label, layers, corr, mean in zip(
                    self.steps,
                    self.step_layers,
                    self.correlations if self.correlations is not None else [],
                    self.mean_correlations,
                )
            ],
            "statistic": self.statistic,
        }
        if threshold is not None:
            out["verdict"], out["why"] = self.verdict(threshold)
        return out


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two heatmaps (flattened).

    A constant map carries no ranking, so the correlation is undefined (NaN): an all-zero map, on either
    side, is not evidence that the maps agree or differ (:meth:`SanityResult.verdict`).
    """
    from scipy.stats import spearmanr

    x = np.asarray(a, dtype=np.float64).ravel()
    y = np.asarray(b, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"heatmaps differ in shape: {np.shape(a)} vs {np.shape(b)}")
    x, y = np.nan_to_num(x), np.nan_to_num(y)
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(spearmanr(x, y).statistic)


def cascade_groups(model: Any, max_steps: int) -> list[tuple[str, list[str]]]:
    """Weighted layers grouped by stage, top down: [(label, [layer paths])], at most ``max_steps``.

    A stage is a run of consecutive layers with one output resolution; layers
    with a flat output (the dense head) form their own stage.
    """
    if max_steps <= 0:
        return []
    # A fixed preprocessing layer (Normalization) has nothing the model learned; the stages are the one
    # stage grouping of reportgen.graph.selection.
    refs = [r for r in graph.weighted_layers(model) if getattr(r.layer, "trainable_weights", None)]
    groups = [[r.path for r in run] for run in graph.model_stages(model, refs)]
    groups.reverse()
    if len(groups) > max_steps:
        merged = [p for g in reversed(groups[max_steps - 1 :]) for p in g]
        groups = groups[: max_steps - 1] + [merged]

    def label(paths: list[str]) -> str:
        first, final = paths[0].rsplit("/", 1)[-1], paths[-1].rsplit("/", 1)[-1]
        return first if first == final else f"{first}…{final}"

    return [(label(g), g) for g in groups]


KEEP_DRAWS_BYTES = 256 << 20  # fresh draws kept between the cascade's steps (beyond it: drawn again)


class Draws:
    """The fresh values of the layers a cascade has randomised, kept up to ``budget`` bytes.

    Each step re-runs every layer randomised so far with the same draws (the seeds
    depend only on the layer), so a layer drawn once need not be drawn again: the
    cascade's later steps drew the whole model again and again. Beyond the budget
    (VGG16's 411 MB fc1) a layer is drawn when it runs and dropped after it, as before.
    """

    def __init__(self, budget: int = KEEP_DRAWS_BYTES) -> None:
        self.budget, self.kept, self.used = budget, {}, 0

    def get(self, layer: Any, path: str, seed: int, shape: Any) -> list[np.ndarray] | None:
        from reportgen.analyses.baseline import fresh_values

        if path in self.kept:
            return self.kept[path]
        values = fresh_values(layer, path, seed, shape)
        size = sum(v.nbytes for v in values or [])
        if values and self.used + size <= self.budget:
            self.kept[path] = values
            self.used += size
        return values


def randomised(model: Any, paths: Sequence[str], seed: int, draws: Draws | None = None) -> dict[str, Any]:
    """Taps that run each layer at ``paths`` with fresh weights in place of its trained ones.

    The fresh values stand in for the layer's variables inside a
    ``keras.StatelessScope`` for that one call: the model is never modified. They
    are drawn when the layer runs and dropped after it, or, with ``draws``, kept
    for the next step up to its budget.
    """
    import keras

    from reportgen import backend
    from reportgen.graph import forward

    an = graph.anatomy(model)
    draws = draws if draws is not None else Draws(budget=0)
    refs = {r.path: r for r in an.layers}
    taps = {}
    for p in paths:
        ref = refs.get(p)

        def fresh_call(
            layer: Any,
            call: Any,
            *args: Any,
            _path: str = p,
            _shape: Any = ref.input_shape if ref else None,
            **kwargs: Any,
        ) -> Any:
            values = draws.get(layer, _path, seed, _shape)
            if not values:
                return call(*args, **kwargs)
            mapping = [(v, backend.from_numpy(a)) for v, a in zip(layer.weights, values)]
            with keras.StatelessScope(state_mapping=mapping):
                return call(*args, **kwargs)

        taps[p] = forward.Tap(replace=fresh_call, capture=False)
    return taps


def cascade(
    model: Any,
    layer_path: str,
    inputs: np.ndarray,
    max_steps: int = 6,
    method: str = "gradcam",
    seed: int = 0,
    progress: Callable[..., Any] | None = None,
    head: Any = None,
    feeds: Any = None,
    target: Any = None,
) -> SanityResult:
    """Run the cascading randomisation test for a CAM method at ``layer_path``.

    ``target`` defaults to each image's top-1 class under the trained model
    (or the mean of its output map), which stays the explained target at every
    step (as in the paper).
    """
    from reportgen.analyses import cam

    from reportgen.graph import forward

    head = head or cam.classifier_head(model)
    explainer = cam.method(method)(model, layer_path, head, feeds)
    x = np.asarray(inputs, dtype=np.float32)
    groups = cascade_groups(model, max_steps)
    # Each step re-runs only what lies above the layers it randomises: the rest of the network is as in
    # the first pass, which keeps the tensors the steps start from (the same numbers, less work).
    planned = [[p for _label, paths in groups[: i + 1] for p in paths] for i in range(len(groups))]
    explainer.reuse = forward.Reuse(planned)
    first = explainer.explain(x, target, top_k=1)
    target = first.target
    classes = getattr(target, "classes", None)
    classes = np.asarray(classes)[:, 0] if classes is not None else np.full(len(x), -1)
    original = first.heatmaps[:, 0]
    result = SanityResult(layer=layer_path, class_indices=classes, original=original, method=method)
    if not groups:
        result.heatmaps = np.zeros((0,) + original.shape, dtype=np.float32)
        result.correlations = np.zeros((0, len(x)))
        return result
    maps, corrs = [], []
    done: list[str] = []
    draws = Draws()
    steps = progress(groups, desc=f"sanity check ({method})", total=len(groups)) if progress else groups
    for label, paths in steps:
        done.extend(paths)
        explainer.extra_taps = randomised(model, done, seed + 1, draws)
        h = explainer.explain(x, target, top_k=1).heatmaps[:, 0]
        maps.append(h)
        corrs.append([rank_correlation(o, r) for o, r in zip(original, h)])
        result.steps.append(label)
        result.step_layers.append(list(paths))
    result.heatmaps = np.stack(maps)
    result.correlations = np.asarray(corrs, dtype=np.float64)
    return result


@dataclass
class SanitySet:
    """The cascade for each CAM method of the report, or why it did not run (``status``)."""

    status: str
    results: list[SanityResult] = field(default_factory=list)
    images: int = 0


def run_for(
    model: Any,
    cams: Any,
    images: Sequence[Any],
    methods: Sequence[str],
    t: Any,
    *,
    seed: int = 0,
    feeds: Any = None,
    progress: Any = None,
) -> SanitySet:
    """An analysis that needs the CAMs: re-run each method's maps as the weights are randomised."""
    if t.sanity_steps == 0:
        return SanitySet("not run: sanity_steps = 0 in the configuration")
    if cams is None or not cams.results:
        return SanitySet("not run: the report has no class activation maps")
    k = min(t.sanity_images, len(images))
    x = np.stack([np.asarray(im.input, dtype=np.float32) for im in images[:k]])
    out = SanitySet("run", images=k)
    for name in methods:
        out.results.append(
            cascade(
                model,
                cams.layer,
                x,
                max_steps=t.sanity_steps,
                method=name,
                seed=seed,
                progress=progress,
                head=cams.head,
                feeds=feeds,
            )
        )
    return out
