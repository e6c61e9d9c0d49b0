"""Grad-CAM: equals a direct GradientTape computation, finds a bright square, batches, explains its limits."""

from __future__ import annotations

import reportgen  # noqa: F401  (quiet TensorFlow before keras)

import keras
import numpy as np
import pytest

from reportgen import backend
from reportgen.graph import forward
from reportgen.analyses import cam as gc
from reportgen.context import Context, LoadedModel, Options
from reportgen.errors import UserError
from reportgen.sections import gradcam as section

tf = pytest.importorskip("tensorflow") if backend.requested() == "tensorflow" else None
needs_tf = pytest.mark.skipif(
    backend.requested() != "tensorflow", reason="the reference is written with tf.GradientTape"
)


def _inputs(n=3, shape=(16, 16, 3), seed=0):
    return np.random.default_rng(seed).uniform(0, 1, (n,) + shape).astype("float32")


def reference_gradcam(model, layer_name, x, classes, logits=True):
    """The keras-io recipe, written out: softmax removed, tape on the conv output,
    pooled gradients, weighted sum, ReLU, divide by the max."""
    m = keras.models.clone_model(model)
    m.set_weights(model.get_weights())
    if logits:
        m.layers[-1].activation = None
    inp = keras.Input(model.input_shape[1:])
    y, conv = inp, None
    for layer in m.layers:  # Sequential models, re-wired so the conv output is reachable
        y = layer(y)
        conv = y if layer.name == layer_name else conv
    grad_model = keras.Model(inp, [conv, y])
    maps = []
    for i, c in enumerate(classes):
        with tf.GradientTape() as tape:
            conv, preds = grad_model(x[i : i + 1])
            score = preds[:, c]
        grads = tape.gradient(score, conv)[0].numpy()
        conv = conv[0].numpy()
        weights = grads.mean(axis=(0, 1))
        cam = np.maximum((conv * weights).sum(axis=-1), 0)
        maps.append(cam / cam.max() if cam.max() > 0 else cam)
    return np.stack(maps)


@needs_tf
def test_equals_direct_reference_computation(small_model):
    x = _inputs(3)
    classes = [0, 2, 3]
    got = gc.heatmaps(small_model, "conv_b", x, classes)
    expected = reference_gradcam(small_model, "conv_b", x, classes)
    assert got.shape == (3, 8, 8)
    assert got.min() >= 0 and got.max() <= 1
    np.testing.assert_allclose(got, expected, atol=1e-5)


@needs_tf
def test_raw_output_head_uses_the_output(small_model):
    # The same network without a softmax: the score is the output itself.
    logits = keras.models.clone_model(small_model)
    logits.set_weights(small_model.get_weights())
    logits.layers[-1].activation = keras.activations.linear
    head = gc.classifier_head(logits)
    assert head.kind == "none" and head.score == "output" and not head.is_classifier
    assert "not a class score" in head.note
    x = _inputs(2)
    np.testing.assert_allclose(
        gc.heatmaps(logits, "conv_b", x, [1, 2]),
        reference_gradcam(logits, "conv_b", x, [1, 2], logits=False),
        atol=1e-5,
    )


def test_one_batch_for_all_images_and_classes(small_model, monkeypatch):
    calls = []
    real = forward.run

    def spy(model, inputs, taps=None, **kwargs):
        calls.append(tuple(np.shape(inputs)))
        return real(model, inputs, taps, **kwargs)

    x = _inputs(4)
    monkeypatch.setattr(forward, "run", spy)
    result = gc.explain(small_model, "conv_b", x, top_k=3)
    monkeypatch.undo()
    assert calls == [(4, 16, 16, 3)]
    assert result.heatmaps.shape == (4, 3, 8, 8)
    probs = keras.ops.convert_to_numpy(small_model(x))
    np.testing.assert_array_equal(result.class_indices, np.argsort(-probs, axis=1, kind="stable")[:, :3])
    np.testing.assert_allclose(result.outputs, probs, atol=1e-6)
    # each (image, class) equals the single-image computation
    single = gc.heatmaps(small_model, "conv_b", x[2:3], [int(result.class_indices[2, 1])])
    np.testing.assert_allclose(result.heatmaps[2, 1], single[0], atol=1e-5)


def test_target_layer_is_the_last_conv_nested_included(small_model, nested_model, vgg16):
    assert gc.find_target_layer(small_model).path == "conv_b"
    assert gc.find_target_layer(nested_model).path == "backbone/block2_conv1"
    vgg = vgg16  # conftest: VGG16(weights=None), built once a session
    assert gc.find_target_layer(vgg).path == "block5_conv3"


@needs_tf
def test_nested_target_equals_reference(nested_model):
    x = _inputs(2) * 255
    got = gc.heatmaps(nested_model, "backbone/block2_conv1", x, [4, 1])
    # reference on a flattened copy of the same network
    inp = keras.Input((16, 16, 3))
    y = nested_model.get_layer("rescale")(inp)
    backbone = nested_model.get_layer("backbone")
    for name in ("block1_conv1", "block1_pool", "block2_conv1"):
        y = backbone.get_layer(name)(y)
    conv = y
    dense = nested_model.get_layer("classifier")
    logits = keras.ops.matmul(nested_model.get_layer("flatten")(conv), dense.kernel) + dense.bias
    flat = keras.Model(inp, [conv, logits])
    expected = []
    for i, c in enumerate([4, 1]):
        with tf.GradientTape() as tape:
            a, z = flat(x[i : i + 1])
            s = z[:, c]
        g = tape.gradient(s, a)[0].numpy()
        cam = np.maximum((a[0].numpy() * g.mean(axis=(0, 1))).sum(-1), 0)
        expected.append(cam / cam.max() if cam.max() > 0 else cam)
    np.testing.assert_allclose(got, np.stack(expected), atol=1e-5)


def _squares(n, rng, size=32, side=6):
    x = rng.uniform(0, 0.3, (n, size, size, 1)).astype("float32")
    y = rng.integers(0, 2, n)
    boxes = []
    for i in range(n):
        r, c = rng.integers(0, size - side, 2)
        boxes.append((r, c))
        if y[i]:
            x[i, r : r + side, c : c + side] = 1.0
    return x, y, boxes


def test_heatmap_peak_falls_on_the_bright_square():
    keras.utils.set_random_seed(3)
    rng = np.random.default_rng(3)
    x, y, _ = _squares(1200, rng)
    model = keras.Sequential(
        [
            keras.Input((32, 32, 1)),
            keras.layers.Conv2D(8, 3, activation="relu", padding="same"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Conv2D(16, 3, activation="relu", padding="same", name="last_conv"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    model.fit(x, y, epochs=4, batch_size=64, verbose=0)
    tx, ty, boxes = _squares(40, np.random.default_rng(7))
    assert model.evaluate(tx, ty, verbose=0)[1] > 0.95
    assert gc.find_target_layer(model).path == "last_conv"
    with_square = np.flatnonzero(ty == 1)
    maps = gc.heatmaps(model, "last_conv", tx[with_square], np.ones(len(with_square), int))
    hits = 0
    for m, i in zip(maps, with_square):
        up = gc.upsample(m, 32, 32)
        pr, pc = np.unravel_index(np.argmax(up), up.shape)
        r, c = boxes[i]
        hits += (r - 1 <= pr <= r + 6) and (c - 1 <= pc <= c + 6)
    assert hits == len(with_square), f"{hits} of {len(with_square)} peaks on the square"


def test_unknown_gradcam_layer_lists_valid_names(small_model):
    with pytest.raises(UserError) as err:
        gc.resolve_layer(small_model, "nope")
    msg = str(err.value)
    assert msg.startswith("--gradcam-layer: 'nope'") and "conv_b" in msg and "pool_a" in msg


def test_model_without_conv_layers():
    inp = keras.Input((8, 8, 1))
    model = keras.Model(inp, keras.layers.Dense(3, activation="softmax")(keras.layers.Flatten()(inp)))
    with pytest.raises(UserError, match="no layer with a 2-D map output"):
        gc.find_target_layer(model)
    ctx = Context.computed(LoadedModel(model, "m", "m", None), Options(), section.NEEDS)
    section.validate(ctx)
    result = section.run(ctx)
    assert "no layer with a 2-D map output" in result.view["note"]


def test_heads():
    for act, kind in (("softmax", "softmax"), ("sigmoid", "sigmoid"), ("relu", "none")):
        inp = keras.Input((4, 4, 1))
        z = keras.layers.Conv2D(2, 3)(inp)
        out = keras.layers.Dense(3, activation=act)(keras.layers.Flatten()(z))
        head = gc.classifier_head(keras.Model(inp, out))
        assert head.kind == kind
        assert gc.is_classifier(keras.Model(inp, out)) == (kind != "none")
    inp = keras.Input((4, 4, 1))
    seg = keras.Model(inp, keras.layers.Conv2D(2, 1)(inp))
    head = gc.classifier_head(seg)
    assert head.kind == "map" and "mean of the output map" in head.note
    seg = keras.Model(inp, keras.layers.Conv2D(3, 1, activation="softmax")(inp))
    head = gc.classifier_head(seg)
    assert head.kind == "pixel-softmax" and head.score == "logit" and head.units == 3


@needs_tf
def test_section_json(small_model, tmp_path):
    names = tmp_path / "names.txt"
    names.write_text("ant\nbee\ncat\ndog\n")
    samples = [
        (np.random.default_rng(i).integers(0, 256, (16, 16, 3), dtype=np.uint8), "cat") for i in range(1)
    ]
    ctx = Context.computed(
        LoadedModel(small_model, "m", "m", None, sample_images=samples),
        Options(class_names=str(names), top_k=2),
        section.NEEDS,
    )
    section.validate(ctx)
    result = section.run(ctx)
    (img,) = result.json["images"]
    x = samples[0][0][None].astype("float32") / 255
    probs = keras.ops.convert_to_numpy(small_model(x))[0]
    order = np.argsort(-probs)[:2]
    assert [p["index"] for p in img["predictions"]] == list(order)
    assert [p["label"] for p in img["predictions"]] == [["ant", "bee", "cat", "dog"][i] for i in order]
    np.testing.assert_allclose([p["probability"] for p in img["predictions"]], probs[order], atol=1e-6)
    assert [g["class_index"] for g in img["gradcam"]] == list(order)
    assert all(g["layer"] == "conv_b" for g in img["gradcam"])
    heat = np.array(img["gradcam"][0]["heatmap"])
    assert heat.shape == (8, 8)
    np.testing.assert_allclose(heat, reference_gradcam(small_model, "conv_b", x, [order[0]])[0], atol=1e-4)
    assert img["preprocess"]["mode"] == "unit" and img["true_label"] == "cat"
    assert result.view["images"][0]["figure"].draw().startswith("data:image/")
    assert result.json["gradcam"]["layer"] == "conv_b"


@needs_tf
def test_one_sigmoid_unit_explains_the_predicted_class_of_two():
    """A cats-vs-dogs model with ONE sigmoid unit: class 1 ("dog") is its logit z, class 0 ("cat") is -z.
    Reference: the keras-io recipe on +z and on -z."""
    import awkward_models as A

    model = A.binary()
    x = _inputs(4)
    res = gc.explain(model, "conv2", x, top_k=2, names=["cat", "dog"])
    m = keras.models.clone_model(model)
    m.set_weights(model.get_weights())
    m.layers[-1].activation = None
    inp = keras.Input(model.input_shape[1:])
    y, conv = inp, None
    for layer in m.layers:
        y = layer(y)
        conv = y if layer.name == "conv2" else conv
    grad_model = keras.Model(inp, [conv, y])
    for i in range(len(x)):
        with tf.GradientTape() as tape:
            a, logit = grad_model(x[i : i + 1])
            score = logit[0, 0]
        g = tape.gradient(score, a)[0].numpy()
        a = a[0].numpy()
        z = float(score)
        p = 1 / (1 + np.exp(-z))
        predicted = int(p > 0.5)
        assert list(res.class_indices[i]) == [predicted, 1 - predicted]
        assert res.target.labels[i] == [["cat", "dog"][predicted], ["cat", "dog"][1 - predicted]]
        np.testing.assert_allclose(res.outputs[i], [1 - p, p], rtol=1e-5)
        for j, c in enumerate(res.class_indices[i]):
            sign = 1.0 if c == 1 else -1.0
            np.testing.assert_allclose(res.scores[i, j], sign * z, rtol=1e-5, atol=1e-6)
            cam = np.maximum((a * (sign * g).mean(axis=(0, 1))).sum(axis=-1), 0)
            cam = cam / cam.max() if cam.max() > 0 else cam
            np.testing.assert_allclose(res.heatmaps[i, j], cam, atol=1e-5)
