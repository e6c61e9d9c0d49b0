"""Spectral alpha (issue 20, the WeightWatcher method): against a direct computation, against WeightWatcher
0.7.7 itself on a trained model, the findings on layers of known alpha, and report.json's keys."""

from __future__ import annotations

import reportgen  # noqa: F401

import json
from pathlib import Path

import keras
import numpy as np
import pytest

import digits_models as dm
from reportgen import config
from reportgen.analyses import findings as F
from reportgen.analyses.weights import weight_analysis
from reportgen.context import LoadedModel, Options
from reportgen.report import build_report

SCHEMA = json.loads((Path(__file__).resolve().parents[1] / "docs" / "report.schema.json").read_text())


@pytest.fixture(scope="module")
def trained():
    """The digits CNN trained on real data (conv2: 3x3 from 16 to 32 channels, 144 eigenvalues; dense1:
    2048 -> 64, 64 eigenvalues; conv1 (9) and out (10) too small to fit), and its weight facts."""
    model = dm.trained()
    return model, weight_analysis(model, seed=0)


def direct_eigenvalues(kernel: np.ndarray) -> np.ndarray:
    """Independent of the code under test: a full SVD of each kernel position's (in, out) matrix, the squared
    singular values pooled; conv slices scaled by 1/sqrt(2) first, as WeightWatcher does (conv2d_norm)."""
    k = kernel.astype(np.float64)
    mats = [k] if k.ndim == 2 else [k[idx] for idx in np.ndindex(*k.shape[:-2])]
    scale = 1.0 if k.ndim == 2 else 0.5
    return np.sort(np.concatenate([np.linalg.svd(m, compute_uv=False) ** 2 * scale for m in mats]))


def direct_fit(evals: np.ndarray) -> tuple[float, float]:
    """The Clauset et al. xmin scan written out, one candidate at a time: (alpha, xmin).

    For each candidate xmin, the power-law MLE alpha = 1 + n / sum(log(x / xmin)) over the n values >= xmin,
    and the largest gap between the fitted CDF 1 - (x/xmin)^(1-alpha) and the empirical k/n of the sorted
    tail; the smallest gap wins (the first on a tie), as in WeightWatcher's WWFit.
    """
    x = np.sort(evals[evals > 1e-5])
    best = (np.inf, None, None)
    for i in range(len(x) - 1):
        tail = x[i:]
        n = len(tail)
        alpha = 1.0 + n / float(np.sum(np.log(tail / x[i])))
        if alpha <= 1.0:
            continue
        gap = max(abs(1.0 - (v / x[i]) ** (1.0 - alpha) - k / n) for k, v in enumerate(tail))
        if gap < best[0]:
            best = (gap, alpha, x[i])
    return best[1], best[2]


def power_law_kernel(alpha: float, n_in: int = 1024, n_out: int = 256, seed: int = 0) -> np.ndarray:
    """An (n_in, n_out) kernel whose WᵀW eigenvalues are the quantiles of a Pareto law of exponent ``alpha``
    (density ~ λ^-alpha from 1 up): random orthogonal singular vectors, singular values sqrt(λ)."""
    rng = np.random.default_rng(seed)
    u = (np.arange(n_out) + 0.5) / n_out
    evals = (1.0 - u) ** (-1.0 / (alpha - 1.0))
    left, _ = np.linalg.qr(rng.standard_normal((n_in, n_out)))
    right, _ = np.linalg.qr(rng.standard_normal((n_out, n_out)))
    return ((left * np.sqrt(evals)) @ right.T).astype(np.float32)


def dense_model(kernels: list[np.ndarray]) -> keras.Model:
    """A stack of Dense layers holding the given kernels (biases zero)."""
    layers = [keras.Input((kernels[0].shape[0],))]
    layers += [keras.layers.Dense(k.shape[1], name=f"d{i}") for i, k in enumerate(kernels)]
    model = keras.Sequential(layers)
    for layer, k in zip(model.layers, kernels):
        layer.set_weights([k, np.zeros(k.shape[1], np.float32)])
    return model


def test_alpha_is_the_power_law_fit_of_the_numpy_eigenvalues_of_the_models_own_weights(trained):
    model, facts = trained
    fitted = 0
    for layer in model.layers:
        if not hasattr(layer, "kernel"):
            continue
        sp = facts[layer.name].spectral
        evals = direct_eigenvalues(layer.kernel.numpy())
        assert sp.num_evals == evals.size
        if evals.size < 50:
            assert sp.alpha is None and sp.xmin is None and "fewer than the 50" in sp.reason
            continue
        alpha, xmin = direct_fit(evals)
        assert sp.alpha == pytest.approx(alpha, rel=1e-9)
        assert sp.xmin == pytest.approx(xmin, rel=1e-6)
        assert sp.num_tail == int(np.sum(evals[evals > 1e-5] >= xmin))
        fitted += 1
    assert fitted == 2  # conv2 and dense1


@pytest.mark.parametrize("alpha, kind", [(1.6, "over_trained"), (4.0, None), (9.0, "under_trained")])
def test_a_layer_of_known_alpha_is_fitted_and_flagged_only_outside_2_to_6(alpha, kind):
    model = dense_model([power_law_kernel(alpha)])
    lw = weight_analysis(model)["d0"]
    assert lw.spectral.alpha == pytest.approx(alpha, rel=0.1)
    found = [
        f
        for f in F.weight_findings({"d0": lw}, config.Thresholds())
        if f["kind"] in ("over_trained", "under_trained")
    ]
    assert [f["kind"] for f in found] == ([kind] if kind else [])
    for f in found:
        assert (
            f["severity"] == "info" and f["layer"] == "d0" and f["value"] == pytest.approx(lw.spectral.alpha)
        )
        assert f["anchor"] == "weights-alpha"


def test_alpha_thresholds_come_from_tool_reportgen(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        "[tool.reportgen]\nalpha_over_trained = 1.5\nalpha_under_trained = 3.5\n"
    )
    t = config.load(cwd=tmp_path)
    assert (t.alpha_over_trained, t.alpha_under_trained) == (1.5, 3.5)
    lw = weight_analysis(dense_model([power_law_kernel(1.6)]))
    assert not [f for f in F.weight_findings(lw, t) if f["kind"] == "over_trained"]
    lw = weight_analysis(dense_model([power_law_kernel(4.0)]))
    assert [f["kind"] for f in F.weight_findings(lw, t) if f["kind"] == "under_trained"] == ["under_trained"]


def test_under_trained_layers_roll_up_into_one_finding():
    model = dense_model([power_law_kernel(9.0, 256, 256, seed=s) for s in range(4)])
    t = config.Thresholds()
    found = [f for f in F.audit(model, t=t) if f["kind"] == "under_trained"]
    assert len(found) == 1 and found[0]["layers"] == ["d0", "d1", "d2", "d3"]
    assert all(item["value"] > t.alpha_under_trained for item in found[0]["items"])


def test_alpha_agrees_with_weightwatcher_on_every_layer_it_fits(trained):
    ww = pytest.importorskip(
        "weightwatcher", reason="WeightWatcher 0.7.7 is a test extra: pip install -e .[test]"
    )
    import logging

    logging.getLogger("weightwatcher").setLevel(logging.ERROR)
    model, facts = trained
    details = ww.WeightWatcher(model=model).analyze(min_evals=50)
    theirs = dict(zip(details["name"], details["alpha"]))
    ours = {
        path: lw.spectral.alpha for path, lw in facts.items() if lw.spectral and lw.spectral.alpha is not None
    }
    assert set(theirs) == set(ours) == {"conv2", "dense1"}
    for name, alpha in theirs.items():
        assert ours[name] == pytest.approx(alpha, rel=0.10), name
    counts = dict(zip(details["name"], details["num_evals"]))
    assert {n: facts[n].spectral.num_evals for n in counts} == counts


def test_report_json_holds_alpha_and_validates(tmp_path, trained):
    jsonschema = pytest.importorskip("jsonschema")
    model, _ = trained
    loaded = LoadedModel(model=model, name="digits", source="(test)", sha256=None)
    folder, data = build_report(
        loaded, Options(sections=("weights", "findings"), quiet=True), tmp_path, ("json", "html")
    )
    data = json.loads((folder / "report.json").read_text())
    # The weights block against its schema (the whole report.json of a run without images fails on
    # settings.preprocess_source = "not used: ...", which the schema's enum lacks -- not this issue's).
    jsonschema.validate(data["weights"], SCHEMA["properties"]["weights"])
    w = data["weights"]
    for path in ("conv2", "dense1"):
        assert w[path]["alpha"] > 1 and w[path]["alpha_xmin"] > 0 and w[path]["alpha_reason"] is None
    assert w["conv1"]["alpha"] is None and w["conv1"]["alpha_num_evals"] == 9 and w["conv1"]["alpha_reason"]
    assert {"over_trained", "under_trained"} <= set(data["findings_checked"])
    html = (folder / "report.html").read_text()
    assert 'id="weights-alpha"' in html and "fewer than 50 eigenvalues" in html
