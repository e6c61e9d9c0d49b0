"""Which pattern ascent climbs for every filter that is alive: measured on a trained network.

The tutorial's ascent maximises a conv filter's mean *activation* from a grey
start image. Where the conv has a fused ReLU and the filter's pre-activation
is negative everywhere on grey, the gradient is exactly zero and the ascent
cannot move -- although the filter responds to real images. This benchmark
counts, on a trained VGG16-size network (``bench/trained_vgg16.py``), for
each stage's first conv layer at the report's defaults (64 px, 20 steps):

- how many filters are alive on data (non-zero somewhere on 64 held-out digits);
- how many rise under each variant: activation from grey (the tutorial),
  activation from a noise start, pre-activation from grey (the report's default).

Usage: ``python bench/pattern_objective.py`` (~6 minutes on 2 cores).
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import reportgen  # noqa: E402,F401

import numpy as np  # noqa: E402

VARIANTS = [("activation", "grey"), ("activation", "noise"), ("pre-activation", "grey")]


def main() -> None:
    import keras

    import trained_vgg16
    from reportgen import backend, graph
    from reportgen.graph import forward
    from reportgen.analyses import patterns as fp
    from reportgen.preprocessing import Preprocessor

    backend.import_keras()
    model = keras.saving.load_model(trained_vgg16.ensure())
    layers = [r.path for r in graph.default_pattern_layers(model)]
    x, _y = trained_vgg16.digits_rgb()
    x = x[-64:].astype("float32")
    pre = Preprocessor("none")
    print(f"backend {backend.name()}; layers {layers}")
    rows = []
    for path in layers:
        with backend.no_grad():
            acts = backend.numpy(forward.run(model, x, {path: forward.Tap(stop=True)}).captured[path])
        alive = int((np.abs(acts).reshape(-1, acts.shape[-1]).max(axis=0) > 0).sum())
        n = acts.shape[-1]
        row = [path, n, alive]
        for objective, start in VARIANTS:
            t = time.perf_counter()
            r = fp.filter_patterns(
                model, path, list(range(min(64, n))), 64, 20, pre, objective=objective, start=start
            )
            row.append((r.rose, time.perf_counter() - t))
        rows.append(row)
        print(row, flush=True)
    print(
        "| layer | filters shown | alive on 64 images | "
        + " | ".join(f"rose: {o}, {s} start" for o, s in VARIANTS)
        + " |"
    )
    print("|---|---:|---:|" + "---:|" * len(VARIANTS))
    for path, n, alive, *res in rows:
        shown = min(64, n)
        print(
            f"| {path} | {shown} | {alive} of {n} | "
            + " | ".join(f"{r} ({100 * r / shown:.0f}%)" for r, _t in res)
            + " |"
        )
    tot = sum(min(64, r[1]) for r in rows)
    print(
        "| all | "
        + str(tot)
        + " | | "
        + " | ".join(
            f"{sum(r[3 + i][0] for r in rows)} ({100 * sum(r[3 + i][0] for r in rows) / tot:.1f}%)"
            for i in range(len(VARIANTS))
        )
        + " |"
    )


if __name__ == "__main__":
    main()
