"""Benchmark: the batched filter-pattern ascent against the tutorial's per-filter loop, on any backend.

ONE run measures, on VGG16 (weights=None: the cost does not depend on the
weights) at the tutorial's settings (150x150, 40 steps):

- the machine's fp32 matrix-multiply rate on the backend (a 2048^3
  ``keras.ops.matmul``, compiled) and in NumPy, best of several, before and
  after the work;
- our time per layer (``reportgen.analyses.patterns.filter_patterns``), after
  one warm-up call that compiles the step, with the tutorial's objective (the
  activation after the ReLU; the report's pre-activation objective costs the
  same);
- the tutorial's per-filter loop (``reference_patterns``) on a subset of layers
  and filters, extrapolated linearly in the number of filters;
- with ``--backend jax``, the anchor of issue 9: a plain batched ``jax.jit``
  ascent written directly against Keras' ``stateless_call`` with no reportgen
  in the loop (all filters of a layer in one batch), at the same precision;
- the FLOP count: 4 x (multiply-adds from the input up to and including the
  layer) x steps x filters (forward 2, backward to the input 2);
- quality: the mean ``activation_end`` of ours and of the loop.

Usage::

    python bench/patterns.py                        # TensorFlow, five layers x 16 filters (~6 min on 2 cores)
    python bench/patterns.py --quick                # ~1 min
    python bench/patterns.py --backend jax --filters 64 --full-filters 64 --reference-layers --anchor
    python bench/patterns.py --backend jax --precision default --anchor   # TF32 on GPUs
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

LAYERS = ["block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1"]


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--backend",
        choices=["tensorflow", "jax", "torch"],
        default=None,
        help="KERAS_BACKEND for this run (default: the environment's)",
    )
    ap.add_argument(
        "--precision",
        choices=["highest", "default"],
        default="highest",
        help="GPU matmul precision: highest = full float32 (the report's), default = the backend's "
        "own (TF32 on NVIDIA GPUs)",
    )
    ap.add_argument("--layers", nargs="+", default=LAYERS)
    ap.add_argument(
        "--filters",
        type=int,
        default=16,
        help="filters per layer (default 16, times extrapolated to --full-filters)",
    )
    ap.add_argument("--full-filters", type=int, default=64)
    ap.add_argument("--size", type=int, default=150)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument(
        "--reference-layers",
        nargs="*",
        default=["block3_conv1"],
        help="layers on which the per-filter loop is timed (none: skip)",
    )
    ap.add_argument(
        "--reference-filters",
        type=int,
        default=8,
        help="filters the loop runs per reference layer (extrapolated to --filters)",
    )
    ap.add_argument(
        "--anchor", action="store_true", help="time the plain jax.jit + stateless_call ascent (JAX)"
    )
    ap.add_argument("--chunk", type=int, default=None, help="override the chunk size")
    ap.add_argument("--jit", choices=["auto", "on", "off"], default="auto", help="XLA for TensorFlow")
    ap.add_argument("--quick", action="store_true", help="block1_conv1+block3_conv1, 8 filters, 10 steps")
    args = ap.parse_args(argv)
    if args.quick:
        args.layers = ["block1_conv1", "block3_conv1"]
        args.filters, args.steps, args.reference_filters = 8, 10, 4
    return args


def matmul_rate(n: int = 2048, repeats: int = 5) -> dict[str, float]:
    """Best-of fp32 GFLOP/s of an n x n matmul: on the backend (compiled) and in NumPy."""
    import keras
    import numpy as np

    from reportgen import backend

    a = backend.tensor(np.random.default_rng(1).random((n, n), dtype=np.float32))
    b = backend.tensor(np.random.default_rng(2).random((n, n), dtype=np.float32))
    mm = backend.function(lambda x, y: keras.ops.matmul(x, y))
    backend.numpy(mm(a, b))
    best = 0.0
    for _ in range(repeats):
        t = time.perf_counter()
        backend.numpy(mm(a, b))
        best = max(best, 2 * n**3 / (time.perf_counter() - t) / 1e9)
    an = np.random.default_rng(0).random((n, n), dtype=np.float32)
    bn = an.T.copy()
    an @ bn
    best_np = 0.0
    for _ in range(repeats):
        t = time.perf_counter()
        an @ bn
        best_np = max(best_np, 2 * n**3 / (time.perf_counter() - t) / 1e9)
    return {"backend": best, "numpy": best_np}


def plain_jax_ascent(
    model, layer: str, filters: list[int], steps: int, step: float, start
) -> tuple[float, float]:
    """Issue 9's anchor: a batched jax.jit ascent against ``stateless_call``, no reportgen in the loop.

    Returns (seconds, mean activation at the end). ``start``: the same start images as ours.
    """
    import jax
    import jax.numpy as jnp
    import keras

    prefix = keras.Model(model.input, model.get_layer(layer).output)  # the same weights as ours
    tv = [v.value for v in prefix.trainable_variables]
    ntv = [v.value for v in prefix.non_trainable_variables]
    f = jnp.asarray(filters)

    def loss(x, tv, ntv):
        y, _ = prefix.stateless_call(tv, ntv, x, training=False)
        means = y.mean(axis=(1, 2))
        return jnp.take_along_axis(means, f[:, None], axis=1).sum()

    @jax.jit
    def ascend(x, tv, ntv):
        g = jax.grad(loss)(x, tv, ntv)
        g = g / (jnp.sqrt(jnp.mean(g * g, axis=(1, 2, 3), keepdims=True)) + 1e-5)
        return x + step * g

    x = jnp.asarray(start)
    ascend(x, tv, ntv).block_until_ready()  # compile
    t = time.perf_counter()
    for _ in range(steps):
        x = ascend(x, tv, ntv)
    x.block_until_ready()
    seconds = time.perf_counter() - t
    y, _ = prefix.stateless_call(tv, ntv, x, training=False)
    return seconds, float(jnp.take_along_axis(y.mean(axis=(1, 2)), f[:, None], axis=1).mean())


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.backend:
        os.environ["KERAS_BACKEND"] = args.backend
    import reportgen  # noqa: F401  (quiets TensorFlow)
    from reportgen import backend

    keras = backend.import_keras()
    import numpy as np

    if args.precision == "default":
        backend.set_precision("default")
    from reportgen.analyses import patterns as fp
    from reportgen.preprocessing import Preprocessor

    jit = None if args.jit == "auto" else args.jit == "on"
    print("# reportgen filter-pattern benchmark\n")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} "
        f"CPUs, accelerator: {backend.accelerator() or 'none'}"
    )
    print(
        f"versions: python {platform.python_version()}, {backend.versions()}, keras {keras.__version__}, "
        f"numpy {np.__version__}; matmul precision: {args.precision}"
    )
    print(f"command: python bench/patterns.py {' '.join(sys.argv[1:] if argv is None else argv)}")
    print(
        f"settings: VGG16 weights=None, {args.size}x{args.size}, {args.steps} steps, "
        f"{args.filters} filters per layer measured, times scaled to {args.full_filters}\n",
        flush=True,
    )

    mm0 = matmul_rate()
    model = keras.applications.VGG16(weights=None, include_top=False)
    pre = Preprocessor("caffe")
    filters = list(range(args.filters))
    objective = "activation"  # the tutorial's loss, as the loop and the anchor compute it

    ref: dict = {}
    for layer in args.reference_layers:
        ref_filters = filters[: args.reference_filters]
        fp.reference_patterns(model, layer, ref_filters[:1], args.size, 1, pre)  # compile once
        ref[layer] = fp.reference_patterns(model, layer, ref_filters, args.size, args.steps, pre)
        print(f"reference {layer}: {len(ref_filters)} filters in {ref[layer].seconds:.1f} s", flush=True)

    rows = []
    total_flops = total_ours = 0.0
    for layer in args.layers:
        macs = fp.macs_up_to(model, layer, args.size)
        flops = 4.0 * macs * args.steps * len(filters)
        same = dict(
            jit=jit, max_chunk=args.chunk, objective=objective, retry_flat=False
        )  # the loop's algorithm
        fp.filter_patterns(model, layer, filters[:2], args.size, 1, pre, **same)
        ours = fp.filter_patterns(model, layer, filters, args.size, args.steps, pre, **same)
        row = {
            "layer": layer,
            "macs": macs,
            "flops": flops,
            "ours_s": ours.seconds,
            "chunk": ours.chunk,
            "gflops": flops / ours.seconds / 1e9,
            "ours": ours,
        }
        if layer in ref:
            r = ref[layer]
            n = len(r.filters)
            per_filter_ref = r.seconds / n
            row["ref_s_extrapolated"] = per_filter_ref * args.full_filters
            row["ref_gflops"] = 4.0 * macs * args.steps * n / r.seconds / 1e9
            row["speedup"] = per_filter_ref * len(filters) / ours.seconds
            row["ref_end"] = float(np.mean(r.activation_end))
            row["ours_end"] = float(np.mean(ours.activation_end[:n]))
            row["max_rel_diff"] = float(
                np.max(
                    np.abs(ours.activation_end[:n] - r.activation_end)
                    / np.maximum(1e-6, np.abs(r.activation_end))
                )
            )
        if args.anchor:
            if backend.name() != "jax":
                raise SystemExit("--anchor needs --backend jax")
            start = pre.forward(fp.start_pixels(filters, args.size, 3, 0))
            sec, end = plain_jax_ascent(model, layer, filters, args.steps, fp.pixel_step(pre, 3), start)
            row["anchor_s"], row["anchor_end"] = sec, end
            row["vs_anchor"] = ours.seconds / sec
        row["ours_full_s"] = ours.seconds * args.full_filters / len(filters)
        rows.append(row)
        total_flops += flops
        total_ours += ours.seconds
        extra = (
            f", anchor {row['anchor_s']:.2f} s (ours/anchor {row['vs_anchor']:.2f}x)" if args.anchor else ""
        )
        print(
            f"ours {layer}: {ours.seconds:.2f} s, chunk {ours.chunk}, {row['gflops']:.0f} GFLOP/s{extra}",
            flush=True,
        )

    mm1 = matmul_rate()
    rate = max(mm0["backend"], mm0["numpy"], mm1["backend"], mm1["numpy"])
    print()
    print(
        f"fp32 matmul rate (2048^3, best of 5): {backend.name()} "
        f"{max(mm0['backend'], mm1['backend']):.0f} GFLOP/s, "
        f"numpy {max(mm0['numpy'], mm1['numpy']):.0f} GFLOP/s; reference rate = {rate:.0f} GFLOP/s "
        f"(before: {max(mm0.values()):.0f}, after: {max(mm1.values()):.0f})\n"
    )
    anchor_head = " anchor (s) | ours / anchor |" if args.anchor else ""
    print(
        f"| layer | MMACs/img | TFLOP ({len(filters)} filters) "
        f"| ours (s) | ours, {args.full_filters} filters (s) "
        f"| chunk | GFLOP/s | % of matmul | per-filter loop, {args.full_filters} filters (s) | "
        f"loop GFLOP/s | speedup | mean act_end ours / loop |{anchor_head}"
    )
    print(
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|" + ("---:|---:|" if args.anchor else "")
    )
    for r in rows:
        ref_cols = (
            f"{r['ref_s_extrapolated']:.1f} (from {len(ref[r['layer']].filters)} filters) | "
            f"{r['ref_gflops']:.0f} | {r['speedup']:.2f}x | {r['ours_end']:.4g} / {r['ref_end']:.4g}"
            if "speedup" in r
            else "- | - | - | -"
        )
        anchor_cols = f" {r['anchor_s']:.2f} | {r['vs_anchor']:.2f}x |" if args.anchor else ""
        print(
            f"| {r['layer']} | {r['macs'] / 1e6:.0f} | {r['flops'] / 1e12:.2f} | {r['ours_s']:.2f} | "
            f"{r['ours_full_s']:.0f} | "
            f"{r['chunk']} | {r['gflops']:.0f} | {100 * r['gflops'] / rate:.0f}% | {ref_cols} |{anchor_cols}"
        )
    full = total_ours * args.full_filters / len(filters)
    anchor_total = (
        f" {sum(r['anchor_s'] for r in rows):.2f} | {total_ours / sum(r['anchor_s'] for r in rows):.2f}x |"
        if args.anchor
        else ""
    )
    print(
        f"| **all** | | {total_flops / 1e12:.2f} | {total_ours:.2f} | {full:.0f} | | "
        f"{total_flops / total_ours / 1e9:.0f} | "
        f"{100 * total_flops / total_ours / 1e9 / rate:.0f}% | | | | |{anchor_total}"
    )
    for r in rows:
        if "max_rel_diff" in r:
            print(
                f"\nquality {r['layer']}: mean activation_end ours "
                f"{r['ours_end']:.6g} vs loop {r['ref_end']:.6g} "
                f"(max per-filter relative difference {r['max_rel_diff']:.1e}); "
                f"flat filters ours {r['ours'].dead[:10]}"
            )
        if "anchor_end" in r:
            print(
                f"anchor {r['layer']}: mean activation_end anchor {r['anchor_end']:.6g} vs ours "
                f"{float(np.mean(r['ours'].activation_end)):.6g}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
