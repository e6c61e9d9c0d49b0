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
from reportgen.analyses.patterns.objective import Objective
from reportgen.inputs import Feeds
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
RISE_TOLERANCE = 1e-6


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

    @property
    def rose(self) -> int:
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
        }


# --- helpers -----------------------------------------------------------------------


def dead_filters(filters: Sequence[int], start: np.ndarray, end: np.ndarray) -> list[int]:
    """Filters whose objective did not rise during the ascent.

    Relative to the activation's own scale: deep layers of an untrained
    network output ~1e-6 and still rise by tens of percent. With the
    pre-activation objective only a filter with an all-zero kernel stays flat.
    """
    start = np.asarray(start, dtype=np.float64)
    end = np.asarray(end, dtype=np.float64)
    tol = RISE_TOLERANCE * np.maximum(np.abs(start), np.abs(end))
    return [int(f) for f, s, e, t in zip(filters, start, end, tol)
            if not np.isfinite(e) or not (e - s > t and e > s)]


STARTS = ("grey", "noise")


def start_pixels(filters: Sequence[int], size: int, channels: int, seed: int, start: str = "grey") -> np.ndarray:
    """The start image, one per filter: the tutorial's grey ``128 + 20 * U[0, 1)``, or ``noise`` (``255 * U[0, 1)``).

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
    m = np.stack([pre.forward(np.eye(channels, dtype=np.float32)[k].reshape(1, 1, channels)).reshape(channels) - b
                  for k in range(channels)])
    return m.astype(np.float32), b.astype(np.float32)


def pixel_step(pre: Preprocessor, channels: int) -> float:
    """One pixel unit in the model's input space (the tutorial's step of 1)."""
    m, _ = affine_of(pre, channels)
    return float(np.mean(np.abs(m[np.abs(m) > 0]))) if np.any(m) else 1.0


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
    most = max(1, min(n_filters, cap, budget // max(1, bytes_per_image)))
    chunks = math.ceil(n_filters / most)
    return math.ceil(n_filters / chunks)


# --- the styles ----------------------------------------------------------------------


class Style:
    """One way of parameterising and stepping the image; the loop in :func:`filter_patterns` is shared."""

    name = ""

    def __init__(self, objective: Objective, chunk: int, preprocessor: Preprocessor, jit: bool | None,
                 start: str = "grey") -> None:
        self.objective = objective
        self.start = start
        self.chunk = chunk
        self.preprocessor = preprocessor
        self.jit = jit
        self.variables = list(objective.model.variables)

    def compile(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        return backend.function(fn, self.variables, self.jit)

    def run(self, filters: list[int], steps: int, seed: int,
            tick: Callable[[int], None] | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(display pixels uint8, objective at the start, at the end) for one chunk of filters."""
        raise NotImplementedError


class Classic(Style):
    """Chollet's ascent: normalised gradient steps of one pixel unit from a grey, slightly noisy image."""

    name = "classic"

    def __init__(self, objective: Objective, chunk: int, preprocessor: Preprocessor, jit: bool | None,
                 start: str = "grey") -> None:
        from keras import ops

        super().__init__(objective, chunk, preprocessor, jit, start)
        step = pixel_step(preprocessor, objective.channels)

        def loss(x: Any, filters: Any) -> tuple[Any, Any]:
            per = objective(x, filters, chunk)
            return ops.sum(per), per

        value_and_grad = backend.grad(loss)

        def ascend(x: Any, filters: Any) -> tuple[Any, Any]:
            _value, per, g = value_and_grad(x, filters)
            rms = ops.sqrt(ops.mean(ops.square(g), axis=(1, 2, 3), keepdims=True))
            return x + step * g / (rms + 1e-5), per

        def measure(x: Any, filters: Any) -> Any:
            with backend.no_grad():
                return objective(x, filters, chunk)

        self._ascend, self._measure = self.compile(ascend), self.compile(measure)

    def run(self, filters: list[int], steps: int, seed: int,
            tick: Callable[[int], None] | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pre = self.preprocessor
        f = backend.tensor(np.asarray(filters, dtype=np.int32), "int32")
        x = backend.tensor(pre.forward(start_pixels(filters, self.objective.size, self.objective.channels, seed,
                                                    self.start)))
        start = backend.numpy(self._measure(x, f))
        for _ in range(steps):
            x, _per = self._ascend(x, f)
            if tick is not None:
                tick(len(filters))
        end = backend.numpy(self._measure(x, f))
        return deprocess(backend.numpy(x), pre), start, end


def styles() -> dict[str, type[Style]]:
    from reportgen.analyses.patterns.robust import Robust

    return {"classic": Classic, "robust": Robust}


STYLES = PATTERN_STYLES


def filter_patterns(
    model: Any,
    path: str,
    filters: Sequence[int],
    size: int,
    steps: int,
    preprocessor: Preprocessor,
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
) -> PatternResult:
    """The patterns of ``filters`` of the conv layer at ``path``, batched.

    ``tick(n)`` is called after every step with the number of filters that
    step advanced (for a progress bar). KeyboardInterrupt propagates.
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
    with allocator_tuned():
        runner = styles()[style](target, chunk, preprocessor, jit, start)
        for lo in range(0, len(filters), chunk):
            idx = filters[lo: lo + chunk]
            px, s, e = runner.run(idx, steps, seed, tick)
            images[lo: lo + len(idx)] = px
            a_start[lo: lo + len(idx)] = s
            a_end[lo: lo + len(idx)] = e
        flat = dead_filters(filters, a_start, a_end)
        if flat and retry_flat and style == "classic" and start == "grey":
            # A filter whose input channels are all silent on grey (an upstream ReLU) has no
            # gradient from the grey start; a noise start reaches it if anything does.
            again = styles()[style](target, min(chunk, len(flat)), preprocessor, jit, "noise")
            where = {f: i for i, f in enumerate(filters)}
            for lo in range(0, len(flat), again.chunk):
                idx = flat[lo: lo + again.chunk]
                px, s, e = again.run(idx, steps, seed, None)
                for j, f in enumerate(idx):
                    if not dead_filters([f], s[j:j + 1], e[j:j + 1]):
                        i = where[f]
                        images[i], a_start[i], a_end[i] = px[j], s[j], e[j]
    return PatternResult(
        path=path, filters=filters, images=images, activation_start=a_start, activation_end=a_end,
        size=size, steps=steps, style=style, seed=seed, objective=objective, chunk=chunk,
        seconds=time.perf_counter() - t0, dead=dead_filters(filters, a_start, a_end),
    )
