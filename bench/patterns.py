"""Benchmark: batched filter-pattern ascent vs. the tutorial's per-filter loop.

ONE run measures, on VGG16 (weights=None: the cost does not depend on the
weights) at the tutorial's settings (150x150, 40 steps, 64 filters):

- the machine's own fp32 matrix-multiply rate (a large ``tf.matmul`` and a
  NumPy/OpenBLAS matmul, best of several, before and after the work);
- our time per layer (``reportgen.analyses.patterns.filter_patterns``);
- the per-filter loop's time (``reference_patterns``) on a subset of layers
  and filters (all five layers x 64 filters would take ~30 minutes on 2
  cores), extrapolated linearly in the number of filters -- the loop's cost is
  exactly proportional to it -- and the same filters' time by us, so the
  speedup compares like with like;
- the FLOP count: 4 x (multiply-adds from the input up to and including the
  layer, counted layer by layer) x steps x filters. A forward pass is 2 FLOPs
  per multiply-add, the backward pass to the input another 2; the weight
  gradients are never needed. (Our step evaluates the target layer only for
  the chunk's filters, so it does slightly less work than this count: the
  count is the tutorial's work, the rate is tutorial-work per second.)
- quality: the mean ``activation_end`` of ours and of the loop for the same
  filters, start images and steps.

Usage::

    python bench/patterns.py            # ~6 min: five layers x 16 filters, loop on block3_conv1 x 8 filters
    python bench/patterns.py --quick    # ~1 min: block1+block3, 8 filters, 10 steps
    python bench/patterns.py --filters 64 --reference-filters 64 --reference-layers block3_conv1  # the full thing
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import reportgen  # noqa: E402,F401  (silences TensorFlow before it is imported)

import numpy as np  # noqa: E402

LAYERS = ["block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1"]


def matmul_rate(n: int = 2048, repeats: int = 5) -> dict[str, float]:
    """Best-of fp32 GFLOP/s of an n x n matmul: TensorFlow and NumPy."""
    import tensorflow as tf

    a = tf.random.normal((n, n), seed=1)
    b = tf.random.normal((n, n), seed=2)
    tf.matmul(a, b).numpy()
    best_tf = 0.0
    for _ in range(repeats):
        t = time.perf_counter()
        c = tf.matmul(a, b)
        c.numpy()
        best_tf = max(best_tf, 2 * n**3 / (time.perf_counter() - t) / 1e9)
    an = np.random.default_rng(0).random((n, n), dtype=np.float32)
    bn = an.T.copy()
    an @ bn
    best_np = 0.0
    for _ in range(repeats):
        t = time.perf_counter()
        an @ bn
        best_np = max(best_np, 2 * n**3 / (time.perf_counter() - t) / 1e9)
    return {"tf": best_tf, "numpy": best_np}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--layers", nargs="+", default=LAYERS)
    ap.add_argument("--filters", type=int, default=16,
                    help="filters per layer (default 16, times extrapolated to --full-filters; "
                         "the cost is linear in filters beyond one chunk)")
    ap.add_argument("--full-filters", type=int, default=64)
    ap.add_argument("--size", type=int, default=150)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--reference-layers", nargs="*", default=["block3_conv1"],
                    help="layers on which the per-filter loop is timed (none: skip)")
    ap.add_argument("--reference-filters", type=int, default=8,
                    help="filters the loop runs per reference layer (extrapolated to --filters)")
    ap.add_argument("--chunk", type=int, default=None, help="override the chunk size")
    ap.add_argument("--jit", choices=["auto", "on", "off"], default="auto")
    ap.add_argument("--quick", action="store_true", help="block1_conv1+block3_conv1, 16 filters, 10 steps")
    args = ap.parse_args(argv)
    if args.quick:
        args.layers = ["block1_conv1", "block3_conv1"]
        args.filters, args.steps, args.reference_filters = 8, 10, 4

    import keras
    import tensorflow as tf

    from reportgen.analyses import patterns as fp
    from reportgen.preprocessing import Preprocessor

    jit = None if args.jit == "auto" else args.jit == "on"
    print(f"# reportgen filter-pattern benchmark\n")
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.processor() or ''} "
          f"GPU: {[d.name for d in tf.config.list_logical_devices('GPU')] or 'none'}")
    print(f"versions: python {platform.python_version()}, tensorflow {tf.__version__}, "
          f"keras {keras.__version__}, numpy {np.__version__}")
    print(f"command: python bench/patterns.py {' '.join(sys.argv[1:] if argv is None else argv)}")
    print(f"settings: VGG16 weights=None, {args.size}x{args.size}, {args.steps} steps, "
          f"{args.filters} filters per layer measured, times scaled to {args.full_filters}\n", flush=True)

    mm0 = matmul_rate()
    model = keras.applications.VGG16(weights=None, include_top=False)
    pre = Preprocessor("caffe")
    filters = list(range(args.filters))

    # the per-filter loop first, in the process's default allocator state
    ref: dict[str, fp.PatternResult] = {}
    for layer in args.reference_layers:
        ref_filters = filters[: args.reference_filters]
        fp.reference_patterns(model, layer, ref_filters[:1], args.size, 1, pre)  # trace once
        ref[layer] = fp.reference_patterns(model, layer, ref_filters, args.size, args.steps, pre)
        r = ref[layer]
        print(f"reference {layer}: {len(ref_filters)} filters in {r.seconds:.1f} s", flush=True)

    rows = []
    total_flops = total_ours = 0.0
    for layer in args.layers:
        macs = fp.macs_up_to(model, layer, args.size)
        flops = 4.0 * macs * args.steps * len(filters)
        # warm-up: trace the step for this layer outside the timing
        fp.filter_patterns(model, layer, filters[:2], args.size, 1, pre, jit=jit, max_chunk=args.chunk)
        ours = fp.filter_patterns(model, layer, filters, args.size, args.steps, pre, jit=jit,
                                  max_chunk=args.chunk)
        row = {"layer": layer, "macs": macs, "flops": flops, "ours_s": ours.seconds, "chunk": ours.chunk,
               "gflops": flops / ours.seconds / 1e9, "ours": ours}
        if layer in ref:
            r = ref[layer]
            n = len(r.filters)
            per_filter_ref = r.seconds / n
            row["ref_s_extrapolated"] = per_filter_ref * args.full_filters
            row["ref_gflops"] = 4.0 * macs * args.steps * n / r.seconds / 1e9
            row["speedup"] = per_filter_ref * len(filters) / ours.seconds
            row["ref_end"] = float(np.mean(r.activation_end))
            row["ours_end"] = float(np.mean(ours.activation_end[:n]))
            row["max_rel_diff"] = float(np.max(np.abs(ours.activation_end[:n] - r.activation_end)
                                               / np.maximum(1e-6, np.abs(r.activation_end))))
        row["ours_full_s"] = ours.seconds * args.full_filters / len(filters)
        rows.append(row)
        total_flops += flops
        total_ours += ours.seconds
        print(f"ours {layer}: {ours.seconds:.1f} s, chunk {ours.chunk}, {row['gflops']:.0f} GFLOP/s", flush=True)

    mm1 = matmul_rate()
    rate = max(mm0["tf"], mm0["numpy"], mm1["tf"], mm1["numpy"])
    print()
    print(f"fp32 matmul rate (2048^3, best of 5): tf {max(mm0['tf'], mm1['tf']):.0f} GFLOP/s, "
          f"numpy {max(mm0['numpy'], mm1['numpy']):.0f} GFLOP/s; reference rate = {rate:.0f} GFLOP/s "
          f"(before: {max(mm0.values()):.0f}, after: {max(mm1.values()):.0f})\n")
    print(f"| layer | MMACs/img | TFLOP ({len(filters)} filters) | ours (s) | ours, {args.full_filters} filters (s) "
          f"| chunk | GFLOP/s | % of matmul | per-filter loop, {args.full_filters} filters (s) | "
          "loop GFLOP/s | speedup | mean act_end ours / loop |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        ref_cols = (f"{r['ref_s_extrapolated']:.1f} (from {len(ref[r['layer']].filters)} filters) | "
                    f"{r['ref_gflops']:.0f} | {r['speedup']:.2f}x | {r['ours_end']:.4g} / {r['ref_end']:.4g}"
                    if "speedup" in r else "- | - | - | -")
        print(f"| {r['layer']} | {r['macs'] / 1e6:.0f} | {r['flops'] / 1e12:.2f} | {r['ours_s']:.1f} | "
              f"{r['ours_full_s']:.0f} | "
              f"{r['chunk']} | {r['gflops']:.0f} | {100 * r['gflops'] / rate:.0f}% | {ref_cols} |")
    full = total_ours * args.full_filters / len(filters)
    print(f"| **all** | | {total_flops / 1e12:.2f} | {total_ours:.1f} | {full:.0f} | | "
          f"{total_flops / total_ours / 1e9:.0f} | "
          f"{100 * total_flops / total_ours / 1e9 / rate:.0f}% | | | | |")
    for r in rows:
        if "max_rel_diff" in r:
            print(f"\nquality {r['layer']}: mean activation_end ours {r['ours_end']:.6g} vs loop {r['ref_end']:.6g} "
                  f"(max per-filter relative difference {r['max_rel_diff']:.1e}); "
                  f"dead filters ours {r['ours'].dead[:10]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
