"""Every Keras backend gives the same report, and each CAM method equals its paper's formula.

These tests run under whatever backend the process has (CI runs the whole
suite under TensorFlow and this file again under JAX); the cross-backend test
runs the same computation in a subprocess for every other installed backend
and compares the numbers.
"""

from __future__ import annotations

import reportgen  # noqa: F401

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

from reportgen import backend
from reportgen.analyses import cam

HERE = Path(__file__).resolve().parent


def analytic_model(seed: int = 0) -> keras.Model:
    """conv (the CAM layer, 'same', so its map is the input's size) -> global average -> dense logits.

    d logit_c / d A[i, j, k] = W[k, c] / (h * w) exactly: every gradient-based CAM has a closed form.
    """
    keras.utils.set_random_seed(seed)
    inp = keras.Input((6, 6, 2))
    a = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="maps")(inp)
    g = keras.layers.GlobalAveragePooling2D(name="gap")(a)
    out = keras.layers.Dense(3, activation="softmax", name="head")(g)
    model = keras.Model(inp, out, name="analytic")
    rng = np.random.default_rng(seed)
    model.get_layer("maps").set_weights(
        [rng.normal(0, 0.5, (3, 3, 2, 4)).astype("float32"), rng.uniform(0.0, 0.3, 4).astype("float32")]
    )
    model.get_layer("head").set_weights(
        [rng.normal(0, 1.0, (4, 3)).astype("float32"), rng.normal(0, 0.1, 3).astype("float32")]
    )
    return model


def _normalise(m: np.ndarray) -> np.ndarray:
    m = np.maximum(m, 0)
    peak = m.reshape(len(m), -1).max(axis=1)
    return m / np.where(peak > 0, peak, 1)[:, None, None]


@pytest.fixture(scope="module")
def analytic():
    model = analytic_model()
    x = np.random.default_rng(1).uniform(0, 1, (3, 6, 6, 2)).astype("float32")
    acts = keras.ops.convert_to_numpy(keras.Model(model.inputs, model.get_layer("maps").output)(x)).astype(
        np.float64
    )
    w = model.get_layer("head").kernel.numpy().astype(np.float64)
    classes = np.array([0, 2, 1])
    grads = np.stack([np.broadcast_to(w[:, c] / 36.0, acts.shape[1:]) for c in classes])  # (N, h, w, K)
    return model, x, acts, grads, classes


def test_gradcam_equals_selvaraju_formula(analytic):
    model, x, acts, grads, classes = analytic
    alpha = grads.mean(axis=(1, 2))  # Eq. 1: global-average-pooled gradients
    want = _normalise(np.einsum("nhwk,nk->nhw", acts, alpha))  # Eq. 2: ReLU of the weighted sum
    got = cam.explain(model, "maps", x, classes, method_name="gradcam")
    np.testing.assert_allclose(got.heatmaps[:, 0], want, atol=1e-5)


def test_gradcampp_equals_chattopadhyay_formula(analytic):
    model, x, acts, grads, classes = analytic
    # Eq. 19 with the exponential score: alpha = g^2 / (2 g^2 + sum_ab A_ab g^3); w_k = sum_ij alpha ReLU(g)
    g2, g3 = grads**2, grads**3
    alpha = g2 / (2 * g2 + acts.sum(axis=(1, 2), keepdims=True) * g3)
    alpha = np.where(grads != 0, alpha, 0)
    weights = (alpha * np.maximum(grads, 0)).sum(axis=(1, 2))
    want = _normalise(np.einsum("nhwk,nk->nhw", acts, weights))
    got = cam.explain(model, "maps", x, classes, method_name="gradcampp")
    np.testing.assert_allclose(got.heatmaps[:, 0], want, atol=1e-5)


def test_layercam_equals_jiang_formula(analytic):
    model, x, acts, grads, classes = analytic
    want = _normalise((np.maximum(grads, 0) * acts).sum(axis=-1))  # Eq. 5-6: ReLU(sum_k ReLU(g) A)
    got = cam.explain(model, "maps", x, classes, method_name="layercam")
    np.testing.assert_allclose(got.heatmaps[:, 0], want, atol=1e-5)


def test_scorecam_equals_wang_formula(analytic):
    model, x, acts, _grads, classes = analytic
    want = []
    for i, c in enumerate(classes):
        a = acts[i]  # the map is the input's size: the upsampling is the identity
        lo, hi = a.reshape(-1, 4).min(0), a.reshape(-1, 4).max(0)
        masks = (a - lo) / (hi - lo + 1e-8)  # H^k, scaled to [0, 1]
        baseline = keras.ops.convert_to_numpy(model(np.zeros_like(x[i : i + 1])))[0, c]
        # C(A^k) = f(X * H^k) - f(X_b), f the class probability (softmax output)
        scores = (
            np.array(
                [
                    keras.ops.convert_to_numpy(model(x[i : i + 1] * masks[None, :, :, k : k + 1]))[0, c]
                    for k in range(4)
                ]
            )
            - baseline
        )
        want.append(np.einsum("hwk,k->hw", a, scores))
    got = cam.explain(model, "maps", x, classes, method_name="scorecam")
    np.testing.assert_allclose(got.heatmaps[:, 0], _normalise(np.stack(want)), atol=1e-5)


def test_report_records_the_backend(tmp_path):
    from reportgen.context import LoadedModel, Options
    from reportgen.report import build_report

    _folder, data = build_report(
        LoadedModel(analytic_model(), "m", "(test)", None),
        Options(sections=("overview",), quiet=True),
        tmp_path,
        ("json",),
    )
    assert data["versions"]["backend"] == keras.backend.backend() == backend.name()
    assert data["versions"][{"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}[backend.name()]]


# --- the same numbers on every backend ----------------------------------------------------------

PROBE = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, {tests!r})
    import reportgen
    from reportgen import backend
    backend.import_keras()
    import keras, numpy as np
    import awkward_models  # registers MiniHED
    from reportgen import graph
    from reportgen.analyses import cam, feature_maps
    from reportgen.analyses import patterns as fp
    from reportgen.preprocessing import Preprocessor
    out = {{"backend": backend.name()}}
    model = keras.saving.load_model({model!r})
    x = np.load({images!r})
    refs = [r for r in graph.walk(model) if r.path in ("conv_a", "pool_a", "conv_b")]
    out["features"] = {{m.path: m.channel_mean.tolist() for m in feature_maps.compute(model, refs, x)}}
    for name in cam.METHODS:
        out[name] = cam.explain(model, "conv_b", x, top_k=2, method_name=name).heatmaps.tolist()
    r = fp.filter_patterns(model, "conv_b", list(range(6)), 16, 5, Preprocessor("unit"), seed=3)
    out["patterns"] = r.activation_end.tolist()
    hed = keras.saving.load_model({hed!r})
    out["hed"] = cam.explain(hed, "block3/block3_conv2", np.load({hed_images!r})).heatmaps.tolist()
    print("RESULT" + json.dumps(out))
""")


def _probe(backend_name: str, paths: dict) -> subprocess.Popen:
    """Start the probe on a backend, in its own process (the ``probes`` fixture waits for it)."""
    code = PROBE.format(tests=str(HERE), **{k: str(v) for k, v in paths.items()})
    env = {**os.environ, "KERAS_BACKEND": backend_name}
    return subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def _output(proc: subprocess.Popen) -> tuple[str, str]:
    """The probe's stdout and stderr; one still running after 600 s is killed (its output so far)."""
    try:
        return proc.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.communicate()


def _numbers(backend_name: str, output: tuple[str, str]) -> dict:
    stdout, stderr = output
    line = [ln for ln in stdout.splitlines() if ln.startswith("RESULT")]
    assert line, f"{backend_name} probe failed:\n{stdout[-2000:]}\n{stderr[-4000:]}"
    return json.loads(line[0][len("RESULT") :])


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    import awkward_models as A
    from conftest import small_cnn

    folder = tmp_path_factory.mktemp("backends")
    model = small_cnn()
    rng = np.random.default_rng(2)
    for v in model.weights:  # trained-looking, every ReLU alive on the test images
        v.assign(
            rng.normal(0, 0.4, v.shape).astype("float32")
            if "kernel" in v.path
            else rng.uniform(0.05, 0.2, v.shape).astype("float32")
        )
    model.save(folder / "small.keras")
    np.save(folder / "x.npy", rng.uniform(0, 1, (2, 16, 16, 3)).astype("float32"))
    A.hed().save(folder / "hed.keras")
    np.save(folder / "hed_x.npy", A.images(2, 32))
    return {
        "model": folder / "small.keras",
        "images": folder / "x.npy",
        "hed": folder / "hed.keras",
        "hed_images": folder / "hed_x.npy",
    }


OTHERS = [b for b in ("tensorflow", "jax", "torch") if importlib.util.find_spec(b)]


@pytest.fixture(scope="module")
def probes(saved) -> dict:
    """{backend: the probe's (stdout, stderr)}: this process's backend and every other installed one, each
    probe in a process of its own, all started together; this process's backend is probed once, not once
    for each other backend."""
    started = {name: _probe(name, saved) for name in OTHERS}
    try:
        return {name: _output(proc) for name, proc in started.items()}
    finally:
        for proc in started.values():
            if proc.poll() is None:
                proc.kill()


@pytest.mark.parametrize("other", OTHERS)
def test_every_backend_gives_the_same_numbers(request, other):
    if other == backend.name():
        pytest.skip("the backend of this process is the reference")
    probes = request.getfixturevalue("probes")
    here = _numbers(backend.name(), probes[backend.name()])
    there = _numbers(other, probes[other])
    assert here["backend"] == backend.name() and there["backend"] == other
    for layer, means in here["features"].items():
        np.testing.assert_allclose(there["features"][layer], means, atol=1e-4, rtol=1e-4)
    for name in cam.METHODS:
        np.testing.assert_allclose(there[name], here[name], atol=1e-4)
    np.testing.assert_allclose(there["patterns"], here["patterns"], rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(there["hed"], here["hed"], atol=1e-4)


@pytest.mark.parametrize("other", [b for b in ("jax", "torch") if importlib.util.find_spec(b)])
def test_a_report_on_another_backend_never_imports_tensorflow(other, saved):
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(HERE)!r})
        from reportgen import Report
        r = Report({str(saved["model"])!r},
                   sections="overview,layers,weights,kernels,features,gradcam,patterns,findings",
                   pattern_steps=1, pattern_filters=2)
        data = r.json
        print("RESULT", data["versions"]["backend"], data["section_errors"], "tensorflow" in sys.modules)
    """)
    res = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "KERAS_BACKEND": other},
    )
    line = [ln for ln in res.stdout.splitlines() if ln.startswith("RESULT")]
    assert line, res.stderr[-3000:]
    assert line[0] == f"RESULT {other} [] False"
