"""``reportgen compare A B``: per-layer weight drift against NumPy, ranking, refusal of mismatches."""

from __future__ import annotations

import reportgen  # noqa: F401

import json

import keras
import numpy as np
import pytest

import digits_models as dm
from reportgen.compare import build, check_same_architecture
from reportgen.context import LoadedModel, Options
from reportgen.errors import UserError


def _loaded(model, name):
    return LoadedModel(model=model, name=name, source=f"(test) {name}", sha256=None)


@pytest.fixture(scope="module")
def pair():
    a = dm.trained()
    b = dm.trained()
    k = b.get_layer("conv2").kernel
    rng = np.random.default_rng(0)
    k.assign(k.numpy() + rng.normal(0, 0.5 * k.numpy().std(), size=k.shape).astype("float32"))
    return a, b


def test_drift_per_layer_equals_numpy_and_the_changed_layer_ranks_first(pair):
    a, b = pair
    data, view = build(_loaded(a, "before"), _loaded(b, "after"), Options(quiet=True))
    layers = data["compare"]["layers"]
    assert list(layers) == ["conv1", "conv2", "dense1", "out"]
    assert data["compare"]["ranking"][0] == "conv2"
    for name, entry in layers.items():
        wa = a.get_layer(name).kernel.numpy().astype(np.float64)
        wb = b.get_layer(name).kernel.numpy().astype(np.float64)
        assert entry["relative_l2_change"] == pytest.approx(
            np.linalg.norm(wb - wa) / np.linalg.norm(wa), abs=1e-12
        )
        assert entry["std_ratio"] == pytest.approx(wb.std() / wa.std(), rel=1e-9)
        assert sum(entry["histogram"]["a"]) == wa.size and sum(entry["histogram"]["b"]) == wb.size
        assert np.array_equal(
            np.histogram(wb, bins=np.asarray(entry["histogram"]["edges"]))[0], entry["histogram"]["b"]
        )
    assert layers["conv2"]["relative_l2_change"] == pytest.approx(0.5, rel=0.1)
    assert all(layers[n]["relative_l2_change"] == 0.0 for n in ("conv1", "dense1", "out"))
    assert not data["compare"]["identical"]
    assert view["rows"][0]["path"] == "conv2" and view["ranking_figure"].startswith("data:image/png;base64,")
    assert len(view["overlays"]) == 1 and view["overlays"][0]["layers"] == list(layers)


def test_identical_models_have_zero_drift():
    a = dm.trained()
    data, _ = build(_loaded(a, "m"), _loaded(dm.trained(), "m"), Options(quiet=True))
    assert data["compare"]["identical"]
    assert all(
        v["relative_l2_change"] == 0.0 and v["std_ratio"] == 1.0 for v in data["compare"]["layers"].values()
    )


def test_nan_weights_are_ranked_first_and_reported():
    a, b = dm.trained(), dm.trained()
    k = b.get_layer("out").kernel
    arr = k.numpy()
    arr[0, 0] = np.nan
    k.assign(arr)
    data, _ = build(_loaded(a, "a"), _loaded(b, "b"), Options(quiet=True))
    assert data["compare"]["ranking"][0] == "out"
    assert data["compare"]["layers"]["out"]["relative_l2_change"] is None
    assert data["compare"]["layers"]["out"]["nonfinite_b"] == 1


def test_different_architectures_are_refused():
    a = dm.trained()
    keras.utils.set_random_seed(0)
    wider = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv1"),
            keras.layers.Conv2D(48, 3, padding="same", name="conv2"),
            keras.layers.Flatten(),
            keras.layers.Dense(64, name="dense1"),
            keras.layers.Dense(10, name="out"),
        ]
    )
    with pytest.raises(
        UserError, match=r"layer 'conv2' has kernel \(3, 3, 16, 32\) in A but kernel \(3, 3, 16, 48\) in B"
    ):
        check_same_architecture(a, wider)
    other = keras.Sequential(
        [keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(10, name="lin")]
    )
    with pytest.raises(UserError, match="only in A: conv1, conv2, dense1, out; only in B: lin"):
        check_same_architecture(a, other)


def test_compare_command_writes_its_own_report(pair, tmp_path, cli):
    a, b = pair
    a.save(tmp_path / "before.keras")
    b.save(tmp_path / "after.keras")
    res = cli(
        "compare",
        tmp_path / "before.keras",
        tmp_path / "after.keras",
        "--out",
        tmp_path / "out",
        "--format",
        "json",
        "--format",
        "html",
        "--quiet",
    )
    assert res.status == 0, res.stderr
    folder = tmp_path / "out" / "before-vs-after"
    data = json.loads((folder / "report.json").read_text())
    assert data["compare"]["ranking"][0] == "conv2"
    html = (folder / "report.html").read_text()
    assert "Which layers moved most" in html and 'id="compare-overlay-1"' in html
    # a model of another architecture: exit 2, one line naming the problem, nothing written
    keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(10)]).save(
        tmp_path / "x.keras"
    )
    res = cli(
        "compare", tmp_path / "before.keras", tmp_path / "x.keras", "--out", tmp_path / "out2", "--quiet"
    )
    assert res.status == 2 and "differ in architecture" in res.stderr
    assert not (tmp_path / "out2" / "before-vs-x").exists()
