"""Feature maps: one forward pass, equal to a plain Keras sub-model per layer, nested models included."""

from __future__ import annotations

import reportgen  # noqa: F401  (quiet TensorFlow before keras)

import base64
import io

import keras
import numpy as np
import pytest
from PIL import Image

from reportgen import graph
from reportgen.graph import forward
from reportgen.analyses import feature_maps
from reportgen.context import Context, LoadedModel, Options
from reportgen.errors import UserError
from reportgen.sections import features


def _inputs(n=2, shape=(16, 16, 3), seed=0):
    return np.random.default_rng(seed).uniform(0, 1, (n,) + shape).astype("float32")


def test_maps_equal_a_plain_keras_submodel_per_layer(small_model):
    x = _inputs()
    refs = graph.default_feature_layers(small_model)
    assert [r.path for r in refs] == ["conv_a", "pool_a", "conv_b"]
    got = feature_maps.compute(small_model, refs, x)
    for layer_maps, ref in zip(got, refs):
        layer = small_model.get_layer(ref.path)
        expected = keras.Model(small_model.inputs, layer.output)(x)
        np.testing.assert_allclose(
            layer_maps.maps, keras.ops.convert_to_numpy(expected), rtol=1e-5, atol=1e-6
        )
        assert layer_maps.shape == tuple(expected.shape[1:])


def test_nested_layers_equal_the_inner_models_own_outputs(nested_model):
    x = _inputs(3) * 255
    refs = graph.default_feature_layers(nested_model)
    assert [r.path for r in refs] == [
        "backbone/block1_conv1",
        "backbone/block1_pool",
        "backbone/block2_conv1",
    ]
    got = {m.path: m.maps for m in feature_maps.compute(nested_model, refs, x)}
    backbone = nested_model.get_layer("backbone")
    # Independent route: the outer model up to the backbone's input, then the backbone's own sub-model.
    into_backbone = keras.Model(nested_model.inputs, nested_model.get_layer("rescale").output)(x)
    for name in ("block1_conv1", "block1_pool", "block2_conv1"):
        inner = keras.Model(backbone.inputs, backbone.get_layer(name).output)
        np.testing.assert_allclose(
            got[f"backbone/{name}"], keras.ops.convert_to_numpy(inner(into_backbone)), rtol=1e-5, atol=1e-6
        )


def test_one_forward_pass_for_all_layers(small_model, monkeypatch):
    calls = []
    real = forward.run

    def spy(model, inputs, taps=None, **kwargs):
        calls.append(list(taps or {}))
        return real(model, inputs, taps, **kwargs)

    monkeypatch.setattr(forward, "run", spy)
    feature_maps.compute(small_model, graph.default_feature_layers(small_model), _inputs())
    assert calls == [["conv_a", "pool_a", "conv_b"]]


def test_channel_statistics():
    maps = np.zeros((2, 3, 3, 2), np.float32)
    maps[0, :, :, 0] = 2.0
    maps[0, 0, 0, 1] = 9.0
    mean, zeros = feature_maps.channel_stats(maps)
    np.testing.assert_allclose(mean, [[2.0, 1.0], [0.0, 0.0]])
    np.testing.assert_allclose(zeros, [[0.0, 8 / 9], [1.0, 1.0]])


def test_default_selection_for_large_models():
    keras.utils.set_random_seed(0)
    layers = [keras.Input((32, 32, 3))]
    for stage in range(3):
        for i in range(8):
            layers.append(keras.layers.Conv2D(4, 3, padding="same", name=f"s{stage}_conv{i}"))
        layers.append(keras.layers.MaxPooling2D(2, name=f"s{stage}_pool"))
    model = keras.Sequential(layers + [keras.layers.Flatten(), keras.layers.Dense(2)])
    assert len(graph.feature_map_layers(model)) == 27
    chosen = [r.path for r in graph.default_feature_layers(model)]
    assert chosen == ["s0_conv0", "s1_conv0", "s2_conv0", "s2_conv7"]


def test_unknown_layer_names_list_the_valid_ones(small_model):
    with pytest.raises(UserError) as err:
        feature_maps.select_layers(small_model, ["nope"])
    msg = str(err.value)
    assert msg.startswith("--layers: 'nope'") and "conv_a" in msg and "pool_a" in msg and "conv_b" in msg
    assert [r.path for r in feature_maps.select_layers(small_model, ["conv_b"])] == ["conv_b"]


def _decode(uri: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))))


def test_section_json_matches_the_reference_and_draws_one_image_per_layer(small_model):
    samples = [
        (np.random.default_rng(i).integers(0, 256, (16, 16, 3), dtype=np.uint8), str(i)) for i in range(2)
    ]
    loaded = LoadedModel(small_model, "m", "m", None, sample_images=samples)
    ctx = Context.computed(loaded, Options(feature_channels=5), features.NEEDS)
    features.validate(ctx)
    result = features.run(ctx)
    images = result.json["images"]
    assert len(images) == 2 and images[1]["true_label"] == "1"
    assert images[0]["preprocess"]["mode"] == "unit"
    x = np.stack([s[0] for s in samples]).astype("float32") / 255.0
    for name in ("conv_a", "pool_a", "conv_b"):
        ref = keras.ops.convert_to_numpy(
            keras.Model(small_model.inputs, small_model.get_layer(name).output)(x)
        )
        for i in range(2):
            entry = images[i]["features"][name]
            assert entry["shape"] == list(ref.shape[1:])
            np.testing.assert_allclose(entry["channel_mean"], ref[i].mean(axis=(0, 1)), rtol=1e-4, atol=1e-6)
            np.testing.assert_allclose(entry["zero_fraction"], (ref[i] == 0).mean(axis=(0, 1)), atol=1e-6)
    view = result.view["images"][0]
    assert [L["path"] for L in view["layers"]] == ["conv_a", "pool_a", "conv_b"]
    for L in view["layers"]:
        assert L["figure"].draw().startswith(("data:image/png;base64,", "data:image/jpeg;base64,"))
        assert L["shown"] == 5
        assert _decode(L["figure"].draw()).shape[0] > 100
    assert view["layers"][0]["anchor"] == "features-conv-a"


def test_non_image_model_gets_a_note():
    inp = keras.Input((10,))
    model = keras.Model(inp, keras.layers.Dense(2, activation="softmax")(inp))
    ctx = Context.computed(LoadedModel(model, "m", "m", None), Options(), features.NEEDS)
    features.validate(ctx)
    result = features.run(ctx)
    assert result.view["images"] == [] and "not an image" in result.view["note"]


def test_augmentation_layers_are_identity_as_in_predict():
    # Keras' augmentation layers default to training=True when called bare; model.predict passes
    # training=False. The maps must be predict's, at the top level and inside a nested block.
    inp = keras.Input(shape=(16, 16, 3))
    x = keras.layers.RandomFlip("horizontal_and_vertical", seed=1, name="flip")(inp)
    x = keras.layers.RandomRotation(0.4, seed=2, name="rotate")(x)
    x = keras.Sequential(
        [
            keras.layers.RandomZoom(0.5, seed=3),
            keras.layers.Dropout(0.5),
            keras.layers.Conv2D(4, 3, name="conv_in_block"),
        ],
        name="block",
    )(x)
    x = keras.layers.BatchNormalization(name="bn")(x)
    out = keras.layers.Conv2D(3, 3, activation="relu", name="conv_after")(x)
    model = keras.Model(inp, out, name="augmented")
    bn = model.get_layer("bn")
    bn.moving_mean.assign(np.full(4, 0.3, "float32"))  # so that a training-mode BN would differ
    bn.moving_variance.assign(np.full(4, 4.0, "float32"))
    x = _inputs(3, seed=5)
    refs = [r for r in graph.walk(model) if r.path in ("block/conv_in_block", "conv_after")]
    got = {m.path: m.maps for m in feature_maps.compute(model, refs, x)}
    block = model.get_layer("block")
    into_block = keras.Model(model.inputs, model.get_layer("rotate").output).predict(x, verbose=0)
    inner = keras.Model(block.inputs, block.get_layer("conv_in_block").output).predict(into_block, verbose=0)
    np.testing.assert_allclose(got["block/conv_in_block"], inner, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["conv_after"], model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
