"""Filter patterns: the input that maximises a conv filter's mean activation.

The classic algorithm is Chollet's (Deep Learning with Python, 5.4): start
from a grey image with a little noise, take ``steps`` gradient-ascent steps on
``mean(activation[..., filter])`` with the gradient divided by its RMS ("L2
norm" in the book: the square root of the mean of the squares) and a step of
one pixel unit, then deprocess (centre, std 0.1, +0.5, clip, x255).

What makes it fast (the cost is nothing but the network's forward and backward
passes, ~4 x multiply-adds up to the layer per filter and step):

- all filters of a layer ascend **together**, one image per filter in one
  batch, in chunks sized to a memory budget. Each image's loss depends only
  on its own activations (inference mode, no batch statistics), so the sum of
  the per-image losses has exactly the per-image gradients;
- the network runs **only up to the layer**: a prefix model ends at the
  target layer's *input*, and the target convolution itself is computed only
  for the chunk's filters (``kernel[..., chunk]``), not for all of its
  channels -- a 256-channel layer with a chunk of 8 costs 8/256 of its
  convolution. The selected diagonal (image b, filter b) is the loss;
- one compiled ``tf.function`` step (XLA is used on GPUs; on this 2-core CPU
  it measured slower than TensorFlow's oneDNN kernels, see docs/benchmarks.md);
- glibc's allocator would hand every multi-megabyte activation back to the
  kernel and fault it in again each step (~25% of the step time here as
  system time); :func:`_allocator_tuned` keeps those blocks in the heap while
  patterns are computed and restores the defaults afterwards.

The ascent works in the space the model receives (after ``--preprocess``);
the step is one pixel unit expressed in that space, and the display maps the
result back to pixels with the preprocessor's inverse before deprocessing.
Models that rescale or normalise inside simply receive their own input.

The ``robust`` style (Olah et al. 2017, Lucid) optimises a decorrelated
Fourier-space parameterisation with Adam under random jitter, scale and
rotation each step; its patterns look more like natural image texture.

:func:`reference_patterns` is the tutorial's per-filter loop, kept as the
yardstick for the benchmark and the agreement test.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from reportgen import graph
from reportgen.preprocessing import Preprocessor

STYLES = ("classic", "robust")
DEFAULT_MEMORY_BUDGET = 1 << 30  # bytes of activations per chunk (forward + backward), CPU
GPU_MEMORY_BUDGET = 8 << 30  # a GPU has its own memory; bigger batches keep it busy
# Images per chunk on a CPU: measured on VGG16 at 150 px (docs/benchmarks.md),
# 4-8 images are fastest (80% of the matmul rate at block3_conv1; 16: 74%, 2:
# 63%); bigger batches fall out of cache. Smaller images allow more per chunk:
# the cap is 8 images' worth of 150x150 pixels (at 64 px: 43 images).
CPU_CHUNK_PIXELS = 8 * 150 * 150
GPU_MAX_CHUNK = 256
DEAD_TOLERANCE = 1e-6

# Lucid's colour decorrelation (square root of the ImageNet colour covariance).
_COLOR_SQRT = np.array([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], dtype=np.float32)
_COLOR_SQRT /= np.max(np.linalg.norm(_COLOR_SQRT, axis=0))


@dataclass
class PatternResult:
    """The patterns of one layer, in the order of ``filters``."""

    path: str
    filters: list[int]
    images: np.ndarray  # (n, size, size, channels) uint8 display pixels
    activation_start: np.ndarray  # (n,) mean activation of the start image
    activation_end: np.ndarray  # (n,) mean activation after the last step
    size: int
    steps: int
    style: str
    seed: int
    chunk: int = 1
    seconds: float = 0.0
    dead: list[int] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "filters": list(self.filters),
            "size": self.size,
            "steps": self.steps,
            "style": self.style,
            "seed": self.seed,
            "activation_start": [float(v) for v in self.activation_start],
            "activation_end": [float(v) for v in self.activation_end],
            "dead": list(self.dead),
        }


# --- helpers -----------------------------------------------------------------------


def dead_filters(filters: Sequence[int], start: np.ndarray, end: np.ndarray) -> list[int]:
    """Filters whose mean activation did not rise during the ascent.

    A filter whose output is zero everywhere under ReLU (an all-zero or
    always-negative filter) has a zero gradient: the ascent cannot move it.
    """
    start = np.asarray(start, dtype=np.float64)
    end = np.asarray(end, dtype=np.float64)
    # Relative to the activation's own scale: deep layers of an untrained
    # network output ~1e-6 and still rise by tens of percent.
    tol = DEAD_TOLERANCE * np.maximum(np.abs(start), np.abs(end))
    return [int(f) for f, s, e, t in zip(filters, start, end, tol)
            if not np.isfinite(e) or not (e - s > t and e > s)]


def start_pixels(filters: Sequence[int], size: int, channels: int, seed: int) -> np.ndarray:
    """The tutorial's start image, ``128 + 20 * U[0, 1)``, one per filter.

    Each filter's noise depends only on (seed, filter index), so a filter gets
    the same start whether it is optimised alone or in any chunk.
    """
    out = np.empty((len(filters), size, size, channels), dtype=np.float32)
    for i, f in enumerate(filters):
        rng = np.random.default_rng([int(seed), int(f)])
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


def on_gpu() -> bool:
    import tensorflow as tf

    return bool(tf.config.list_logical_devices("GPU"))


@contextlib.contextmanager
def _allocator_tuned() -> Iterator[None]:
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
        with contextlib.suppress(AttributeError):
            libc.malloc_trim(0)


# --- the models: only up to the layer ------------------------------------------------


@dataclass
class _Prefix:
    """The network from its input to the target layer, at a fixed image size."""

    model: Any  # keras.Model input -> the target layer's input (None: identity)
    full: Any  # keras.Model input -> the target layer's output
    layer: Any
    channels: int  # the model input's channels
    out_channels: int
    bytes_per_image: int  # activation memory of one image, forward + backward
    head_trick: bool  # the target conv can be evaluated for selected filters only
    traced: Any = None  # the FlatGraph of ``full``: layer outputs at this size


def _input_tensor_of(tensor: Any) -> Any:
    op, node_index, _ = tensor._keras_history
    return op._inbound_nodes[node_index].input_tensors[0]


def _retrace(model: Any, flat_inputs: list, output: Any, size: int, channels: int) -> tuple[Any, Any]:
    """``keras.Model(flat_inputs, output)`` rebuilt on a ``size`` x ``size`` input.

    The prefix holds only leaf layers (the flat graph descended into nested
    models), so it can be called at any image size, whatever the full
    model's own input size (a Dense head would not allow that).
    """
    import keras

    sub = keras.Model(flat_inputs, output)
    fg = graph.FlatGraph(inputs=[], outputs=None)
    new_in = keras.Input((size, size, channels), name="pattern_input")
    out = graph._trace(sub, new_in, "", 0, fg)
    return keras.Model(new_in, out), fg


_PREFIX_CACHE: dict = {}


def build_prefix(model: Any, path: str, size: int) -> _Prefix:
    import keras

    key = (id(model), path, size)
    if key in _PREFIX_CACHE and _PREFIX_CACHE[key][0] is model:
        return _PREFIX_CACHE[key][1]
    fg = graph.flat_graph(model)
    if len(fg.inputs) != 1 or len(fg.inputs[0].shape) != 4:
        from reportgen.errors import UserError

        raise UserError(f"filter patterns need a model with one image input (N, H, W, C); "
                        f"'{model.name}' has inputs {[tuple(i.shape) for i in fg.inputs]}; "
                        "leave out the patterns section (--sections)")
    channels = int(fg.inputs[0].shape[-1])
    target = fg.by_path[path]
    layer = dict((p, lay) for p, lay, _ in fg.order)[path]
    full, traced = _retrace(model, fg.inputs, target, size, channels)
    shapes = {p: tuple(t.shape) for p, t in traced.by_path.items()}
    tin = _input_tensor_of(target)
    prefix = None if tin is fg.inputs[0] else _retrace(model, fg.inputs, tin, size, channels)[0]
    per_image = size * size * channels + sum(int(np.prod(s[1:])) for s in shapes.values() if None not in s[1:])
    head_trick = (
        isinstance(layer, (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D))
        and not isinstance(layer, (keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose,
                                   keras.layers.Conv3DTranspose))
        and getattr(layer, "groups", 1) == 1
        and getattr(layer, "data_format", "channels_last") == "channels_last"
        and len(full.output.shape) == 4
    )
    built = _Prefix(
        model=prefix,
        full=full,
        layer=layer,
        channels=channels,
        out_channels=int(full.output.shape[-1]),
        # forward activations kept for the backward pass, their gradients,
        # and temporaries: ~3 float32 copies of every activation.
        bytes_per_image=int(per_image * 4 * 3),
        head_trick=head_trick,
        traced=traced,
    )
    _PREFIX_CACHE.clear()  # one layer at a time: keep memory bounded
    _PREFIX_CACHE[key] = (model, built)
    return built


def chunk_size(n_filters: int, bytes_per_image: int, budget: int, gpu: bool, size: int = 150) -> int:
    """Images per batch: within the memory budget and the CPU's cache sweet spot, near-equal chunks."""
    cap = GPU_MAX_CHUNK if gpu else max(1, CPU_CHUNK_PIXELS // (size * size))
    most = max(1, min(n_filters, cap, budget // max(1, bytes_per_image)))
    chunks = math.ceil(n_filters / most)
    return math.ceil(n_filters / chunks)


# --- the classic ascent, batched ---------------------------------------------------------


def _activation_fn(pre: _Prefix, n_chunk: int) -> Callable[[Any, Any], Any]:
    """x (B,H,W,C), filters (B,) -> each image's mean activation of its own filter."""
    import tensorflow as tf

    layer = pre.layer
    if pre.head_trick and n_chunk < pre.out_channels:
        def activations(x: Any, filters: Any) -> Any:
            h = x if pre.model is None else pre.model(x, training=False)
            kernel = tf.gather(layer.kernel, filters, axis=-1)
            out = layer.convolution_op(h, kernel)
            if layer.use_bias:
                out = out + tf.gather(layer.bias, filters)
            if layer.activation is not None:
                out = layer.activation(out)
            means = tf.reduce_mean(out, axis=[1, 2])  # (B, B): image b, filter b'
            return tf.linalg.diag_part(means)
    else:
        def activations(x: Any, filters: Any) -> Any:
            out = pre.full(x, training=False)
            means = tf.reduce_mean(out, axis=[1, 2])  # (B, C_out)
            return tf.gather(means, filters, axis=1, batch_dims=1)
    return activations


def _classic_step(pre: _Prefix, n_chunk: int, step: float, jit: bool) -> tuple[Callable, Callable]:
    import tensorflow as tf

    act = _activation_fn(pre, n_chunk)

    @tf.function(jit_compile=jit, reduce_retracing=True)
    def ascend(x: Any, filters: Any) -> tuple[Any, Any]:
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(x)
            per = act(x, filters)
            loss = tf.reduce_sum(per)
        g = tape.gradient(loss, x)
        rms = tf.sqrt(tf.reduce_mean(tf.square(g), axis=[1, 2, 3], keepdims=True))
        return x + step * g / (rms + 1e-5), per

    @tf.function(jit_compile=jit, reduce_retracing=True)
    def measure(x: Any, filters: Any) -> Any:
        return act(x, filters)

    return ascend, measure


def _layer_filters(pre: _Prefix, filters: Sequence[int]) -> list[int]:
    from reportgen.errors import UserError

    bad = [f for f in filters if not 0 <= f < pre.out_channels]
    if bad:
        raise UserError(f"--pattern-filters: layer has {pre.out_channels} filters; filter {bad[0]} does not exist")
    return [int(f) for f in filters]


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
) -> PatternResult:
    """The patterns of ``filters`` of the conv layer at ``path``, batched.

    ``tick(n)`` is called after every step with the number of filters that
    step advanced (for a progress bar). KeyboardInterrupt propagates.
    """
    import tensorflow as tf

    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}")
    t0 = time.perf_counter()
    gpu = on_gpu()
    jit = gpu if jit is None else jit
    pre = build_prefix(model, path, size)
    filters = _layer_filters(pre, filters)
    if memory_budget is None:
        memory_budget = GPU_MEMORY_BUDGET if gpu else DEFAULT_MEMORY_BUDGET
    chunk = chunk_size(len(filters), pre.bytes_per_image, memory_budget, gpu, size)
    if max_chunk:
        chunk = min(chunk, max_chunk)
    start_px = start_pixels(filters, size, pre.channels, seed)
    images = np.zeros((len(filters), size, size, pre.channels), dtype=np.uint8)
    a_start = np.zeros(len(filters), dtype=np.float64)
    a_end = np.zeros(len(filters), dtype=np.float64)
    with _allocator_tuned():
        if style == "classic":
            ascend, measure = _classic_step(pre, chunk, pixel_step(preprocessor, pre.channels), jit)
        else:
            robust = _RobustAscent(pre, chunk, preprocessor, jit)
        for lo in range(0, len(filters), chunk):
            idx = filters[lo : lo + chunk]
            f = tf.constant(idx, dtype=tf.int32)
            if style == "classic":
                x = tf.constant(preprocessor.forward(start_px[lo : lo + chunk]))
                for i in range(steps):
                    x, per = ascend(x, f)
                    if i == 0:
                        a_start[lo : lo + len(idx)] = per.numpy()
                    if tick is not None:
                        tick(len(idx))
                if steps == 0:
                    a_start[lo : lo + len(idx)] = measure(x, f).numpy()
                a_end[lo : lo + len(idx)] = measure(x, f).numpy()
                images[lo : lo + len(idx)] = deprocess(x.numpy(), preprocessor)
            else:
                px, s, e = robust.run(idx, steps, seed, tick)
                images[lo : lo + len(idx)] = px
                a_start[lo : lo + len(idx)] = s
                a_end[lo : lo + len(idx)] = e
    return PatternResult(
        path=path, filters=filters, images=images, activation_start=a_start, activation_end=a_end,
        size=size, steps=steps, style=style, seed=seed, chunk=chunk,
        seconds=time.perf_counter() - t0, dead=dead_filters(filters, a_start, a_end),
    )


# --- the tutorial's per-filter loop (reference) ----------------------------------------


def reference_patterns(
    model: Any,
    path: str,
    filters: Sequence[int],
    size: int,
    steps: int,
    preprocessor: Preprocessor,
    seed: int = 0,
    tick: Callable[[int], None] | None = None,
) -> PatternResult:
    """Chollet's loop: one filter at a time, one image, the whole layer computed.

    Written as the book's second edition does it in TF2 (a ``tf.function``
    step taking the filter index as a tensor, so it is traced once).
    """
    import tensorflow as tf

    t0 = time.perf_counter()
    pre = build_prefix(model, path, size)
    filters = _layer_filters(pre, filters)
    feature_extractor = pre.full
    step = pixel_step(preprocessor, pre.channels)

    @tf.function
    def compute_loss(image: Any, filter_index: Any) -> Any:
        activation = feature_extractor(image, training=False)
        return tf.reduce_mean(activation[..., filter_index])

    @tf.function
    def gradient_ascent_step(image: Any, filter_index: Any) -> tuple[Any, Any]:
        with tf.GradientTape() as tape:
            tape.watch(image)
            loss = compute_loss(image, filter_index)
        grads = tape.gradient(loss, image)
        grads = grads / (tf.sqrt(tf.reduce_mean(tf.square(grads))) + 1e-5)
        return image + step * grads, loss

    start_px = start_pixels(filters, size, pre.channels, seed)
    images = np.zeros((len(filters), size, size, pre.channels), dtype=np.uint8)
    a_start = np.zeros(len(filters))
    a_end = np.zeros(len(filters))
    for i, f in enumerate(filters):
        fi = tf.constant(f, dtype=tf.int32)
        image = tf.constant(preprocessor.forward(start_px[i : i + 1]))
        a_start[i] = float(compute_loss(image, fi))
        for _ in range(steps):
            image, _loss = gradient_ascent_step(image, fi)
            if tick is not None:
                tick(1)
        a_end[i] = float(compute_loss(image, fi))
        images[i] = deprocess(image.numpy(), preprocessor)[0]
    return PatternResult(
        path=path, filters=filters, images=images, activation_start=a_start, activation_end=a_end,
        size=size, steps=steps, style="classic", seed=seed, chunk=1,
        seconds=time.perf_counter() - t0, dead=dead_filters(filters, a_start, a_end),
    )


# --- the robust style (Lucid) ----------------------------------------------------------


class _RobustAscent:
    """Decorrelated Fourier-space image, Adam, random jitter/scale/rotation each step.

    Lucid's ``fft_image`` + ``to_valid_rgb`` + ``standard_transforms``:
    the image is ``sigmoid(colour_decorrelate(irfft2(spectrum / f)))``, so
    high frequencies are damped and colours follow natural-image statistics;
    the random transforms make the pattern work at any small offset, scale
    and angle, which removes the high-frequency "adversarial" noise of the
    classic ascent. The activation is measured on the untransformed image.
    """

    PAD = 12
    LR = 0.05
    DECAY = 1.0

    def __init__(self, pre: _Prefix, chunk: int, preprocessor: Preprocessor, jit: bool) -> None:
        import tensorflow as tf

        self.pre = pre
        size = int(pre.full.input.shape[1])
        c = pre.channels
        self.size, self.c = size, c
        fy = np.fft.fftfreq(size)[:, None]
        fx = np.fft.rfftfreq(size)[None, :]
        freqs = np.sqrt(fx * fx + fy * fy)
        scale = 1.0 / np.maximum(freqs, 1.0 / size) ** self.DECAY
        self.scale = tf.constant((scale * size).astype(np.complex64))  # (H, W//2+1)
        m, b = affine_of(preprocessor, c)
        self.m, self.b = tf.constant(m), tf.constant(b)
        self.color = tf.constant(_COLOR_SQRT.T if c == 3 else np.eye(c, dtype=np.float32))
        act = _activation_fn(pre, chunk)
        padded = size + 2 * self.PAD

        def to_pixels(params: Any) -> Any:  # params (B, C, H, W//2+1, 2) -> pixels 0..1 (B,H,W,C)
            spectrum = tf.complex(params[..., 0], params[..., 1]) * self.scale
            img = tf.signal.irfft2d(spectrum, fft_length=[size, size]) / 4.0  # (B, C, H, W)
            img = tf.transpose(img, [0, 2, 3, 1])
            img = tf.tensordot(img, self.color, axes=[[3], [0]])
            return tf.sigmoid(img)

        def model_input(px01: Any) -> Any:
            return tf.tensordot(px01 * 255.0, self.m, axes=[[3], [0]]) + self.b

        def transform(px01: Any, t: Any) -> Any:
            padded_img = tf.pad(px01 - 0.5, [[0, 0], [self.PAD] * 2, [self.PAD] * 2, [0, 0]]) + 0.5
            moved = tf.raw_ops.ImageProjectiveTransformV3(
                images=padded_img, transforms=t, output_shape=tf.constant([padded, padded]),
                fill_value=tf.constant(0.5), interpolation="BILINEAR", fill_mode="CONSTANT")
            return moved[:, self.PAD : self.PAD + size, self.PAD : self.PAD + size, :]

        @tf.function(jit_compile=False, reduce_retracing=True)
        def step(params: Any, m1: Any, m2: Any, t: Any, filters: Any, k: Any) -> tuple:
            with tf.GradientTape(watch_accessed_variables=False) as tape:
                tape.watch(params)
                per = act(model_input(transform(to_pixels(params), t)), filters)
                loss = -tf.reduce_sum(per)
            g = tape.gradient(loss, params)
            m1 = 0.9 * m1 + 0.1 * g
            m2 = 0.999 * m2 + 0.001 * g * g
            mhat = m1 / (1.0 - tf.pow(0.9, k))
            vhat = m2 / (1.0 - tf.pow(0.999, k))
            return params - self.LR * mhat / (tf.sqrt(vhat) + 1e-8), m1, m2

        @tf.function(reduce_retracing=True)
        def measure(params: Any, filters: Any) -> tuple:
            px = to_pixels(params)
            return act(model_input(px), filters), px

        self._step, self._measure = step, measure

    def transforms(self, filters: Sequence[int], steps: int, seed: int) -> np.ndarray:
        """Per filter and step: jitter (+-8 then +-4 px), scale 0.9-1.1, rotation +-10 deg."""
        size = self.size + 2 * self.PAD
        out = np.zeros((steps, len(filters), 8), dtype=np.float32)
        scales = np.array([1 + (i - 5) / 50.0 for i in range(11)])
        angles = np.array(list(range(-10, 11)) + 5 * [0], dtype=np.float64)
        for j, f in enumerate(filters):
            rng = np.random.default_rng([int(seed), int(f), 1])
            for i in range(steps):
                s = rng.choice(scales)
                a = np.deg2rad(rng.choice(angles))
                dx, dy = rng.integers(-8, 9, size=2) + rng.integers(-4, 5, size=2)
                c = (size - 1) / 2.0
                # output -> input mapping: rotate/scale about the centre, then shift
                cos, sin = np.cos(a) / s, np.sin(a) / s
                a0, a1, b0, b1 = cos, -sin, sin, cos
                out[i, j] = [a0, a1, c - a0 * c - a1 * c + dx, b0, b1, c - b0 * c - b1 * c + dy, 0, 0]
        return out

    def run(self, filters: Sequence[int], steps: int, seed: int,
            tick: Callable[[int], None] | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        import tensorflow as tf

        n, c, size = len(filters), self.c, self.size
        init = np.zeros((n, c, size, size // 2 + 1, 2), dtype=np.float32)
        for j, f in enumerate(filters):
            init[j] = np.random.default_rng([int(seed), int(f), 2]).normal(0, 0.01, init.shape[1:])
        params = tf.constant(init)
        m1 = tf.zeros_like(params)
        m2 = tf.zeros_like(params)
        fs = tf.constant(list(filters), dtype=tf.int32)
        ts = self.transforms(filters, steps, seed)
        start, _ = self._measure(params, fs)
        for i in range(steps):
            params, m1, m2 = self._step(params, m1, m2, tf.constant(ts[i]), fs, tf.constant(float(i + 1)))
            if tick is not None:
                tick(n)
        end, px = self._measure(params, fs)
        pixels = np.clip(px.numpy() * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return pixels, start.numpy(), end.numpy()


# --- FLOP count ---------------------------------------------------------------------------


def macs_up_to(model: Any, path: str, size: int) -> int:
    """Multiply-adds of one forward pass of one image from the input to ``path``.

    Counted from the layers of the prefix at ``size`` px: a convolution costs
    output pixels x kernel size x input channels x output channels (divided by
    groups; depthwise: x depth multiplier), a Dense layer inputs x units;
    pooling, bias and activations are not counted (they are not multiply-adds).
    """
    import keras

    pre = build_prefix(model, path, size)
    total = 0
    for p, lay, _ in pre.traced.order:
        out = pre.traced.by_path[p]
        total += _layer_macs(lay, tuple(_input_tensor_of(out).shape), tuple(out.shape), keras)
    return int(total)


def _layer_macs(lay: Any, inp: tuple, out: tuple, keras: Any) -> int:
    if isinstance(lay, keras.layers.DepthwiseConv2D):
        k = int(np.prod(lay.kernel_size))
        return int(np.prod(out[1:])) * k
    if isinstance(lay, keras.layers.SeparableConv2D):
        k = int(np.prod(lay.kernel_size))
        cin = int(inp[-1])
        return int(np.prod(out[1:-1])) * (k * cin * lay.depth_multiplier + cin * lay.depth_multiplier * int(out[-1]))
    if graph.is_conv(lay):
        k = int(np.prod(lay.kernel_size))
        cin = int(inp[-1])
        return int(np.prod(out[1:])) * k * cin // max(1, getattr(lay, "groups", 1))
    if isinstance(lay, keras.layers.Dense):
        return int(np.prod(out[1:])) * int(inp[-1])
    return 0
