"""The tutorial's per-filter loop: the yardstick for the benchmark and the agreement test.

Chollet's algorithm as the book's second edition writes it in TF2: one filter
at a time, one image, the whole layer computed, a compiled step taking the
filter index as a tensor (so it is traced once). Ported to ``keras.ops`` and
:mod:`reportgen.backend` so that it runs, and is compared, on every backend.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Sequence

import numpy as np

from reportgen import backend
from reportgen.graph import forward
from reportgen.analyses.patterns.ascent import (
    PatternResult,
    dead_filters,
    deprocess,
    pixel_step,
    start_pixels,
)
from reportgen.analyses.patterns.objective import Objective
from reportgen.preprocessing import Preprocessor


def reference_patterns(
    model: Any,
    path: str,
    filters: Sequence[int],
    size: int,
    steps: int,
    preprocessor: Preprocessor,
    seed: int = 0,
    tick: Callable[[int], None] | None = None,
    objective: str = "activation",
) -> PatternResult:
    """One filter at a time, the whole layer computed, the book's loss (post-activation by default)."""
    from keras import ops

    t0 = time.perf_counter()
    target = Objective(model, path, size, None, objective)
    filters = target.check_filters(list(filters))
    step = pixel_step(preprocessor, target.channels)
    tap = forward.Tap(linear=objective == "pre-activation", stop=True)

    def compute_loss(image: Any, filter_index: Any) -> Any:
        activation = forward.run(model, image, {path: tap}).captured[path]
        return ops.mean(ops.take(activation, filter_index, axis=-1))

    def loss_and_aux(image: Any, filter_index: Any) -> tuple[Any, Any]:
        loss = compute_loss(image, filter_index)
        return loss, loss

    grad = backend.grad(loss_and_aux)

    def gradient_ascent_step(image: Any, filter_index: Any) -> tuple[Any, Any]:
        loss, _aux, grads = grad(image, filter_index)
        grads = grads / (ops.sqrt(ops.mean(ops.square(grads))) + 1e-5)
        return image + step * grads, loss

    variables = list(model.variables)
    loss_fn = backend.function(compute_loss, variables)
    step_fn = backend.function(gradient_ascent_step, variables)
    start_px = start_pixels(filters, size, target.channels, seed)
    images = np.zeros((len(filters), size, size, target.channels), dtype=np.uint8)
    a_start = np.zeros(len(filters))
    a_end = np.zeros(len(filters))
    for i, f in enumerate(filters):
        fi = backend.tensor(f, "int32")
        image = backend.tensor(preprocessor.forward(start_px[i : i + 1]))
        with backend.no_grad():
            a_start[i] = float(backend.numpy(loss_fn(image, fi)))
        for _ in range(steps):
            image, _loss = step_fn(image, fi)
            if tick is not None:
                tick(1)
        with backend.no_grad():
            a_end[i] = float(backend.numpy(loss_fn(image, fi)))
        images[i] = deprocess(backend.numpy(image), preprocessor)[0]
    return PatternResult(
        path=path,
        filters=filters,
        images=images,
        activation_start=a_start,
        activation_end=a_end,
        size=size,
        steps=steps,
        style="classic",
        seed=seed,
        objective=objective,
        chunk=1,
        seconds=time.perf_counter() - t0,
        dead=dead_filters(filters, a_start, a_end),
    )
