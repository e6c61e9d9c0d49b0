"""The batched gradient ascent: one base, one small class per style.

:class:`Style` owns what every style shares -- the chunks of filters, the
compiled step, the start and end measurements, the progress ticks -- and a
style says only how it parameterises the image and takes one step:

- :class:`Classic` (Chollet, *Deep Learning with Python* 5.4): start from a
  grey image with a little noise (``128 + 20 * U[0, 1)``), take steps of the
  gradient divided by its RMS ("L2 norm" in the book: the square root of the
  mean of the squares), one pixel unit a step, then deprocess (centre, std
  0.1, +0.5, clip, x255);
- :class:`~reportgen.analyses.patterns.robust.Robust` (Olah et al. 2017):
  a decorrelated Fourier-space image optimised with Adam under random jitter,
  scale and rotation.

The ascent works in the space the model receives (after ``--preprocess``);
the step is one pixel unit expressed in that space, and the display maps the
result back to pixels with the preprocessor's inverse before deprocessing.

Speed (docs/benchmarks.md): chunks sized to a memory budget and, on a CPU, to
the cache sweet spot (4-8 images of 150 px); one compiled step per chunk size
(:func:`reportgen.backend.function`); glibc's allocator kept warm
(:func:`allocator_tuned`).
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from reportgen import backend
from reportgen.analyses.patterns import rise
from reportgen.analyses.patterns.objective import Objective
from reportgen.graph.inputs import Feeds
from reportgen.graph.probe import even_batches, images_within
from reportgen.names import PATTERN_STYLES
from reportgen.preprocessing import Preprocessor

DEFAULT_MEMORY_BUDGET = 1 << 30  # bytes of activations per chunk (forward + backward), CPU
GPU_MEMORY_BUDGET = 8 << 30  # a GPU has its own memory; bigger batches keep it busy
# Images per chunk on a CPU: measured on VGG16 at 150 px (docs/benchmarks.md),
# 4-8 images are fastest (80% of the matmul rate at block3_conv1; 16: 74%, 2:
# 63%); bigger batches fall out of cache. Smaller images allow more per chunk:
# the cap is 8 images' worth of 150x150 pixels (at 64 px: 43 images).
CPU_CHUNK_PIXELS = 8 * 150 * 150
GPU_MAX_CHUNK = 256
RISE_TOLERANCE = rise.FLAT_TOLERANCE  # relative to the activation scale (reportgen.analyses.patterns.rise)


@dataclass
class PatternResult:
    """The patterns of one layer, in the order of ``filters``."""

    path: str
    filters: list[int]
    images: np.ndarray  # (n, size, size, channels) uint8 display pixels
    activation_start: np.ndarray  # (n,) mean objective of the start image
    activation_end: np.ndarray  # (n,) mean objective after the last step
    size: int
    steps: int
    style: str
    seed: int
    objective: str = "pre-activation"
    chunk: int = 1
    seconds: float = 0.0
    dead: list[int] = field(default_factory=list)  # filters whose objective did not rise
    start: str = "grey"  # the start image (a flat filter's retry starts from noise)
    step: float | None = None  # classic: one step's RMS change, in the model's input units
    keep_mean: bool = False  # steps keep each image's mean per channel (brightness fixed)
    retried: list[int] = field(default_factory=list)  # flat filters whose tile comes from a retry

    @property
    def rose(self) -> int:
        """Filters that rose at all (not flat); :func:`rise.rose` counts those that rose by a margin."""
        return len(self.filters) - len(self.dead)

    def to_json(self) -> dict:
        return {
            "filters": list(self.filters),
            "size": self.size,
            "steps": self.steps,
            "style": self.style,
            "seed": self.seed,
            "objective": self.objective,
            "activation_start": [float(v) for v in self.activation_start],
            "activation_end": [float(v) for v in self.activation_end],
            "dead": list(self.dead),
            "start": self.start,
            "step": None if self.step is None else float(f"{self.step:.6g}"),
            "keep_mean": self.keep_mean,
            "retried": list(self.retried),
        }


# --- helpers -----------------------------------------------------------------------


def dead_filters(
    filters: Sequence[int], start: np.ndarray, end: np.ndarray, tolerance: float = rise.FLAT_TOLERANCE
) -> list[int]:
    """Filters whose objective did not rise during the ascent.

    Relative to the activation's own scale (:func:`rise.flat`, the one
    definition; ``tolerance``: the configured ``pattern_min_rise``): deep layers
    of an untrained network output ~1e-6 and still rise by tens of percent. With
    the pre-activation objective only a filter with an all-zero kernel stays flat.
    """
    return [int(f) for f, is_flat in zip(filters, rise.flat(start, end, tolerance)) if is_flat]


STARTS = ("grey", "noise")
# RMS contrast of each start image in pixel units: uniform noise of width w has std w / sqrt(12).
START_CONTRAST = {"grey": 20.0 / math.sqrt(12.0), "noise": 255.0 / math.sqrt(12.0)}


def start_pixels(
    filters: Sequence[int], size: int, channels: int, seed: int, start: str = "grey"
) -> np.ndarray:
    """The start image, one per filter: the tutorial's grey ``128 + 20 * U[0, 1)``, or ``noise`` (``255 * U[0,
    1)``).

    Each filter's noise depends only on (seed, filter index), so a filter gets
    the same start whether it is optimised alone or in any chunk.
    """
    out = np.empty((len(filters), size, size, channels), dtype=np.float32)
    for i, f in enumerate(filters):
        rng = np.random.default_rng([int(seed), int(f)])
        if start == "noise":
            out[i] = rng.random((size, size, channels), dtype=np.float32) * 255.0
        else:
            out[i] = rng.random((size, size, channels), dtype=np.float32) * 20.0 + 128.0
    return out


def affine_of(pre: Preprocessor, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """``pre.forward`` as ``x @ M + b`` (every preprocessing mode is affine)."""
    zero = np.zeros((1, 1, channels), dtype=np.float32)
    b = pre.forward(zero).reshape(channels)
    m = np.stack(
        [
            pre.forward(np.eye(channels, dtype=np.float32)[k].reshape(1, 1, channels)).reshape(channels) - b
            for k in range(channels)
        ]
    )
    return m.astype(np.float32), b.astype(np.float32)


def pixel_step(pre: Preprocessor, channels: int) -> float:
    """One pixel unit in the model's input space (the tutorial's step of 1)."""
    m, _ = affine_of(pre, channels)
    return float(np.mean(np.abs(m[np.abs(m) > 0]))) if np.any(m) else 1.0


MIN_TRAVEL_STEPS = 20  # fewer steps than this take steps of this many's size (and travel less)


def step_size(pre: Preprocessor, channels: int, start: str, steps: int, travel: float | None = None) -> float:
    """One classic step's RMS change per pixel, in the model's input units.

    Without ``travel``: one pixel unit (the tutorial's step of 1, whatever the
    input's value range: 1/255 for a [0, 1] input, 1 for caffe-style). With
    ``travel``: the whole ascent moves each pixel, in RMS, ``travel`` times the
    start image's RMS contrast (:data:`START_CONTRAST`), spread evenly over the
    ``steps``, so that the start's noise is at most ~1/travel of what the
    mosaic shows, however many steps are taken; fewer than
    :data:`MIN_TRAVEL_STEPS` steps take steps of that many's size (a
    step of half the travel overshoots: with 2 steps, 3 of 16 deep-layer
    filters of the test models ended below their start). The step is
    normalised per pixel (gradient / its RMS), so it does not depend on the
    image size.
    """
    unit = pixel_step(pre, channels)
    if travel is None:
        return unit
    return unit * float(travel) * START_CONTRAST[start] / max(MIN_TRAVEL_STEPS, int(steps))


def deprocess(x: np.ndarray, pre: Preprocessor) -> np.ndarray:
    """Model input -> displayable uint8 pixels, the tutorial's way.

    Map back to pixels first (undoes channel order and per-channel scaling),
    then centre, scale to std 0.1 around 0.5, clip and convert to 0-255.
    """
    p = pre.inverse(np.asarray(x, dtype=np.float32)).astype(np.float64)
    axes = tuple(range(1, p.ndim)) if p.ndim == 4 else None
    p = p - p.mean(axis=axes, keepdims=True)
    p = p / (p.std(axis=axes, keepdims=True) + 1e-5)
    p = p * 0.1 + 0.5
    return (np.clip(p, 0.0, 1.0) * 255.0).astype(np.uint8)


@contextlib.contextmanager
def allocator_tuned() -> Iterator[None]:
    """Keep large freed blocks in glibc's heap while patterns are computed.

    By default glibc serves blocks over 128 KiB (adaptively up to 32 MiB)
    with mmap and returns them on free, so every step page-faults its
    activation tensors in anew: measured ~25 ms of system time per VGG16
    block3_conv1 image-step (of ~90 ms). Raising the thresholds makes freed
    blocks reusable; the defaults are restored (and the heap trimmed) after.
    Anything but Linux/glibc: a no-op.
    """
    libc = None
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL("libc.so.6")
            libc.mallopt  # noqa: B018 (probe)
        except (OSError, AttributeError):
            libc = None
    if libc is None:
        yield
        return
    m_trim, m_mmap, m_arena_max = -1, -3, -8
    libc.mallopt(m_arena_max, 1)
    libc.mallopt(m_mmap, 1 << 30)
    libc.mallopt(m_trim, 1 << 31)
    try:
        yield
    finally:
        libc.mallopt(m_mmap, 128 * 1024)
        libc.mallopt(m_trim, 128 * 1024)
        libc.mallopt(m_arena_max, 8 * (os.cpu_count() or 1))  # glibc's own limit on 64-bit
        with contextlib.suppress(AttributeError):
            libc.malloc_trim(0)


def chunk_size(n_filters: int, bytes_per_image: int, budget: int, gpu: bool, size: int = 150) -> int:
    """Images per batch: within the memory budget and the CPU's cache sweet spot, near-equal chunks."""
    cap = GPU_MAX_CHUNK if gpu else max(1, CPU_CHUNK_PIXELS // (size * size))
    return even_batches(n_filters, images_within(bytes_per_image, budget, most=min(n_filters, cap)))


# --- the styles ----------------------------------------------------------------------


class Style:
    """One way of parameterising and stepping the image; the loop in :func:`filter_patterns` is shared."""

    name = ""

    def __init__(
        self,
        objective: Objective,
        chunk: int,
        preprocessor: Preprocessor,
        jit: bool | None,
        start: str = "grey",
    ) -> None:
        self.objective = objective
        self.start = start
        self.chunk = chunk
        self.preprocessor = preprocessor
        self.jit = jit
        self.variables = list(objective.model.variables)

    def compile(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        return backend.function(fn, self.variables, self.jit)

    def run(
        self, filters: list[int], steps: int, seed: int, tick: Callable[[int], None] | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(display pixels uint8, objective at the start, at the end) for one chunk of filters."""
        raise NotImplementedError


class Classic(Style):
    """Chollet's ascent: normalised gradient steps (one pixel unit unless ``step``) from a grey, slightly
    noisy image.

    ``keep_mean``: each step's gradient loses its mean over the image per
    channel, so the ascent keeps every image's mean brightness and can only
    add structure (for a layer whose objective brightness alone would raise).
    ``keep_best``: each image ends as the best one its ascent met (its start
    included), so a step that overshoots cannot leave a filter below its
    start; the objective of each image the step saw comes with its gradient,
    so this costs an elementwise select per step, no extra pass.
    """

    name = "classic"

    def __init__(
        self,
        objective: Objective,
        chunk: int,
        preprocessor: Preprocessor,
        jit: bool | None,
        start: str = "grey",
        step: float | None = None,
        keep_mean: bool = False,
        keep_best: bool = False,
    ) -> None:
        from keras import ops

        super().__init__(objective, chunk, preprocessor, jit, start)
        step = pixel_step(preprocessor, objective.channels) if step is None else float(step)
        self.step, self.keep_mean, self.keep_best = step, keep_mean, keep_best

        def loss(x: Any, filters: Any) -> tuple[Any, Any]:
            per = objective(x, filters, chunk)
            return ops.sum(per), per

        value_and_grad = backend.grad(loss)

        def ascend(x: Any, filters: Any) -> tuple[Any, Any]:
            _value, per, g = value_and_grad(x, filters)
            if keep_mean:
                g = g - ops.mean(g, axis=(1, 2), keepdims=True)
            rms = ops.sqrt(ops.mean(ops.square(g), axis=(1, 2, 3), keepdims=True))
            return x + step * g / (rms + 1e-5), per

        def ascend_best(x: Any, filters: Any, best_x: Any, best: Any) -> tuple[Any, Any, Any]:
            moved, per = ascend(x, filters)
            per = ops.cast(per, "float32")
            better = per > best
            best_x = ops.where(ops.reshape(better, (-1, 1, 1, 1)), x, best_x)
            return moved, best_x, ops.where(better, per, best)

        def measure(x: Any, filters: Any) -> Any:
            with backend.no_grad():
                return objective(x, filters, chunk)

        self._ascend, self._measure = self.compile(ascend), self.compile(measure)
        self._ascend_best = self.compile(ascend_best) if keep_best else None

    def run(
        self, filters: list[int], steps: int, seed: int, tick: Callable[[int], None] | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pre = self.preprocessor
        f = backend.tensor(np.asarray(filters, dtype=np.int32), "int32")
        x = backend.tensor(
            pre.forward(start_pixels(filters, self.objective.size, self.objective.channels, seed, self.start))
        )
        start = backend.numpy(self._measure(x, f))
        if self._ascend_best is not None:
            best_x, best = x, backend.tensor(np.full(len(filters), -np.inf, dtype=np.float32))
        for _ in range(steps):
            if self._ascend_best is not None:
                x, best_x, best = self._ascend_best(x, f, best_x, best)
            else:
                x, _per = self._ascend(x, f)
            if tick is not None:
                tick(len(filters))
        end = backend.numpy(self._measure(x, f))
        pixels = backend.numpy(x)
        if self._ascend_best is not None:  # the last image, unless an earlier one (or the start) was better
            best_v, best_px = backend.numpy(best).astype(np.float64), backend.numpy(best_x)
            earlier = best_v > end
            pixels[earlier], end = best_px[earlier], np.where(earlier, best_v, end)
        return deprocess(pixels, pre), start, end


_REGISTRY: dict[str, type[Style]] = {}


def register(style: type[Style]) -> type[Style]:
    """A class decorator: ``style`` becomes ``--pattern-style style.name``. The base never imports a style;
    each style's module registers itself (the package imports them all)."""
    _REGISTRY[style.name] = style
    return style


def styles() -> dict[str, type[Style]]:
    """The registered styles, by name (every name of :data:`reportgen.names.PATTERN_STYLES`)."""
    return dict(_REGISTRY)


register(Classic)


STYLES = PATTERN_STYLES


def filter_patterns(
    model: Any,
    path: str,
    filters: Sequence[int],
    size: int,
    steps: int,
    preprocessor: Preprocessor,
    *,
    seed: int = 0,
    style: str = "classic",
    memory_budget: int | None = None,
    tick: Callable[[int], None] | None = None,
    jit: bool | None = None,
    max_chunk: int | None = None,
    objective: str = "pre-activation",
    feeds: Feeds | None = None,
    start: str = "grey",
    retry_flat: bool = True,
    travel: float | None = None,
    keep_mean: bool = False,
    tolerance: float = rise.FLAT_TOLERANCE,
) -> PatternResult:
    """The patterns of ``filters`` of the conv layer at ``path``, batched.

    ``tick(n)`` is called after every step with the number of filters that
    step advanced (for a progress bar). KeyboardInterrupt propagates.
    Classic style only: ``travel`` sets the step size (:func:`step_size`;
    None: one pixel unit a step, the tutorial's) and keeps each image's best
    iterate, ``keep_mean`` keeps each image's mean brightness (:class:`Classic`).
    """
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}")
    t0 = time.perf_counter()
    gpu = backend.accelerator() is not None
    target = Objective(model, path, size, feeds, objective)
    filters = target.check_filters(list(filters))
    if memory_budget is None:
        memory_budget = GPU_MEMORY_BUDGET if gpu else DEFAULT_MEMORY_BUDGET
    chunk = chunk_size(len(filters), target.bytes_per_image, memory_budget, gpu, size)
    if max_chunk:
        chunk = min(chunk, max_chunk)
    images = np.zeros((len(filters), size, size, target.channels), dtype=np.uint8)
    a_start = np.zeros(len(filters), dtype=np.float64)
    a_end = np.zeros(len(filters), dtype=np.float64)

    def make(start_: str, chunk_: int, travel_: float | None = travel) -> Style:
        if style == "classic":
            return Classic(
                target,
                chunk_,
                preprocessor,
                jit,
                start_,
                keep_mean=keep_mean,
                keep_best=travel_ is not None,
                step=step_size(preprocessor, target.channels, start_, steps, travel_),
            )
        return styles()[style](target, chunk_, preprocessor, jit, start_)

    retried: list[int] = []

    with allocator_tuned():
        runner = make(start, chunk)
        for lo in range(0, len(filters), chunk):
            idx = filters[lo : lo + chunk]
            px, s, e = runner.run(idx, steps, seed, tick)
            images[lo : lo + len(idx)] = px
            a_start[lo : lo + len(idx)] = s
            a_end[lo : lo + len(idx)] = e
        retries = []
        if retry_flat and style == "classic":
            if travel is not None:
                # Steps sized to the travel can overshoot a small bump (a random deep layer); the
                # tutorial's one pixel unit a step follows it.
                retries.append((start, None))
            if start == "grey":
                # A filter whose input channels are all silent on grey (an upstream ReLU) has no
                # gradient from the grey start; a noise start reaches it if anything does.
                retries.append(("noise", travel))
        where = {f: i for i, f in enumerate(filters)}
        for retry_start, retry_travel in retries:
            flat = dead_filters(filters, a_start, a_end, tolerance)
            if not flat:
                break
            again = make(retry_start, min(chunk, len(flat)), retry_travel)
            for lo in range(0, len(flat), again.chunk):
                idx = flat[lo : lo + again.chunk]
                px, s, e = again.run(idx, steps, seed, None)
                for j, f in enumerate(idx):
                    if not dead_filters([f], s[j : j + 1], e[j : j + 1], tolerance):
                        i = where[f]
                        images[i], a_start[i], a_end[i] = px[j], s[j], e[j]
                        retried.append(int(f))
    return PatternResult(
        path=path,
        filters=filters,
        images=images,
        activation_start=a_start,
        activation_end=a_end,
        size=size,
        steps=steps,
        style=style,
        seed=seed,
        objective=objective,
        chunk=chunk,
        seconds=time.perf_counter() - t0,
        dead=dead_filters(filters, a_start, a_end, tolerance),
        start=start,
        step=getattr(runner, "step", None),
        keep_mean=keep_mean and style == "classic",
        retried=sorted(retried),
    )
