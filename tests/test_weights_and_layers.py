"""Weight statistics, baseline, layer table and kernel grids against NumPy on the model's own weights."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest


from reportgen import graph
from reportgen.analyses.kernel_grid import filter_bank, kernel_grid
from reportgen.analyses.layer_table import layer_rows
from reportgen.analyses.baseline import fresh_values
from reportgen.analyses.weights import weight_analysis
from reportgen.context import LoadedModel, Options
from reportgen.report import build_report

SPINE = ("overview", "layers", "weights", "kernels")


def weight_statistics(model, seed=0):
    """report.json's ``weights`` block, computed directly."""
    return {p: lw.to_json() for p, lw in weight_analysis(model, seed).items() if lw.stats is not None}


def _report(model, tmp_path, name="m", sections=SPINE, formats=("json",)):
    loaded = LoadedModel(model=model, name=name, source="(test)", sha256=None)
    folder, data = build_report(loaded, Options(sections=sections, quiet=True), tmp_path, formats)
    return folder, data


def test_weight_statistics_equal_numpy_on_the_models_own_weights(tmp_path, nested_model):
    folder, _ = _report(nested_model, tmp_path)
    data = json.loads((folder / "report.json").read_text())
    expected_layers = {"backbone/block1_conv1", "backbone/block2_conv1", "classifier"}
    assert set(data["weights"]) == expected_layers
    for path in expected_layers:
        name = path.split("/")[-1]
        layer = (
            nested_model.get_layer("backbone").get_layer(name)
            if "/" in path
            else nested_model.get_layer(name)
        )
        w = layer.kernel.numpy().astype(np.float64).ravel()
        b = layer.bias.numpy().astype(np.float64)
        got = data["weights"][path]
        assert got["mean"] == pytest.approx(w.mean(), rel=1e-6, abs=1e-9)
        assert got["std"] == pytest.approx(w.std(), rel=1e-6)
        assert got["min"] == pytest.approx(w.min())
        assert got["max"] == pytest.approx(w.max())
        assert got["near_zero_fraction"] == pytest.approx((np.abs(w) < 1e-3).mean())
        assert got["bias_mean"] == pytest.approx(b.mean(), abs=1e-9)
        counts, edges = np.histogram(w, bins=keras.ops.convert_to_numpy(got["histogram"]["edges"]))
        assert got["histogram"]["counts"] == counts.tolist()
        assert sum(got["histogram"]["counts"]) == w.size
        # trained and baseline share the bins
        assert got["baseline"]["histogram"]["edges"] == got["histogram"]["edges"]
        assert got["std_ratio"] == pytest.approx(got["std"] / got["baseline"]["std"])


def test_baseline_is_drawn_per_layer_from_the_layers_own_initialisers(small_model):
    def fresh(name, seed):
        return fresh_values(small_model.get_layer(name), name, seed)

    for name in ("conv_a", "conv_b", "head"):
        a, b = fresh(name, 3), fresh(name, 3)
        for x, y, orig in zip(a, b, small_model.get_layer(name).weights):
            np.testing.assert_array_equal(x, y)  # reproducible
            assert x.shape == tuple(orig.shape)
    assert not np.array_equal(fresh("conv_b", 3)[0], fresh("conv_b", 4)[0])  # the seed matters
    assert not np.array_equal(fresh("conv_a", 3)[0][..., :4], fresh("conv_b", 3)[0][:, :, :3, :4])
    # independent truth: Glorot uniform on the Dense head is bounded by sqrt(6 / (fan_in + fan_out))
    head = fresh("head", 3)[0]
    fan_in, fan_out = head.shape
    # a 12x4 kernel is small: check the bound instead of the std
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    assert np.abs(head).max() <= limit + 1e-6
    conv, bias = fresh("conv_b", 3)
    rf = conv.shape[0] * conv.shape[1]
    expected_std = np.sqrt(2.0 / (rf * conv.shape[2] + rf * conv.shape[3]))
    assert conv.std() == pytest.approx(expected_std, rel=0.12)
    np.testing.assert_array_equal(bias, 0.0)
    # the report's baseline numbers are these draws' numbers
    stats = weight_statistics(small_model, seed=3)
    assert stats["conv_b"]["baseline"]["std"] == pytest.approx(float(conv.astype(np.float64).std()))


def test_trained_weights_spread_out_against_the_baseline(tmp_path):
    """A genuinely trained model (digits, a few epochs) has a std ratio above 1 in its first conv layer."""
    from reportgen.demo import build_model, load_digits_28

    images, labels, _ = load_digits_28()
    keras.utils.set_random_seed(0)
    model = build_model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(images[:600, ..., None] / 255.0, labels[:600], epochs=8, batch_size=32, verbose=0)
    stats = weight_statistics(model)
    first = next(iter(stats))
    assert stats[first]["std_ratio"] > 1.08
    # independent truth: the analytic std of Glorot uniform for this 3x3x1x32 kernel
    kernel = model.get_layer(first).kernel.numpy()
    analytic = np.sqrt(2.0 / (9 * kernel.shape[2] + 9 * kernel.shape[3]))
    assert kernel.std() / analytic > 1.08


def test_layer_table_matches_model_summary_counts(nested_model):
    rows = layer_rows(nested_model)
    by_name = {r["name"]: r for r in rows}
    assert [r["name"] for r in rows] == [
        "rescale",
        "backbone",
        "backbone/block1_conv1",
        "backbone/block1_pool",
        "backbone/block2_conv1",
        "flatten",
        "classifier",
    ]
    top = [r for r in rows if r["depth"] == 0]
    assert sum(r["params"] for r in top) == nested_model.count_params()
    for layer in nested_model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        assert by_name[layer.name]["params"] == layer.count_params()
    conv = by_name["backbone/block1_conv1"]
    assert conv["kernel_shape"] == [3, 3, 3, 6]
    assert conv["bias_shape"] == [6]
    assert conv["output_shape"] == [None, 14, 14, 6]
    assert conv["activation"] == "relu"
    assert by_name["classifier"]["kernel_shape"] == [250, 5]


def test_kernel_grid_tiles_are_the_kernel_slices_on_one_symmetric_scale(small_model):
    layer = small_model.get_layer("conv_b")
    kernel = layer.kernel.numpy()
    grid = kernel_grid(layer, max_filters=5, channel=2)
    assert grid["shown"] == 5 and grid["total"] == 12 and grid["channel"] == 2
    np.testing.assert_array_equal(grid["tiles"], np.moveaxis(kernel[:, :, 2, :5], -1, 0))
    assert grid["limit"] == pytest.approx(np.abs(kernel).max())
    first = kernel_grid(small_model.get_layer("conv_a"), rgb=True)
    np.testing.assert_array_equal(
        first["rgb_tiles"][0], small_model.get_layer("conv_a").kernel.numpy()[:, :, :, 0]
    )
    # a channel beyond the layer's input falls back to its last channel
    assert kernel_grid(small_model.get_layer("conv_a"), channel=99)["channel"] == 2


@pytest.mark.parametrize(
    "layer, bank_shape",
    [
        (keras.layers.Conv1D(4, 5), (1, 5, 3, 4)),
        (keras.layers.Conv2DTranspose(4, 3), (3, 3, 3, 4)),
        (keras.layers.DepthwiseConv2D(3, depth_multiplier=2), (3, 3, 1, 6)),
        (keras.layers.SeparableConv2D(4, 3), (3, 3, 1, 3)),
        (keras.layers.Conv3D(4, 3), (3, 3, 3, 4)),
    ],
)
def test_filter_bank_normalises_every_conv_type(layer, bank_shape):
    shape = {"Conv1D": (20, 3), "Conv3D": (8, 8, 8, 3)}.get(type(layer).__name__, (10, 10, 3))
    layer.build((None,) + shape)
    assert filter_bank(layer).shape == bank_shape


def test_kernel_layers_cover_every_kernel_type():
    inp = keras.Input((12, 12, 3))
    x = keras.layers.SeparableConv2D(4, 3, name="sep")(inp)
    x = keras.layers.DepthwiseConv2D(3, name="dw")(x)
    x = keras.layers.Conv2DTranspose(4, 3, name="tr")(x)
    x = keras.layers.Flatten()(x)
    out = keras.layers.Dense(2, name="fc")(x)
    model = keras.Model(inp, out)
    assert [r.path for r in graph.kernel_layers(model)] == ["sep", "dw", "tr", "fc"]
    stats = weight_statistics(model)
    sep = model.get_layer("sep")
    both = np.concatenate([sep.depthwise_kernel.numpy().ravel(), sep.pointwise_kernel.numpy().ravel()])
    assert stats["sep"]["count"] == both.size
    assert stats["sep"]["std"] == pytest.approx(both.astype(np.float64).std())


def test_nan_and_inf_weights_are_counted_not_crashed(tmp_path, small_model):
    kernel = small_model.get_layer("conv_a").kernel
    values = kernel.numpy()
    values[0, 0, 0, 0] = np.nan
    values[1, 1, 0, 0] = np.inf
    kernel.assign(values)
    folder, _ = _report(small_model, tmp_path, formats=("json", "html"))
    text = (folder / "report.json").read_text()
    data = json.loads(text)  # strict JSON: no NaN literals
    assert "NaN" not in text
    stats = data["weights"]["conv_a"]
    assert stats["nan_count"] == 1 and stats["inf_count"] == 1
    finite = values[np.isfinite(values)].astype(np.float64)
    assert stats["std"] == pytest.approx(finite.std())
    assert "1 / 1" in (folder / "report.html").read_text()


def test_a_model_without_kernel_layers_gets_a_report_that_says_so(tmp_path):
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.MaxPooling2D(2), keras.layers.Flatten()])
    folder, data = _report(model, tmp_path, formats=("json", "html"))
    assert data["weights"] == {} and data["kernels"] == {}
    html = (folder / "report.html").read_text()
    assert "no layer with a kernel" in html
    assert "no convolutional layer" in html


def _low_rank(rng, rows, cols, rank):
    return (rng.standard_normal((rows, rank)) @ rng.standard_normal((rank, cols))).astype(np.float32)


@pytest.mark.parametrize("rows,cols", [(40, 300), (300, 40), (256, 1200), (1200, 256)])
def test_top_singular_value_equals_numpy_svd(rows, cols):
    """Exact eigvalsh for small Gram sides, Lanczos above SV_EXACT_BELOW: both within 1e-3 of the SVD,
    on random matrices (crowded top singular values) and low-rank ones (a Lanczos breakdown)."""
    from reportgen.analyses.weights import top_singular_value, top_singular_values

    rng = np.random.default_rng(7)
    mats = [
        rng.standard_normal((rows, cols)).astype(np.float32) * 0.05,
        rng.uniform(-1, 1, (rows, cols)).astype(np.float32),
        _low_rank(rng, rows, cols, 1),
        _low_rank(rng, rows, cols, 3),
    ]
    truth = np.array([np.linalg.svd(m.astype(np.float64), compute_uv=False)[0] for m in mats])
    assert np.allclose([top_singular_value(m) for m in mats], truth, rtol=1e-3)
    same = [mats[0], mats[0] * 2, mats[1]]  # one batched solve: each its own value
    assert np.allclose(top_singular_values(same), [truth[0], 2 * truth[0], truth[1]], rtol=1e-3)
    assert np.allclose(
        top_singular_values([m.T for m in same]), [truth[0], 2 * truth[0], truth[1]], rtol=1e-3
    )


def test_top_singular_value_of_a_matrix_too_large_for_a_gram(monkeypatch):
    """Above SV_GRAM_MAX (VGG16's fc1) Lanczos runs on x -> M^T M x: the same answer."""
    from reportgen.analyses import weights as W

    monkeypatch.setattr(W, "SV_GRAM_MAX", 50)
    rng = np.random.default_rng(3)
    for m in (rng.standard_normal((120, 500)).astype(np.float32), _low_rank(rng, 500, 120, 2)):
        assert W.top_singular_value(m) == pytest.approx(
            np.linalg.svd(m.astype(np.float64), compute_uv=False)[0], rel=1e-3
        )


def test_nearest_earlier_equals_a_brute_force_loop():
    from reportgen.analyses.weights import nearest_earlier

    rng = np.random.default_rng(5)
    w = rng.standard_normal((70, 27))
    w[40] = 3 * w[12] + 1e-3 * rng.standard_normal(27)  # a near duplicate
    usable = np.ones(70, dtype=bool)
    usable[[0, 5, 33]] = False
    best, which = nearest_earlier(w.astype(np.float32), usable)
    unit = w.astype(np.float32).astype(np.float64)
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    seen = []
    for i in range(70):
        if not usable[i]:
            assert best[i] == -np.inf and which[i] == -1
            continue
        if not seen:
            assert best[i] == -np.inf and which[i] == -1
        else:
            cos = [float(unit[i] @ unit[j]) for j in seen]
            assert which[i] == seen[int(np.argmax(cos))]
            assert best[i] == pytest.approx(max(cos), abs=1e-12)
        seen.append(i)
    assert which[40] == 12 and best[40] > 0.999


def test_the_extra_draws_are_the_layers_own_fresh_values(small_model):
    """Drawing only the kernel for the singular-value draws gives what drawing the whole layer gives."""
    from reportgen.analyses.weights import _sv_draw, filter_matrix

    ref = next(r for r in graph.weighted_layers(small_model) if r.path == "conv_a")
    full = fresh_values(ref.layer, f"{ref.path}#sv3", 0, ref.input_shape)
    kernel = full[[v.name.split("/")[-1].split(":")[0] for v in ref.layer.weights].index("kernel")]
    assert np.array_equal(_sv_draw(ref.layer, ref, 0, 3), filter_matrix(ref.layer, kernel))


def test_the_threaded_weights_pass_equals_one_layer_at_a_time(monkeypatch):
    """Layers described on two threads, one described alone for its size (ALONE_ABOVE), and each layer on
    one thread in order: the same numbers, bit for bit (each layer's KS samples come from its own seed)."""
    from reportgen.analyses import weights as W

    keras.utils.set_random_seed(3)
    model = keras.Sequential(
        [keras.Input((24, 24, 3))]
        + [keras.layers.Conv2D(16 + 8 * i, 3, padding="same", name=f"conv{i}") for i in range(6)]
        + [keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10, name="head")]
    )

    def flat(result):
        out = {}
        for path, lw in result.items():
            for key, value in lw.to_json().items():
                out[(path, key)] = json.dumps(value, sort_keys=True, default=str)
            out[(path, "sv")] = repr(lw.sv)
            out[(path, "duplicates")] = repr(
                (
                    None if lw.duplicate_cos is None else lw.duplicate_cos.tolist(),
                    None if lw.duplicate_of is None else lw.duplicate_of.tolist(),
                )
            )
        return out

    monkeypatch.setattr(W.os, "cpu_count", lambda: 2)  # two threads even on a 1-core runner
    threaded = flat(W.weight_analysis(model, seed=5))
    monkeypatch.setattr(W, "ALONE_ABOVE", 3 * 3 * 40 * 48)  # conv4 and conv5 (with their biases) alone
    mixed = flat(W.weight_analysis(model, seed=5))
    monkeypatch.setattr(W, "WORKERS", 1)
    serial = flat(W.weight_analysis(model, seed=5))
    assert threaded == serial == mixed
    assert 0.0 <= float(threaded[("conv3", "ks_statistic")]) <= 1.0  # the KS test ran (it reads the samples)


def test_a_large_dense_kernels_top_singular_value_from_its_spectrum_equals_numpy_svd():
    """Over SV_DRAWS_BELOW weights a Dense kernel's top singular value is read from the spectrum the alpha fit
    computed (float64): it must still be NumPy's, and the fresh draw's must still be its own."""
    from reportgen.analyses import weights as W

    keras.utils.set_random_seed(4)
    model = keras.Sequential([keras.Input((1024,)), keras.layers.Dense(1100, name="wide")])
    kernel = model.get_layer("wide").kernel.numpy().astype(np.float64)
    assert kernel.size > W.SV_DRAWS_BELOW
    lw = W.weight_analysis(model, seed=0)["wide"]
    assert lw.spectral is not None and lw.spectral.top_eval is not None
    assert lw.sv[0] == pytest.approx(np.linalg.svd(kernel, compute_uv=False)[0], rel=1e-9)
    fresh = fresh_values(model.get_layer("wide"), "wide", 0)[0].astype(np.float64)
    assert lw.sv[1] == pytest.approx(np.linalg.svd(fresh, compute_uv=False)[0], rel=1e-3)
