"""Audit findings: models carrying one defect each, found with the right layer and filter.

The truth is the defect put in on purpose (and NumPy / a plain Keras sub-model
where a check reads activations); a healthy model trained on real data
(scikit-learn's digits) must get no warnings.
"""

from __future__ import annotations

import reportgen  # noqa: F401

import json

import keras
import numpy as np
import pytest

import digits_models as dm
from reportgen import config
from reportgen.analyses import findings as F
from reportgen.analyses.weights import weight_analysis
from reportgen.config import Thresholds
from reportgen.context import LoadedModel, Options
from reportgen.errors import UserError

T = Thresholds()


def _all_findings(model, images=None, t=T):
    found = F.weight_findings(weight_analysis(model, seed=0), t)
    if images is not None:
        found += F.activation_findings(model, images, t, already=found)
    return found


def glorot_std(kernel) -> float:
    """The analytic std of Keras' default initialiser (Glorot uniform) for a Dense kernel."""
    fan_in, fan_out = kernel.shape
    return float(np.sqrt(6.0 / (fan_in + fan_out)) / np.sqrt(3.0))


def _of(found, kind):
    return [f for f in found if f["kind"] == kind]


def _set(model, layer, var, fn):
    v = getattr(model.get_layer(layer), var)
    arr = v.numpy().copy()
    arr = fn(arr)
    v.assign(arr)
    return arr


@pytest.fixture(scope="module")
def healthy():
    return dm.trained()


def test_healthy_trained_model_gets_no_warnings(healthy):
    assert dm.held_out_accuracy() > 0.85  # it really learned something
    found = _all_findings(healthy, dm.held_out(32))
    assert [f for f in found if f["severity"] != "info"] == []
    assert not F.exceeds(found, "warning")


def test_nan_and_inf_weights_are_errors_with_layer_and_filter():
    model = dm.trained()
    _set(model, "conv2", "kernel", lambda k: (k.__setitem__((1, 1, 3, 5), np.nan), k)[1])
    _set(model, "dense1", "bias", lambda b: (b.__setitem__(7, np.inf), b)[1])
    found = _of(_all_findings(model), "nonfinite_weights")
    got = {(f["layer"], f["filter"], f["severity"]) for f in found}
    assert got == {("conv2", 5, "error"), ("dense1", 7, "error")}
    assert F.exceeds(found, "error") and F.exceeds(found, "warning")
    assert all(f["value"] == 1 for f in found)


def test_zeroed_filter_is_a_dead_filter():
    model = dm.trained()
    _set(model, "conv2", "kernel", lambda k: (k.__setitem__((..., 3), 0.0), k)[1])
    found = _all_findings(model, dm.held_out(8))
    dead = _of(found, "dead_filter")
    assert [(f["layer"], f["filter"]) for f in dead] == [("conv2", 3)]
    assert dead[0]["value"] == 0.0 and dead[0]["severity"] == "warning"
    assert dead[0]["anchor"] == "kernels-conv2"
    assert F.exceeds(found, "warning") and not F.exceeds(found, "error")


def test_dead_relu_units_found_on_the_data_and_from_the_weights():
    model = dm.trained()
    x = dm.held_out(16)
    # unit 6: weights intact, bias so negative that ReLU never fires on these images
    _set(model, "dense1", "bias", lambda b: (b.__setitem__(6, -1e4), b)[1])
    # unit 9: zero incoming weights and a negative bias -> dead for any input
    _set(model, "dense1", "kernel", lambda k: (k.__setitem__((..., 9), 0.0), k)[1])
    _set(model, "dense1", "bias", lambda b: (b.__setitem__(9, -0.5), b)[1])
    # independent truth: a plain Keras sub-model's dense1 output
    sub = keras.Model(model.inputs, model.get_layer("dense1").output)
    out = keras.ops.convert_to_numpy(sub(x))
    truly_dead = set(np.flatnonzero(out.max(axis=0) <= 0).tolist())
    assert {6, 9} <= truly_dead
    found = _all_findings(model, x)
    by_weights = [f for f in _of(found, "dead_unit") if f["layer"] == "dense1"]
    on_data = [f for f in _of(found, "inactive_unit") if f["layer"] == "dense1"]
    assert [f["filter"] for f in by_weights] == [9] and by_weights[0]["severity"] == "warning"
    assert {f["filter"] for f in on_data} == truly_dead - {9}  # each unit reported once
    assert all(f["severity"] == "info" for f in on_data)
    # without images only the weight-based one is visible
    assert [f["filter"] for f in _of(_all_findings(model), "dead_unit")] == [9]


def test_a_layer_mostly_silent_on_the_data_is_a_warning():
    model = dm.trained()
    _set(model, "conv1", "bias", lambda b: np.where(np.arange(b.size) < 14, -1e3, b))
    found = _all_findings(model, dm.held_out(8))
    layer = _of(found, "inactive_layer")
    assert [(f["layer"], f["severity"]) for f in layer] == [("conv1", "warning")]
    assert layer[0]["value"] == pytest.approx(14 / 16)
    assert {f["filter"] for f in _of(found, "inactive_unit") if f["layer"] == "conv1"} == set(range(14))
    # on fewer images than inactive_min_images it stays info
    assert _of(_all_findings(model, dm.held_out(2)), "inactive_layer") == []


def test_untrained_layer_inside_a_trained_model():
    model = dm.trained()
    k = model.get_layer("dense1").kernel
    k.assign(keras.initializers.GlorotUniform(seed=123)(k.shape))  # as if never trained
    c = model.get_layer("conv2").kernel
    c.assign(keras.initializers.GlorotUniform(seed=7)(c.shape))
    found = _of(_all_findings(model), "untrained_layer")
    assert sorted(f["layer"] for f in found) == ["conv2", "dense1"]
    assert all(f["value"] < T.untrained_ks for f in found)
    # the trained layers are far from their initialisation (KS truth from scipy, against an
    # independent draw of Keras' default initialiser)
    from scipy.stats import ks_2samp

    kernel = dm.trained().get_layer("dense1").kernel.numpy()
    fresh = keras.ops.convert_to_numpy(keras.initializers.GlorotUniform(seed=99)(kernel.shape))
    assert ks_2samp(kernel.ravel(), fresh.ravel()).pvalue < 1e-6


def test_duplicated_filters_reported_as_a_pair():
    model = dm.trained()
    _set(model, "conv2", "kernel", lambda k: (k.__setitem__((..., 7), 1.5 * k[..., 2]), k)[1])
    found = _of(_all_findings(model), "duplicate_filters")
    assert [(f["layer"], f["filter"]) for f in found] == [("conv2", 7)]
    assert found[0]["value"] == pytest.approx(1.0, abs=1e-6)
    assert "filters 2 and 7" in found[0]["message"]


def test_chance_duplicates_matches_random_directions():
    # Independent truth: count pairs above the cosine among random Gaussian directions.
    from reportgen.analyses.findings.weights import chance_duplicates

    rng = np.random.default_rng(0)
    for dim, n, c in [(4, 96, 0.98), (3, 64, 0.95), (6, 80, 0.9)]:
        counts = []
        for _ in range(40):
            v = rng.normal(size=(n, dim))
            v /= np.linalg.norm(v, axis=1, keepdims=True)
            cos = v @ v.T
            counts.append(int((cos[np.triu_indices(n, 1)] > c).sum()))
        expected = chance_duplicates(n, dim, c)
        assert np.mean(counts) == pytest.approx(expected, rel=0.15), (dim, n, c, np.mean(counts), expected)


def test_short_filters_are_not_called_duplicates_by_chance():
    # EfficientNet's squeeze-and-excitation expand: a 1x1 conv on 4 channels, 96 filters of 4 weights.
    keras.utils.set_random_seed(3)
    inp = keras.Input((8, 8, 16))
    x = keras.layers.Conv2D(4, 1, name="se_reduce")(inp)
    x = keras.layers.Conv2D(96, 1, name="se_expand")(x)
    model = keras.Model(inp, keras.layers.Conv2D(8, 3, name="conv")(x))
    k = model.get_layer("se_expand").kernel.numpy().reshape(4, 96).T
    k /= np.linalg.norm(k, axis=1, keepdims=True)
    assert ((k @ k.T)[np.triu_indices(96, 1)] > T.duplicate_cosine).sum() > 0  # chance pairs exist
    assert _of(_all_findings(model), "duplicate_filters") == []
    # A longer filter keeps the check: a copy in the 3x3x96 conv is still found.
    conv = model.get_layer("conv")
    kernel = conv.kernel.numpy()
    kernel[..., 5] = 2.0 * kernel[..., 1]
    conv.kernel.assign(kernel)
    assert [(f["layer"], f["filter"]) for f in _of(_all_findings(model), "duplicate_filters")] == [
        ("conv", 5)
    ]


def test_batchnorm_gamma_zero_and_variance_zero():
    model = dm.trained()
    _set(model, "bn", "gamma", lambda g: (g.__setitem__(4, 0.0), g)[1])
    _set(model, "bn", "moving_variance", lambda v: (v.__setitem__(9, 0.0), v)[1])
    found = _all_findings(model)
    assert [(f["layer"], f["filter"]) for f in _of(found, "bn_gamma")] == [("bn", 4)]
    assert [(f["layer"], f["filter"]) for f in _of(found, "bn_variance")] == [("bn", 9)]


@pytest.mark.parametrize("factor, kind", [(30.0, "exploding_scale"), (1 / 30.0, "vanishing_scale")])
def test_exploding_and_vanishing_scale(factor, kind):
    model = dm.trained()
    _set(model, "dense1", "kernel", lambda k: k * factor)
    found = _all_findings(model)
    hits = [f for f in found if f["kind"] in ("exploding_scale", "vanishing_scale")]
    assert [(f["kind"], f["layer"]) for f in hits] == [(kind, "dense1")]
    kernel = model.get_layer("dense1").kernel.numpy()
    truth = kernel.std() / glorot_std(kernel)
    assert hits[0]["value"] == pytest.approx(truth, rel=2e-2)  # sampling error of a 32k-weight fresh draw


def test_saturated_tanh_layer_but_not_a_sigmoid_output():
    keras.utils.set_random_seed(0)
    inp = keras.Input((6,))
    h = keras.layers.Dense(16, activation="tanh", name="hidden")(inp)
    out = keras.layers.Dense(3, activation="sigmoid", name="out")(h)
    model = keras.Model(inp, out)
    x = np.random.default_rng(0).normal(size=(20, 6)).astype("float32")
    assert _of(F.activation_findings(model, x, T), "saturation") == []
    model.get_layer("hidden").kernel.assign(model.get_layer("hidden").kernel.numpy() * 200)
    model.get_layer("out").kernel.assign(model.get_layer("out").kernel.numpy() * 500)
    hidden = keras.ops.convert_to_numpy(keras.Model(inp, h)(x))
    truth = float((np.abs(hidden) >= 0.99).mean())
    assert truth > 0.9
    found = _of(F.activation_findings(model, x, T), "saturation")
    assert [f["layer"] for f in found] == ["hidden"]  # the sigmoid output is left alone
    assert found[0]["value"] == pytest.approx(truth)


def test_patterns_that_never_rose():
    patterns = {
        "conv2": {
            "filters": [0, 1, 2, 3],
            "size": 32,
            "steps": 10,
            "activation_start": [0.1, 0.2, 0.5, 0.0],
            "activation_end": [1.4, 0.2, 0.3, 2.0],
            "dead": [1],
        },
        "conv1": {"filters": [0], "activation_start": [0.0], "activation_end": [0.5], "dead": []},
    }
    found = F.check_patterns(patterns, T)
    assert [(f["layer"], f["filter"]) for f in found] == [("conv2", 1), ("conv2", 2)]
    assert found[1]["value"] == pytest.approx(-0.2)
    assert found[0]["anchor"] == "patterns-conv2"


def test_severity_config_cap_and_sorting():
    found = [F.finding("dead_filter", "c", i, 0.0, 0.0, "m") for i in range(15)]
    found.append(F.finding("nonfinite_weights", "d", 0, 1, 0, "m"))
    capped = F.cap(found, 10)
    assert len(capped) == 10 + 1 + 1
    summary_row = [f for f in capped if f["kind"] == "dead_filter" and f["filter"] is None][0]
    assert summary_row["value"] == 5 and "10, 11, 12, 13, 14" in summary_row["message"]
    ordered = F.sort_findings(capped, ["c", "d"])
    assert ordered[0]["kind"] == "nonfinite_weights"
    t = Thresholds(severity={**config.KINDS, "dead_filter": "off", "nonfinite_weights": "warning"})
    after = F.apply_severity(capped, t.severity)
    assert [f["kind"] for f in after] == ["nonfinite_weights"] and after[0]["severity"] == "warning"
    assert F.summarise(after) == {"error": 0, "warning": 1, "info": 0}
    assert F.exceeds(after, "warning") and not F.exceeds(after, "error")
    assert not F.exceeds([], "warning") and not F.exceeds(after, None)


# --- configuration ------------------------------------------------------------------


def test_config_defaults_pyproject_and_file(tmp_path):
    assert config.load(None, cwd=tmp_path) == Thresholds()
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n\n[tool.reportgen]\nduplicate_cosine = 0.9\n'
        '[tool.reportgen.severity]\nduplicate_filters = "error"\n'
    )
    t = config.load(None, cwd=tmp_path)
    assert t.duplicate_cosine == 0.9 and t.severity["duplicate_filters"] == "error"
    assert t.untrained_ks == Thresholds().untrained_ks
    extra = tmp_path / "strict.toml"
    extra.write_text("duplicate_cosine = 0.8\nmax_per_layer = 3\n")
    t2 = config.load(str(extra), cwd=tmp_path)
    assert t2.duplicate_cosine == 0.8 and t2.max_per_layer == 3
    assert t2.severity["duplicate_filters"] == "error"  # pyproject still applies
    assert "strict.toml" in t2.source


@pytest.mark.parametrize(
    "text, needle",
    [
        ("duplicate_cosin = 0.9", "unknown key 'duplicate_cosin'; did you mean 'duplicate_cosine'"),
        ("duplicate_cosine = 2.0", "duplicate_cosine = 2.0 is not valid; use a number from 0 to 1"),
        ("max_per_layer = 2.5", "max_per_layer = 2.5 is not valid; use an integer"),
        ('scale_ratio = "big"', "scale_ratio = 'big' is not valid"),
        ('[severity]\ndead_filter = "fatal"', "severity.dead_filter: 'fatal' is not a severity"),
        ('[severity]\ndead_filters = "error"', "unknown key 'dead_filters'; did you mean 'dead_filter'"),
        ("this is not toml", "is not valid TOML"),
    ],
)
def test_config_errors_name_the_key_and_the_fix(tmp_path, text, needle):
    f = tmp_path / "c.toml"
    f.write_text(text)
    with pytest.raises(UserError) as err:
        config.load(str(f), cwd=tmp_path)
    assert needle in str(err.value)


def test_config_missing_file_and_pyproject_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        config.load(str(tmp_path / "nope.toml"), cwd=tmp_path)
    (tmp_path / "pyproject.toml").write_text("[tool.reportgen]\nbogus = 1\n")
    with pytest.raises(UserError, match=r"pyproject.toml \[tool.reportgen\]: unknown key 'bogus'"):
        config.load(None, cwd=tmp_path)


# --- the section in a report ----------------------------------------------------------


def test_findings_section_in_report_json_and_html(tmp_path):
    from reportgen.report import build_report

    model = dm.trained()
    _set(model, "conv2", "kernel", lambda k: (k.__setitem__((..., 3), 0.0), k)[1])
    _set(model, "bn", "gamma", lambda g: (g.__setitem__(4, 0.0), g)[1])
    loaded = LoadedModel(model=model, name="defective", source="(test)", sha256=None)
    options = Options(sections=("weights", "kernels", "findings"), quiet=True)
    folder, _ = build_report(loaded, options, tmp_path, ("json", "html"))
    data = json.loads((folder / "report.json").read_text())
    rows = {(f["kind"], f["layer"], f["filter"]): f for f in data["findings"]}
    assert set(rows) == {("dead_filter", "conv2", 3), ("bn_gamma", "bn", 4)}
    for f in data["findings"]:
        assert set(f) >= {"kind", "severity", "layer", "filter", "value", "threshold", "message", "anchor"}
    assert rows[("dead_filter", "conv2", 3)]["anchor"] == "kernels-conv2"
    assert rows[("bn_gamma", "bn", 4)]["anchor"] == "findings-bn-bn"
    assert data["findings_summary"] == {"error": 0, "warning": 2, "info": 0}
    html = (folder / "report.html").read_text()
    # page 1: the findings come before every other section, each linking to its evidence
    assert html.index('id="findings"') < html.index('id="weights"')
    assert 'href="#kernels-conv2"' in html and 'id="kernels-conv2"' in html
    assert 'href="#findings-bn-bn"' in html and 'id="findings-bn-bn"' in html


# --- the command line: --fail-on and --config ---------------------------------------------


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    dm.trained().save(folder / "healthy.keras")
    warn = dm.trained()
    _set(warn, "conv2", "kernel", lambda k: (k.__setitem__((..., 3), 0.0), k)[1])
    warn.save(folder / "warning.keras")
    err = dm.trained()
    _set(err, "dense1", "kernel", lambda k: (k.__setitem__((0, 0), np.nan), k)[1])
    err.save(folder / "error.keras")
    return folder


@pytest.mark.parametrize(
    "model, level, status",
    [
        ("healthy", "warning", 0),
        ("warning", "warning", 1),
        ("warning", "error", 0),
        ("error", "error", 1),
        ("error", "warning", 1),
    ],
)
def test_fail_on_exit_status_and_the_report_is_still_written(saved, tmp_path, cli, model, level, status):
    res = cli(
        saved / f"{model}.keras",
        "--sections",
        "weights,kernels",
        "--format",
        "json",
        "--out",
        tmp_path,
        "--fail-on",
        level,
        "--quiet",
    )
    assert res.status == status, res.stderr
    data = json.loads((tmp_path / model / "report.json").read_text())
    assert F.exceeds(data["findings"], level) == (status == 1)
    if status:
        assert f"findings at or above '{level}'" in res.stderr


def test_config_file_changes_the_verdict_and_bad_keys_exit_2(saved, tmp_path, cli):
    off = tmp_path / "lenient.toml"
    off.write_text('[severity]\ndead_filter = "info"\n')
    res = cli(
        saved / "warning.keras",
        "--sections",
        "weights",
        "--format",
        "json",
        "--out",
        tmp_path,
        "--fail-on",
        "warning",
        "--config",
        off,
        "--quiet",
    )
    assert res.status == 0, res.stderr
    data = json.loads((tmp_path / "warning" / "report.json").read_text())
    assert [(f["kind"], f["severity"]) for f in data["findings"]] == [("dead_filter", "info")]
    assert data["findings_config"]["severity"]["dead_filter"] == "info"
    bad = tmp_path / "bad.toml"
    bad.write_text("duplicate_cosine = 7\n")
    res = cli(
        saved / "warning.keras",
        "--sections",
        "weights",
        "--out",
        tmp_path / "never",
        "--config",
        bad,
        "--quiet",
    )
    assert res.status == 2 and "duplicate_cosine = 7 is not valid" in res.stderr
    assert not (tmp_path / "never" / "warning").exists()


def test_a_rolled_up_finding_beside_a_figure_names_only_that_layer():
    # Beside each of 63 histograms, the whole 63-layer roll-up was repeated (16 pages of MobileNetV3).
    from reportgen.analyses.findings import KINDS
    from reportgen.report import findings_by_anchor

    layers = [f"block_{i}" for i in range(5)]
    rolled = {
        "kind": "untrained_layer",
        "severity": "warning",
        "layer": None,
        "layers": layers,
        "message": "untrained layer in 5 layers: " + ", ".join(layers),
        "items": [{"layer": name, "filter": None, "value": 0.05} for name in layers],
    }
    by_anchor = findings_by_anchor([rolled])
    kind = KINDS["untrained_layer"]
    assert set(by_anchor) == {kind.anchor(name) for name in layers}
    for name in layers:
        (line,) = by_anchor[kind.anchor(name)]
        assert line["layer"] == name and line["severity"] == "warning"
        assert not any(other in line["message"] for other in layers), line["message"]
        assert "one of the 5 layers" in line["message"]
