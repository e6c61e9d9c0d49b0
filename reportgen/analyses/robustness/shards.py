"""The robustness pass over several workers: ``--jobs N`` processes, or Ray tasks (``--executor ray``).

The images are split into N contiguous shards; each worker gets the model
(pickled: Keras 3 saves it to its archive format and back), the head, the
preprocessing and its shard's pixels, labels and keys, runs
:func:`reportgen.analyses.robustness.measure`, and returns the counts. Each
image's corruptions and PGD start are seeded by its key, not its position, so
the shards' draws are the one process's draws, and :func:`~reportgen.analyses.robustness.merge`
adds the counts up to the one process's numbers (summed confidences up to
float round-off in the last digits).

A model that does not pickle (custom code Keras cannot save) runs in one
process, and the report says so.
"""

from __future__ import annotations

import os
import pickle
from typing import Any, Callable, Sequence

import numpy as np


def _shard(payload: bytes) -> Any:
    """One worker's pass (module-level: a process pool and Ray both call it by reference)."""
    from reportgen import backend

    backend.import_keras()
    from reportgen.analyses import robustness as R
    from reportgen.analyses.robustness.classifier import PixelClassifier

    p = pickle.loads(payload)
    with backend.precision():
        clf = PixelClassifier(p["model"], p["head"], p["preprocessor"], p["channels"], None)
        return R.measure(
            clf,
            p["pixels"],
            p["labels"],
            p["keys"],
            p["corruptions"],
            p["epsilons"],
            p["steps"],
            p["seed"],
            grid=p["first"],
        )


def split(n: int, shards: int) -> list[tuple[int, int]]:
    """``shards`` contiguous (start, stop) ranges covering ``range(n)``, none empty."""
    shards = max(1, min(shards, n))
    edges = np.linspace(0, n, shards + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def run(
    model: Any,
    head: Any,
    preprocessor: Any,
    channels: int,
    pixels: np.ndarray,
    labels: np.ndarray,
    keys: Sequence[int],
    corruptions: Sequence[str],
    epsilons: Sequence[float],
    steps: int,
    seed: int,
    jobs: int,
    executor: str = "process",
    ray_address: str | None = None,
    tick: Callable[[int], None] | None = None,
    conditions: int = 0,
) -> Any:
    """The merged pass over ``jobs`` shards; raises ``pickle.PicklingError``/``TypeError`` for a model that
    does not pickle (the caller then runs it in one process)."""
    from reportgen.analyses import robustness as R

    ranges = split(len(pixels), jobs)
    payloads = [
        pickle.dumps(
            {
                "model": model,
                "head": head,
                "preprocessor": preprocessor,
                "channels": channels,
                "pixels": pixels[a:b],
                "labels": labels[a:b],
                "keys": list(keys[a:b]),
                "corruptions": tuple(corruptions),
                "epsilons": tuple(epsilons),
                "steps": steps,
                "seed": seed,
                "first": i == 0,
            }
        )
        for i, (a, b) in enumerate(ranges)
    ]
    if executor == "ray":
        parts = _ray(payloads, ray_address, tick, conditions)
    else:
        parts = _processes(payloads, jobs, tick, conditions)
    return R.merge(parts)


def _processes(payloads: list[bytes], jobs: int, tick: Callable[[int], None] | None, conditions: int) -> list:
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    # spawn: a fresh interpreter per worker (a forked TensorFlow runtime hangs); the environment is inherited
    with ProcessPoolExecutor(
        max_workers=min(jobs, len(payloads)), mp_context=mp.get_context("spawn")
    ) as pool:
        futures = [pool.submit(_shard, p) for p in payloads]
        parts = []
        for f in futures:
            parts.append(f.result())
            if tick is not None:
                tick(conditions // len(payloads))
    return parts


def _ray(
    payloads: list[bytes], address: str | None, tick: Callable[[int], None] | None, conditions: int
) -> list:
    import ray

    started = not ray.is_initialized()  # inside a Ray task (a several-model run) the cluster is already there
    if started:
        address = address or os.environ.get("RAY_ADDRESS") or None
        env = {"env_vars": {"KERAS_BACKEND": os.environ.get("KERAS_BACKEND", "tensorflow")}}
        ray.init(
            address=address, runtime_env=env, log_to_driver=False, include_dashboard=False
        ) if address else ray.init(
            num_cpus=len(payloads), runtime_env=env, log_to_driver=False, include_dashboard=False
        )
    try:
        task = ray.remote(num_cpus=1)(_shard)
        refs = [task.remote(p) for p in payloads]
        parts = []
        for ref in refs:
            parts.append(ray.get(ref))
            if tick is not None:
                tick(conditions // len(payloads))
        return parts
    finally:
        if started:
            ray.shutdown()  # what this pass started, it stops
