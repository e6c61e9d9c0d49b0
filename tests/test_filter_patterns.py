"""Filter patterns: the ascent raises every filter's activation, batched == per-filter, dead filters
flagged."""

from __future__ import annotations

import reportgen  # noqa: F401  (quiet TensorFlow before keras)

import base64
import io

import keras
import numpy as np
import pytest
from PIL import Image

from reportgen import graph
from reportgen.analyses import patterns as fp
from reportgen.context import Context, LoadedModel, Options
from reportgen.errors import UserError
from reportgen.preprocessing import Preprocessor
from reportgen.sections import patterns

UNIT = Preprocessor("unit")


def lively_cnn(input_shape=(16, 16, 3), seed: int = 3) -> keras.Model:
    """A small CNN whose filters all respond to a grey start image (positive biases)."""
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input(input_shape),
            keras.layers.Conv2D(6, 3, activation="relu", padding="same", name="conv_a"),
            keras.layers.MaxPooling2D(2, name="pool_a"),
            keras.layers.Conv2D(10, 3, activation="relu", padding="same", name="conv_b"),
            keras.layers.GlobalAveragePooling2D(name="gap"),
            keras.layers.Dense(3, activation="softmax", name="head"),
        ],
        name="lively",
    )
    rng = np.random.default_rng(seed)
    for name in ("conv_a", "conv_b"):
        layer = model.get_layer(name)
        layer.kernel.assign(rng.normal(0, 0.3, layer.kernel.shape).astype("float32"))
        layer.bias.assign(np.full(layer.bias.shape, 2.0, dtype="float32"))
    return model


def _mean_activation(model: keras.Model, name: str, x: np.ndarray) -> np.ndarray:
    """Independent truth: a plain Keras sub-model, mean of each image's own filter (after the ReLU)."""
    out = keras.ops.convert_to_numpy(keras.Model(model.inputs, model.get_layer(name).output)(x))
    return out.mean(axis=(1, 2))


def _mean_preactivation(model: keras.Model, name: str, x: np.ndarray) -> np.ndarray:
    """Independent truth for the default objective: the layer's input from a plain Keras sub-model,
    then its convolution and bias by ``keras.ops.conv``, without the activation."""
    layer = model.get_layer(name)
    h = keras.Model(model.inputs, layer.input)(x)
    out = keras.ops.conv(h, layer.kernel, padding=layer.padding) + layer.bias
    return keras.ops.convert_to_numpy(out).mean(axis=(1, 2))


def _decode(uri: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))))


@pytest.mark.parametrize("layer", ["conv_a", "conv_b"])
def test_every_patterns_activation_rises_and_start_matches_keras(layer):
    model = lively_cnn()
    n = model.get_layer(layer).filters
    filters = list(range(n))
    r = fp.filter_patterns(model, layer, filters, 16, 6, UNIT, seed=5)
    assert r.images.shape == (n, 16, 16, 3) and r.images.dtype == np.uint8
    assert np.all(r.activation_end > r.activation_start), (r.activation_start, r.activation_end)
    assert r.dead == []
    start = UNIT.forward(fp.start_pixels(filters, 16, 3, 5))
    truth = _mean_preactivation(model, layer, start)
    np.testing.assert_allclose(r.activation_start, truth[np.arange(n), filters], rtol=1e-4, atol=1e-6)
    post = fp.filter_patterns(model, layer, filters, 16, 1, UNIT, seed=5, objective="activation")
    np.testing.assert_allclose(
        post.activation_start,
        _mean_activation(model, layer, start)[np.arange(n), filters],
        rtol=1e-4,
        atol=1e-6,
    )


def test_batched_agrees_with_the_per_filter_loop_for_the_same_seed():
    model = lively_cnn()
    filters = list(range(10))
    ref = fp.reference_patterns(
        model, "conv_b", filters, 16, 5, UNIT, seed=7
    )  # the book's loss: after the ReLU
    whole = fp.filter_patterns(model, "conv_b", filters, 16, 5, UNIT, seed=7, objective="activation")
    chunked = fp.filter_patterns(
        model, "conv_b", filters, 16, 5, UNIT, seed=7, max_chunk=3, objective="activation"
    )
    assert chunked.chunk == 3 and whole.chunk == 10
    for got in (whole, chunked):
        np.testing.assert_allclose(got.activation_start, ref.activation_start, rtol=1e-4)
        np.testing.assert_allclose(got.activation_end, ref.activation_end, rtol=1e-4)
        assert np.abs(got.images.astype(int) - ref.images.astype(int)).max() <= 1
    # the end activation is the truth for the returned image's model input: recompute it independently
    assert np.mean(whole.activation_end) >= np.mean(ref.activation_end) * (1 - 1e-5)


def test_a_layer_with_an_all_zero_filter_is_flagged_dead():
    model = lively_cnn()
    layer = model.get_layer("conv_a")
    kernel = keras.ops.convert_to_numpy(layer.kernel).copy()
    bias = keras.ops.convert_to_numpy(layer.bias).copy()
    kernel[..., 2] = 0.0
    bias[2] = 0.0
    layer.kernel.assign(kernel)
    layer.bias.assign(bias)
    r = fp.filter_patterns(model, "conv_a", list(range(6)), 16, 4, UNIT)
    assert r.dead == [2]
    assert r.activation_start[2] == 0.0 and r.activation_end[2] == 0.0
    ctx = Context.computed(
        LoadedModel(model, "m", "m", None),
        Options(pattern_layers=("conv_a",), pattern_steps=4),
        patterns.NEEDS,
    )
    patterns.validate(ctx)
    result = patterns.run(ctx)
    entry = result.json["patterns"]["conv_a"]
    assert entry["dead"] == [2] and entry["filters"] == list(range(6))
    assert entry["size"] == 16 and entry["steps"] == 4  # default size capped at the model's 16 px input
    assert len(entry["activation_start"]) == len(entry["activation_end"]) == 6
    assert result.view["layers"][0]["dead"] == [2]


def test_same_seed_same_mosaic_and_other_seed_differs():
    model = lively_cnn()

    def run(seed):
        ctx = Context.computed(
            LoadedModel(model, "m", "m", None),
            Options(pattern_steps=3, pattern_filters=4, seed=seed),
            patterns.NEEDS,
        )
        patterns.validate(ctx)
        return patterns.run(ctx)

    a, b, c = run(1), run(1), run(2)
    assert list(a.json["patterns"]) == ["conv_a", "conv_b"]  # <= 6 conv layers: all of them
    assert [L["figure"].draw() for L in a.view["layers"]] == [L["figure"].draw() for L in b.view["layers"]]
    assert a.json == b.json
    assert a.view["layers"][0]["figure"].draw() != c.view["layers"][0]["figure"].draw()
    grid = _decode(a.view["layers"][0]["figure"].draw())
    assert grid.shape[0] > 60 and grid.shape[1] > 200  # 4 tiles of >= 56 px in one row
    assert a.view["layers"][0]["anchor"] == "patterns-conv-a"


def test_greyscale_model_gets_greyscale_patterns():
    model = lively_cnn(input_shape=(16, 16, 1))
    r = fp.filter_patterns(model, "conv_a", [0, 1], 16, 3, UNIT)
    assert r.images.shape == (2, 16, 16, 1)
    ctx = Context.computed(
        LoadedModel(model, "g", "g", None),
        Options(pattern_layers=("conv_a",), pattern_steps=3),
        patterns.NEEDS,
    )
    result = patterns.run(ctx)
    img = _decode(result.view["layers"][0]["figure"].draw())[..., :3].astype(int)
    assert np.array_equal(img[..., 0], img[..., 1]) and np.array_equal(img[..., 1], img[..., 2])


def test_nested_model_with_rescaling_inside_works_on_its_own_input(nested_model):
    r = fp.filter_patterns(nested_model, "backbone/block2_conv1", list(range(4)), 16, 3, Preprocessor("none"))
    start = fp.start_pixels(list(range(4)), 16, 3, 0)  # 'none': the model receives pixels and rescales itself
    backbone = nested_model.get_layer("backbone")
    conv = backbone.get_layer("block2_conv1")
    h = backbone.get_layer("block1_pool")(
        backbone.get_layer("block1_conv1")(nested_model.get_layer("rescale")(start))
    )
    truth = keras.ops.convert_to_numpy(keras.ops.conv(h, conv.kernel) + conv.bias).mean(
        axis=(1, 2)
    )  # before its ReLU
    np.testing.assert_allclose(r.activation_start, truth[np.arange(4), np.arange(4)], rtol=1e-4, atol=1e-7)
    assert fp.pixel_step(Preprocessor("none"), 3) == 1.0  # the tutorial's step of one pixel unit


def test_display_maps_model_input_back_to_pixels():
    px = np.random.default_rng(0).uniform(0, 255, (2, 8, 8, 3)).astype("float32")
    plain = fp.deprocess(px, Preprocessor("none"))
    for mode in ("unit", "tf", "caffe", "torch"):
        pre = Preprocessor(mode)
        got = fp.deprocess(pre.forward(px), pre)
        assert np.abs(got.astype(int) - plain.astype(int)).max() <= 1, mode
    # the tutorial's deprocessing: centred, std 0.1 around 0.5, clipped, 0-255
    x = px[0] - px[0].mean()
    expected = np.clip((x / (x.std() + 1e-5)) * 0.1 + 0.5, 0, 1) * 255
    assert np.abs(plain[0].astype(int) - expected.astype(np.uint8).astype(int)).max() <= 1
    assert fp.pixel_step(Preprocessor("unit"), 3) == pytest.approx(1 / 255)
    assert fp.pixel_step(Preprocessor("caffe"), 3) == pytest.approx(1.0)


def test_robust_style_raises_activations_and_is_reproducible():
    model = lively_cnn()
    a = fp.filter_patterns(model, "conv_b", [0, 1, 2], 16, 8, UNIT, style="robust", seed=4)
    b = fp.filter_patterns(model, "conv_b", [0, 1, 2], 16, 8, UNIT, style="robust", seed=4)
    assert a.images.shape == (3, 16, 16, 3)
    assert np.array_equal(a.images, b.images)
    assert np.all(a.activation_end > a.activation_start)


def test_flop_count_and_default_layers():
    model = lively_cnn()
    # conv_a: 16*16 px * 9 * 3 in * 6 out; conv_b: 8*8 px * 9 * 6 in * 10 out (at 16 px)
    assert fp.macs_up_to(model, "conv_a", 16) == 16 * 16 * 9 * 3 * 6
    assert fp.macs_up_to(model, "conv_b", 16) == 16 * 16 * 9 * 3 * 6 + 8 * 8 * 9 * 6 * 10
    assert fp.macs_up_to(model, "conv_b", 32) == 4 * fp.macs_up_to(model, "conv_b", 16)
    vgg = keras.applications.VGG16(weights=None, include_top=False, input_shape=(32, 32, 3))
    assert [r.path for r in graph.default_pattern_layers(vgg)] == [f"block{i}_conv1" for i in range(1, 6)]
    flexible = keras.applications.VGG16(weights=None, include_top=False)  # (None, None, 3): sizes unknown
    assert [r.path for r in graph.default_pattern_layers(flexible)] == [
        f"block{i}_conv1" for i in range(1, 6)
    ]
    assert [r.path for r in graph.default_pattern_layers(model)] == ["conv_a", "conv_b"]


def test_patterns_at_any_size_even_when_the_model_input_is_fixed():
    model = lively_cnn()  # 16 x 16 input, Dense head
    r = fp.filter_patterns(model, "conv_b", [0, 1], 24, 2, UNIT)
    assert r.images.shape == (2, 24, 24, 3)


def test_interrupt_propagates():
    model = lively_cnn()

    def tick(n):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fp.filter_patterns(model, "conv_a", [0, 1], 16, 3, UNIT, tick=tick)


def test_bad_options_name_the_fix():
    model = lively_cnn()
    for opts, needle in [
        (Options(pattern_layers=("nope",)), "valid names: conv_a, conv_b"),
        (Options(pattern_layers=("pool_a",)), "not a valid layer"),
        (Options(pattern_filters=0), "--pattern-filters"),
        (Options(pattern_size=2), "--pattern-size"),
        (Options(pattern_steps=0), "--pattern-steps"),
        (Options(pattern_style="fancy"), "classic, robust"),
    ]:
        with pytest.raises(UserError, match=needle):
            patterns.validate(Context.computed(LoadedModel(model, "m", "m", None), opts, patterns.NEEDS))


def test_non_image_model_gets_a_note():
    inp = keras.Input((10,))
    model = keras.Model(inp, keras.layers.Dense(2)(inp))
    ctx = Context.computed(LoadedModel(model, "m", "m", None), Options(), patterns.NEEDS)
    patterns.validate(ctx)
    result = patterns.run(ctx)
    assert result.json == {} and "not an image" in result.view["note"]


# --- issue 17.5: honest rise counts, and first-layer patterns that show structure -----------------


def _kernel_gain(image: np.ndarray, kernel: np.ndarray) -> float:
    """How strongly a (single-channel) filter's zero-mean kernel responds to a pattern, per unit of contrast.

    std over the pattern's interior of (kernel - its mean) correlated with the pattern, divided by
    ||kernel - its mean|| x std of the pattern: independent noise gives 1 in expectation (the sum of
    k_i x_i has variance ||k||^2 var(x)); a pattern made of what the kernel looks for (its edges,
    strokes at its orientation) gives more; the kernel's mean is left out so brightness does not count.
    """
    x = image.astype(np.float64)[..., 0][2:-2, 2:-2]
    k = kernel - kernel.mean()
    kh, kw = k.shape
    windows = np.lib.stride_tricks.sliding_window_view(x, (kh, kw))
    response = np.einsum("ijab,ab->ij", windows, k)
    return float(response.std() / (np.linalg.norm(k) * x.std() + 1e-12))


@pytest.fixture(scope="module")
def trained_digits():
    from digits_models import trained

    return trained()


def test_rose_counts_the_filters_that_rose_by_the_margin_of_their_scale(trained_digits, tmp_path):
    """The section's rose / barely_moved / flat equal a plain recount from the per-filter start and end
    objectives and the margin, with the default margin and one set in a --config file."""
    config = tmp_path / "t.toml"
    config.write_text("pattern_rise_margin = 0.9\n")
    for opts, margin in [
        (Options(pattern_layers=("conv1", "conv2"), pattern_size=16), 0.5),
        (Options(pattern_layers=("conv1", "conv2"), pattern_size=16, config=str(config)), 0.9),
        (Options(pattern_layers=("conv1", "conv2"), pattern_size=16, pattern_steps=2), 0.5),
    ]:
        ctx = Context.computed(LoadedModel(trained_digits, "d", "d", None), opts, patterns.NEEDS)
        patterns.validate(ctx)
        result = patterns.run(ctx)
        for layer in result.view["layers"]:
            r = ctx.analyses.patterns.results[layer["path"]]
            entry = result.json["patterns"][layer["path"]]
            rose = barely = flat = 0
            for s, e in zip(r.activation_start.tolist(), r.activation_end.tolist()):
                scale = max(abs(s), abs(e))
                relative = (e - s) / scale if scale > 0 else 0.0
                if relative >= margin:
                    rose += 1
                elif relative > 1e-6:
                    barely += 1
                else:
                    flat += 1
            assert (entry["rose"], entry["barely_moved"], entry["flat"]) == (rose, barely, flat), layer[
                "path"
            ]
            assert (layer["rose"], layer["barely_moved"]) == (rose, barely)
            assert entry["rise_margin"] == margin and entry["steps"] == r.steps
            assert rose + barely + flat == len(entry["filters"])
    # two steps of a fitted size are too few: most filters barely move, and the page says so
    assert entry["rose"] < len(entry["filters"]) and entry["barely_moved"] > 0


def test_first_conv_layer_patterns_show_what_the_kernel_looks_for_not_noise(trained_digits):
    """On a trained digits CNN the first conv layer's tiles respond to their own kernels far more than
    noise does (kernel gain, see _kernel_gain). The earlier default (20 steps of one pixel unit on the
    pre-activation from the grey start) left the tiles at their start noise: gain ~1."""
    model = trained_digits
    kernel = keras.ops.convert_to_numpy(model.get_layer("conv1").kernel)[:, :, 0, :]  # (3, 3, 16)
    n = kernel.shape[-1]
    ctx = Context.computed(
        LoadedModel(model, "d", "d", None),
        Options(pattern_layers=("conv1",), pattern_size=24),
        patterns.NEEDS,
    )
    result = patterns.run(ctx)
    r = ctx.analyses.patterns.results["conv1"]
    entry = result.json["patterns"]["conv1"]
    assert entry["affine_in_image"] and entry["objective"] == "activation" and entry["keep_mean"]
    assert entry["steps"] == 200  # a cheap layer: the step count is fitted to the compute budget
    gains = np.array([_kernel_gain(r.images[i], kernel[..., i]) for i in range(n)])
    noise = fp.start_pixels(list(range(n)), 24, 1, 0, "noise")
    noise_gains = np.array([_kernel_gain(noise[i], kernel[..., i]) for i in range(n)])
    old = fp.filter_patterns(model, "conv1", list(range(n)), 24, 20, UNIT, seed=0)  # the earlier default
    old_gains = np.array([_kernel_gain(old.images[i], kernel[..., i]) for i in range(n)])
    assert abs(np.median(noise_gains) - 1.0) < 0.1 and abs(np.median(old_gains) - 1.0) < 0.1
    assert np.median(gains) > 1.4, np.round(gains, 2)
    assert np.sum(gains > 1.2) >= n // 2
    # and the count says what the pictures show: the old run barely moved, the new one rose
    assert entry["rose"] >= n - 2
    assert np.sum(fp.rise.rose(old.activation_start, old.activation_end)) <= 2


def test_affine_first_layer_is_recognised_and_budgeted_steps_keep_vgg_at_the_floor():
    from reportgen.analyses.patterns.cost import steps_within_budget
    from reportgen.analyses.patterns.objective import affine_in_image

    model = lively_cnn()
    assert affine_in_image(model, "conv_a", 16) and not affine_in_image(model, "conv_b", 16)
    vgg = keras.applications.VGG16(weights=None, include_top=False, input_shape=(64, 64, 3))
    assert [affine_in_image(vgg, f"block{i}_conv1", 64) for i in (1, 2)] == [True, False]
    assert [steps_within_budget(fp.macs_up_to(vgg, f"block{i}_conv1", 64), 64) for i in range(1, 6)] == [
        20
    ] * 5
    assert steps_within_budget(fp.macs_up_to(model, "conv_a", 16), 6) == 200
    # the step: one pixel unit without travel, else travel x the start's RMS contrast / steps, in model units
    assert fp.step_size(UNIT, 3, "grey", 20) == pytest.approx(1 / 255)
    assert fp.step_size(UNIT, 3, "grey", 20, travel=20) == pytest.approx(20 * (20 / 12**0.5) / 20 / 255)
    assert fp.step_size(Preprocessor("caffe"), 3, "noise", 100, travel=20) == pytest.approx(
        20 * 255 / 12**0.5 / 100
    )


def test_the_not_rising_finding_uses_the_same_definition_as_the_section(trained_digits):
    """pattern_not_rising flags exactly the filters the section counts as flat (relative rise at most
    pattern_min_rise), and in the first-layer mode says why: no gradient from the noise start."""
    from reportgen.analyses.findings import check_patterns
    from reportgen.config import Thresholds

    ctx = Context.computed(
        LoadedModel(trained_digits, "d", "d", None),
        Options(pattern_layers=("conv1", "conv2"), pattern_size=16),
        patterns.NEEDS,
    )
    result = patterns.run(ctx)
    found = check_patterns(result.json["patterns"], Thresholds())
    for path, entry in result.json["patterns"].items():
        r = ctx.analyses.patterns.results[path]
        flat = {
            f
            for f, s, e in zip(r.filters, r.activation_start, r.activation_end)
            if not (e - s > 1e-6 * max(abs(s), abs(e)))
        }
        mine = [f for f in found if f["layer"] == path]
        assert {f["filter"] for f in mine} == flat and entry["flat"] == len(flat), path
        if entry["keep_mean"]:
            assert all("noise start" in f["message"] and "brightness" in f["message"] for f in mine)
    # the same check reads a PatternResult object as well as its JSON
    assert len(check_patterns(ctx.analyses.patterns.results, Thresholds())) == len(found)


@pytest.mark.parametrize("min_rise", [None, -1.0])
def test_the_configured_tolerance_reaches_the_ascent(small_model, min_rise):
    """pattern_min_rise reaches compute once: the ascent's ``dead`` (and its retries) use it, so a user's
    value removes a flag as well as it adds one, and report.json's ``dead`` and ``flat`` agree."""
    from reportgen.analyses.findings import check_patterns
    from reportgen.config import Thresholds

    conv = small_model.get_layer("conv_b")
    kernel, bias = conv.get_weights()
    kernel[..., 3], bias[3] = 0.0, 0.0  # filter 3 of conv_b: all zero, its objective cannot rise
    conv.set_weights([kernel, bias])
    t = Thresholds() if min_rise is None else Thresholds(pattern_min_rise=min_rise)
    ctx = Context.computed(
        LoadedModel(small_model, "s", "s", None),
        Options(pattern_layers=("conv_b",), pattern_size=16),
        patterns.NEEDS,
        given={"thresholds": t},  # as --config would give it
    )
    result = patterns.run(ctx)
    entry = result.json["patterns"]["conv_b"]
    found = [f["filter"] for f in check_patterns(result.json["patterns"], t)]
    if min_rise is None:
        assert 3 in entry["dead"] and 3 in found and entry["flat"] == len(entry["dead"])
    else:  # nothing is flat at a tolerance of -1: no flag, and the ascent marks no filter dead either
        assert entry["dead"] == [] and found == [] and entry["flat"] == 0
