"""The robust style (Olah et al. 2017, Lucid): Fourier-space image, Adam, random transforms.

Lucid's ``fft_image`` + ``to_valid_rgb`` + ``standard_transforms``: the image
is ``sigmoid(colour_decorrelate(Re ifft2(spectrum * 1/f)))``, so high
frequencies are damped and colours follow natural-image statistics; the
random jitter, scale and rotation each step make the pattern work at any
small offset, scale and angle, which removes the high-frequency
"adversarial" noise of the classic ascent. The objective is measured on the
untransformed image. Written in ``keras.ops`` (``ifft2``,
``image.affine_transform``), so it runs on every backend.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from reportgen import backend
from reportgen.analyses.patterns.ascent import Style, affine_of, register
from reportgen.analyses.patterns.objective import Objective
from reportgen.preprocessing import Preprocessor

# Lucid's colour decorrelation (square root of the ImageNet colour covariance).
_COLOR_SQRT = np.array([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], dtype=np.float32)
_COLOR_SQRT /= np.max(np.linalg.norm(_COLOR_SQRT, axis=0))


@register
class Robust(Style):
    name = "robust"
    PAD = 12
    LR = 0.05
    DECAY = 1.0

    def __init__(
        self,
        objective: Objective,
        chunk: int,
        preprocessor: Preprocessor,
        jit: bool | None,
        start: str = "grey",
    ) -> None:
        from keras import ops

        super().__init__(objective, chunk, preprocessor, jit, start)
        size, c = objective.size, objective.channels
        self.size, self.c = size, c
        fy = np.fft.fftfreq(size)[:, None]
        fx = np.fft.fftfreq(size)[None, :]
        freqs = np.sqrt(fx * fx + fy * fy)
        scale = backend.tensor((1.0 / np.maximum(freqs, 1.0 / size) ** self.DECAY * size).astype(np.float32))
        m, b = (backend.tensor(a) for a in affine_of(preprocessor, c))
        colour = backend.tensor((_COLOR_SQRT.T if c == 3 else np.eye(c, dtype=np.float32)).astype(np.float32))
        padded = size + 2 * self.PAD
        pad = self.PAD

        def to_pixels(params: Any) -> Any:  # params (B, C, H, W, 2) -> pixels 0..1 (B, H, W, C)
            real, _imag = ops.ifft2((params[..., 0] * scale, params[..., 1] * scale))
            img = ops.transpose(real * float(size) / 4.0, (0, 2, 3, 1))
            img = ops.tensordot(img, colour, axes=[[3], [0]])
            return ops.sigmoid(img)

        def model_input(px01: Any) -> Any:
            return ops.tensordot(px01 * 255.0, m, axes=[[3], [0]]) + b

        def transform(px01: Any, t: Any) -> Any:
            padded_img = ops.pad(px01 - 0.5, [[0, 0], [pad, pad], [pad, pad], [0, 0]]) + 0.5
            moved = ops.image.affine_transform(
                padded_img, t, interpolation="bilinear", fill_mode="constant", fill_value=0.5
            )
            return moved[:, pad : pad + size, pad : pad + size, :]

        def loss(params: Any, t: Any, filters: Any) -> tuple[Any, Any]:
            per = objective(model_input(transform(to_pixels(params), t)), filters, chunk)
            return -ops.sum(per), per

        value_and_grad = backend.grad(loss)

        def step(params: Any, m1: Any, m2: Any, t: Any, filters: Any, k: Any) -> tuple:
            _value, _per, g = value_and_grad(params, t, filters)
            m1 = 0.9 * m1 + 0.1 * g
            m2 = 0.999 * m2 + 0.001 * g * g
            mhat = m1 / (1.0 - ops.power(0.9, k))
            vhat = m2 / (1.0 - ops.power(0.999, k))
            return params - self.LR * mhat / (ops.sqrt(vhat) + 1e-8), m1, m2

        def measure(params: Any, filters: Any) -> tuple:
            with backend.no_grad():
                px = to_pixels(params)
                return objective(model_input(px), filters, chunk), px

        self._padded = padded
        self._step, self._measure = self.compile(step), self.compile(measure)

    def transforms(self, filters: Sequence[int], steps: int, seed: int) -> np.ndarray:
        """Per filter and step: jitter (+-8 then +-4 px), scale 0.9-1.1, rotation +-10 deg."""
        size = self._padded
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

    def run(
        self, filters: list[int], steps: int, seed: int, tick: Callable[[int], None] | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n, c, size = len(filters), self.c, self.size
        init = np.zeros((n, c, size, size, 2), dtype=np.float32)
        for j, f in enumerate(filters):
            init[j] = np.random.default_rng([int(seed), int(f), 2]).normal(0, 0.01, init.shape[1:])
        params = backend.tensor(init)
        m1 = backend.tensor(np.zeros_like(init))
        m2 = backend.tensor(np.zeros_like(init))
        fs = backend.tensor(np.asarray(filters, dtype=np.int32), "int32")
        ts = self.transforms(filters, steps, seed)
        start, _ = self._measure(params, fs)
        start = backend.numpy(start)
        for i in range(steps):
            params, m1, m2 = self._step(
                params, m1, m2, backend.tensor(ts[i]), fs, backend.tensor(float(i + 1))
            )
            if tick is not None:
                tick(n)
        end, px = self._measure(params, fs)
        pixels = np.clip(backend.numpy(px) * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return pixels, start, backend.numpy(end)
