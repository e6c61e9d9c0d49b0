"""Fault injection: does the audit find each kind of defect, and stay quiet on the clean model?

``python bench/audit_faults.py MODEL`` loads MODEL (a ``.keras`` file, or
``demo`` / ``vgg16-digits`` / ``bn-digits`` for the trained yardsticks made
offline), prints the findings on the clean model, then injects each fault
kind at seeded random places, several trials each, and prints the recall per
kind: the share of trials in which the audit reports the injected defect as
the finding kind it should be, on the right layer (and filter/unit):

=========================  ====================================================  ===================
fault                      injection                                              expected finding
=========================  ====================================================  ===================
zeroed filter              a conv filter's kernel and bias set to 0              dead_filter
NaN weight                 one kernel weight set to NaN                          nonfinite_weights
duplicated filter          filter b := c * filter a (c in [0.5, 2]) in one conv  duplicate_filters (b)
layer re-initialised       a kernel layer's weights drawn afresh ("not loaded")   untrained_layer
frozen at init (demo)      the demo trained with one layer frozen at its init    untrained_layer
BatchNorm gamma collapsed  one BatchNormalization channel's gamma set to 0       bn_gamma
kernel scaled x100         a kernel layer's kernel multiplied by 100             exploding_scale
dead ReLU unit             a ReLU unit's bias set to -100                        inactive_unit
=========================  ====================================================  ===================

The activation checks read ``--images`` held-out digits (default 32, at
least the 8 the audit needs to call a unit inactive). Findings are the
audit's at default thresholds (:func:`reportgen.analyses.findings.audit`).

Usage::

    python bench/audit_faults.py demo --trials 5
    python bench/audit_faults.py vgg16-digits --trials 5 --markdown
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import reportgen  # noqa: E402,F401

import numpy as np  # noqa: E402

KINDS = [
    "zeroed filter",
    "NaN weight",
    "duplicated filter",
    "layer re-initialised",
    "frozen at init",
    "BatchNorm gamma collapsed",
    "kernel scaled x100",
    "dead ReLU unit",
]


# --- the models -----------------------------------------------------------------------------


def demo_model(seed: int = 0, frozen: str | None = None, epochs: int = 20):
    """The demo's CNN trained on the bundled digits as ``reportgen demo`` does; ``frozen``: a layer
    left at its initialisation (trainable=False) throughout."""
    import keras

    from reportgen.demo import build_model, load_digits_28, split

    images, labels, _ = load_digits_28()
    tr, va, _te = split(len(images), seed)
    x = images[..., None].astype("float32") / 255.0
    keras.utils.set_random_seed(seed)
    model = build_model()
    if frozen:
        model.get_layer(frozen).trainable = False
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(
        x[tr],
        labels[tr],
        epochs=epochs,
        batch_size=32,
        verbose=0,
        validation_data=(x[va], labels[va]),
        callbacks=[keras.callbacks.EarlyStopping(patience=2, restore_best_weights=True)],
    )
    return model


def bn_model(seed: int = 0):
    """A small CNN with BatchNormalization, trained on the digits (for the gamma fault)."""
    import keras

    from reportgen.demo import load_digits_28, split

    images, labels, _ = load_digits_28()
    tr, _va, _te = split(len(images), seed)
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(32, 3, padding="same", name="conv1"),
            keras.layers.BatchNormalization(name="bn1"),
            keras.layers.Activation("relu", name="relu1"),
            keras.layers.MaxPooling2D(2, name="pool1"),
            keras.layers.Conv2D(64, 3, padding="same", name="conv2"),
            keras.layers.BatchNormalization(name="bn2"),
            keras.layers.Activation("relu", name="relu2"),
            keras.layers.GlobalAveragePooling2D(name="gap"),
            keras.layers.Dense(10, activation="softmax", name="out"),
        ],
        name="bn_digits",
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(images[tr][..., None] / 255.0, labels[tr], epochs=10, batch_size=32, verbose=0)
    return model


def held_out(name: str, n: int) -> np.ndarray:
    from reportgen.demo import load_digits_28, split

    if name == "vgg16-digits":
        import trained_vgg16

        x, _y = trained_vgg16.digits_rgb()
        _tr, te = trained_vgg16.split(len(x))
        return x[te][:n].astype("float32")
    images, _labels, _ = load_digits_28()
    _tr, _va, te = split(len(images), 0)
    return (images[te][:n, ..., None] / 255.0).astype("float32")


def load(spec: str):
    import keras

    if spec == "demo":
        return demo_model()
    if spec == "bn-digits":
        return bn_model()
    if spec == "vgg16-digits":
        import trained_vgg16

        return keras.saving.load_model(trained_vgg16.ensure())
    return keras.saving.load_model(spec)


# --- faults ---------------------------------------------------------------------------------


def _leaves(model):
    from reportgen import graph

    return [r for r in graph.walk(model) if not r.is_model and not r.is_op and not graph.children(r.layer)]


def _var(layer, name):
    return next(v for v in layer.weights if v.path.rsplit("/", 1)[-1] == name)


def inject(kind: str, model, rng: np.random.Generator, spec: str):
    """Put one fault into ``model``; returns (model, expected (kind, layer, filter or None)) or None."""
    import keras

    from reportgen import graph
    from reportgen.analyses.baseline import fresh_values

    leaves = _leaves(model)
    convs = [
        r
        for r in leaves
        if graph.is_conv(r.layer)
        and not isinstance(r.layer, (keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D))
        and getattr(r.layer, "groups", 1) == 1
    ]
    kernels = [r for r in leaves if graph.kernel_variables(r.layer)]
    if kind == "zeroed filter":
        ref = convs[rng.integers(len(convs))]
        f = int(rng.integers(ref.layer.filters))
        k = ref.layer.kernel.numpy()
        k[..., f] = 0.0
        ref.layer.kernel.assign(k)
        if ref.layer.use_bias:
            b = ref.layer.bias.numpy()
            b[f] = 0.0
            ref.layer.bias.assign(b)
        return model, ("dead_filter", ref.path, f)
    if kind == "NaN weight":
        ref = kernels[rng.integers(len(kernels))]
        var = graph.main_kernel(ref.layer)
        k = var.numpy()
        k.reshape(-1)[rng.integers(k.size)] = np.nan
        var.assign(k)
        return model, ("nonfinite_weights", ref.path, None)
    if kind == "duplicated filter":
        ref = convs[rng.integers(len(convs))]
        a, b = (int(v) for v in rng.choice(ref.layer.filters, 2, replace=False))
        k = ref.layer.kernel.numpy()
        k[..., b] = k[..., a] * rng.uniform(0.5, 2.0)
        ref.layer.kernel.assign(k)
        return model, ("duplicate_filters", ref.path, max(a, b))
    if kind == "layer re-initialised":
        ref = kernels[rng.integers(len(kernels))]
        values = fresh_values(ref.layer, ref.path + "#fault", int(rng.integers(1 << 30)), ref.input_shape)
        ref.layer.set_weights(values)
        return model, ("untrained_layer", ref.path, None)
    if kind == "frozen at init":
        if spec != "demo":
            return None
        names = [r.path for r in kernels]
        name = names[rng.integers(len(names))]
        return demo_model(frozen=name), ("untrained_layer", name, None)
    if kind == "BatchNorm gamma collapsed":
        bns = [r for r in leaves if isinstance(r.layer, keras.layers.BatchNormalization) and r.layer.scale]
        if not bns:
            return None
        ref = bns[rng.integers(len(bns))]
        c = int(rng.integers(ref.layer.gamma.shape[0]))
        g = ref.layer.gamma.numpy()
        g[c] = 0.0
        ref.layer.gamma.assign(g)
        return model, ("bn_gamma", ref.path, c)
    if kind == "kernel scaled x100":
        ref = kernels[rng.integers(len(kernels))]
        for var in graph.kernel_variables(ref.layer).values():
            var.assign(var.numpy() * 100.0)
        return model, ("exploding_scale", ref.path, None)
    if kind == "dead ReLU unit":
        from reportgen.analyses.activations import activation_layers

        relus = [
            r
            for r in activation_layers(model)
            if getattr(r.layer, "use_bias", False)
            and getattr(getattr(r.layer, "activation", None), "__name__", "") in ("relu", "relu6")
            and r.path in {x.path for x in kernels}
        ]
        if not relus:
            return None
        ref = relus[rng.integers(len(relus))]
        units = ref.layer.bias.shape[0]
        u = int(rng.integers(units))
        b = ref.layer.bias.numpy()
        b[u] = -100.0
        ref.layer.bias.assign(b)
        return model, ("inactive_unit", ref.path, u)
    raise ValueError(kind)


def found(findings: list[dict], expected: tuple) -> bool:
    """Is the expected (kind, layer, filter) among the findings, rolled up or capped ones included?"""
    kind, layer, filt = expected
    for f in findings:
        if f["kind"] != kind:
            continue
        items = f.get("items") or [f]
        for item in items:
            if item["layer"] != layer:
                continue
            if filt is None or item.get("filter") == filt or filt in (item.get("filters") or []):
                return True
    return False


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("model", help="a .keras file, or demo / vgg16-digits / bn-digits")
    p.add_argument("--trials", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--images", type=int, default=32)
    p.add_argument("--kinds", nargs="+", default=KINDS, choices=KINDS, metavar="KIND")
    p.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    args = p.parse_args()

    import keras

    from reportgen import backend
    from reportgen.analyses.findings import audit, summarise

    backend.import_keras()
    t0 = time.perf_counter()
    clean = load(args.model)
    images = held_out(args.model, args.images)
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"audit-faults-{os.getpid()}.keras"
    clean.save(path)
    base = audit(clean, images, seed=args.seed)
    print(
        f"{args.model}: {clean.count_params():,} parameters, {len(images)} held-out images; "
        f"clean model: {summarise(base)}"
    )
    for f in base:
        print(
            f"  clean: {f['severity']:7s} {f['kind']:20s} "
            f"{f.get('layer') or f.get('layers')}: {f['message'][:110]}"
        )
    rng = np.random.default_rng(args.seed)
    rows = []
    for kind in args.kinds:
        hits, trials, misses, extra = 0, 0, [], 0
        for _ in range(args.trials):
            model = keras.saving.load_model(path)
            made = inject(kind, model, rng, args.model)
            if made is None:
                break
            faulty, expected = made
            got = audit(faulty, images, seed=args.seed)
            trials += 1
            if found(got, expected):
                hits += 1
            else:
                misses.append(expected[1:])
            extra += sum(1 for f in got if f["severity"] != "info") - sum(
                1 for f in base if f["severity"] != "info"
            )
        rows.append((kind, hits, trials, misses))
        status = "n/a" if not trials else f"{hits}/{trials} = {100 * hits / trials:.0f}%"
        print(f"{kind:26s} recall {status}" + (f"; missed at {misses}" if misses else ""), flush=True)
    path.unlink(missing_ok=True)
    if args.markdown:
        print(f"\n| fault ({args.model}) | trials | found | recall |\n|---|---:|---:|---:|")
        for kind, hits, trials, _m in rows:
            print(
                f"| {kind} | {trials or 'n/a'} | {hits if trials else 'n/a'} | "
                f"{f'{100 * hits / trials:.0f}%' if trials else 'n/a'} |"
            )
        print(f"\nClean model: {summarise(base)}; {time.perf_counter() - t0:.0f} s in all.")


if __name__ == "__main__":
    main()
