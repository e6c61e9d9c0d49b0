"""The weights analysis against the machine: seconds per 100M weights, and how far from memory bandwidth.

Issue 21's goal: at most 5 s per 100M weights on 2 cores. What is measured, in ONE process:

- the machine's references, before and after: memory bandwidth (a 256 MB float32 ``np.copyto`` and a
  ``sum``, best of 5) and the fp32 matmul rate (2048^3, best of 5) -- compare ratios to these, not seconds;
- ``weight_analysis`` on each model (``keras.applications`` names, ``weights=None``; the cost does not
  depend on the values), after a warm-up on a small model, with the seconds of its parts from cProfile
  when ``--profile`` is given;
- "passes": the analysis' seconds divided by the time to read every weight once at the measured bandwidth.

    python3 bench/weights_speed.py                      # EfficientNetB3
    python3 bench/weights_speed.py EfficientNetB7 VGG16 --profile
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def best(fn, n: int = 5) -> float:
    out = float("inf")
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out = min(out, time.perf_counter() - t)
    return out


def references() -> dict:
    a = np.ones(1 << 26, dtype=np.float32)  # 256 MB
    b = np.empty_like(a)
    copy = best(lambda: np.copyto(b, a))
    total = best(lambda: a.sum())
    m = np.random.default_rng(0).standard_normal((2048, 2048), dtype=np.float32)
    mm = best(lambda: m @ m)
    return {
        "copy_gb_s": 2 * a.nbytes / copy / 1e9,
        "sum_gb_s": a.nbytes / total / 1e9,
        "matmul_gflop_s": 2 * 2048**3 / mm / 1e9,
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="*", default=["EfficientNetB3"])
    p.add_argument("--profile", action="store_true", help="the analysis' top functions by cumulative time")
    args = p.parse_args(argv)

    import keras

    from reportgen.analyses.weights import weight_analysis

    ref0 = references()
    weight_analysis(keras.applications.MobileNetV3Small(weights=None))  # warm-up: imports, first calls
    rows = []
    for name in args.models:
        keras.utils.set_random_seed(0)
        model = getattr(keras.applications, name)(weights=None)
        n = sum(int(np.prod(v.shape)) for v in model.weights)
        if args.profile:
            import cProfile
            import pstats

            prof = cProfile.Profile()
            prof.enable()
        t = time.perf_counter()
        weight_analysis(model)
        seconds = time.perf_counter() - t
        if args.profile:
            prof.disable()
            print(f"## {name}")
            pstats.Stats(prof).sort_stats("tottime").print_stats(12)
        rows.append((name, n, seconds))
        del model
    ref1 = references()
    ref = {k: max(ref0[k], ref1[k]) for k in ref0}
    print(
        f"machine: copy {ref['copy_gb_s']:.1f} GB/s, sum {ref['sum_gb_s']:.1f} GB/s, "
        f"fp32 matmul {ref['matmul_gflop_s']:.0f} GFLOP/s (best of before/after)"
    )
    print("| model | weights (M) | seconds | s per 100M weights | passes over the weights at sum bandwidth |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, n, seconds in rows:
        one_pass = 4 * n / (ref["sum_gb_s"] * 1e9)
        print(
            f"| {name} | {n / 1e6:.1f} | {seconds:.2f} | {seconds / n * 1e8:.1f} | {seconds / one_pass:.0f} |"
        )


if __name__ == "__main__":
    main()
