"""The cost of the spectral alpha: per layer and in all, against the whole weights analysis (and
WeightWatcher).

The alpha is computed inside the weights analysis (one pass over the layers); this times it on its own,
layer by layer -- the eigenvalues (batched Gram matrices and ``eigvalsh``) and the power-law fit (the
xmin scan) separately -- then the whole weights analysis, which includes it. With ``--ww``, WeightWatcher
0.7.7's ``analyze(min_evals=50)`` on the same model, and the largest relative difference of the alphas.

    python3 bench/alpha.py                # VGG16, weights=None (fresh: alpha is cost-independent of training)
    python3 bench/alpha.py --ww           # and WeightWatcher's time and alphas
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import reportgen  # noqa: F401  (quiets TensorFlow)


def main() -> None:
    ap = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    ap.add_argument("--ww", action="store_true", help="also time WeightWatcher 0.7.7 on the same model")
    ap.add_argument("--model", default="VGG16", help="a keras.applications name (weights=None)")
    args = ap.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # figures as they come (a long run can be watched)

    import keras

    from reportgen import graph
    from reportgen.analyses import spectral
    from reportgen.analyses.weights import _array, _main_for_filters, weight_analysis
    from reportgen.analyses.baseline import variable_name

    model = getattr(keras.applications, args.model)(weights=None)
    rows, total_eig, total_fit = [], 0.0, 0.0
    ours = {}
    for ref in graph.weighted_layers(model):
        layer = ref.layer
        by_name = {variable_name(v): _array(v) for v in layer.weights}
        k = _main_for_filters(layer, by_name)
        if k is None:
            continue
        n = spectral.num_evals(k.shape)
        t0 = time.perf_counter()
        fit = spectral.spectral_fit(k)
        t_all = time.perf_counter() - t0
        t_eig = t_fit = 0.0
        if fit is not None and fit.alpha is not None:
            t0 = time.perf_counter()
            ev = spectral.eigenvalues(k)
            t_eig = time.perf_counter() - t0
            t0 = time.perf_counter()
            spectral.fit_power_law(ev[ev > spectral.EVALS_THRESH])
            t_fit = time.perf_counter() - t0
        total_eig, total_fit = total_eig + t_eig, total_fit + t_fit
        ours[layer.name] = fit.alpha if fit is not None else None
        rows.append((ref.path, tuple(k.shape), n, fit.alpha if fit else None, t_eig, t_fit, t_all))

    print("| layer | kernel | eigenvalues | alpha | eigenvalues (s) | fit (s) |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for path, shape, n, alpha, te, tf, _ in rows:
        a = f"{alpha:.2f}" if alpha is not None else "--"
        print(f"| {path} | {'x'.join(map(str, shape))} | {n} | {a} | {te:.3f} | {tf:.3f} |")
    spectral_total = sum(r[6] for r in rows)
    print(
        f"\nalpha, all layers: {spectral_total:.2f} s (eigenvalues {total_eig:.2f} s, fits {total_fit:.2f} s)"
    )

    t0 = time.perf_counter()
    weight_analysis(model, seed=0)
    whole = time.perf_counter() - t0
    print(
        f"whole weights analysis (alpha included): {whole:.2f} s; alpha's share {spectral_total / whole:.0%}"
    )

    if args.ww:
        import logging

        import weightwatcher as ww

        logging.getLogger("weightwatcher").setLevel(logging.ERROR)
        t0 = time.perf_counter()
        details = ww.WeightWatcher(model=model).analyze(min_evals=50)
        t_ww = time.perf_counter() - t0
        print(
            f"WeightWatcher {ww.__version__} analyze(min_evals=50): "
            f"{t_ww:.2f} s ({len(details)} layers fitted)"
        )
        worst = 0.0
        for name, a in zip(details["name"], details["alpha"]):
            mine = ours.get(name)
            rel = abs(mine - a) / a if mine is not None else float("nan")
            worst = max(worst, rel) if np.isfinite(rel) else worst
            print(
                f"  {name}: WeightWatcher {a:.4f}, ours {mine if mine is None else round(mine, 4)}, "
                f"relative difference {rel:.1e}"
            )
        print(f"largest relative difference: {worst:.1e}")


if __name__ == "__main__":
    main()
