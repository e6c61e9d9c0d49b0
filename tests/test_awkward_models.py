"""Models we did not design for get every section, with numbers checked against an independent truth."""

from __future__ import annotations

import reportgen  # noqa: F401

import json
from pathlib import Path

import keras
import numpy as np
import pytest

import awkward_models as A
from reportgen import backend, graph
from reportgen.graph import forward
from reportgen.analyses import cam, feature_maps
from reportgen.context import LoadedModel, Options
from reportgen.images import InputSpec, load_image, sample_photo_path
from reportgen.preprocessing import Preprocessor
from reportgen.report import build_report

ALL = ("findings", "overview", "layers", "weights", "kernels", "features", "gradcam", "patterns")
SCHEMA = json.loads((Path(__file__).resolve().parents[1] / "docs" / "report.schema.json").read_text())


def report(model, tmp_path, name="m", formats=("json", "html"), **options):
    opts = Options(quiet=True, pattern_steps=2, pattern_filters=4, **options)
    folder, data = build_report(LoadedModel(model, name, "(test)", None), opts, tmp_path, formats)
    return folder, data


# Models whose every-section report more than one test reads: built and reported once a module.
SHARED = ("odd_names", "with_operations")


@pytest.fixture(scope="module")
def shared_report(tmp_path_factory):
    """shared_report(build) -> (model, folder, data): ``report(getattr(A, build)(), ..., build)``, once."""
    made = {}

    def get(build):
        if build not in made:
            model = getattr(A, build)()
            made[build] = (model, *report(model, tmp_path_factory.mktemp(build), build))
        return made[build]

    return get


@pytest.mark.parametrize(
    "build",
    [
        "hed",
        "segmentation",
        "depth_map",
        "multi_output",
        "image_and_metadata",
        "odd_names",
        "with_operations",
        "mixed_precision",
        "subclassed_two_heads",
        "binary",
    ],
)
def test_every_kind_of_model_gets_every_section(build, tmp_path, shared_report):
    import jsonschema

    if build in SHARED:
        model, folder, data = shared_report(build)
    else:
        model = getattr(A, build)()
        folder, data = report(model, tmp_path, build)
    assert data["section_errors"] == []
    assert data["sections"] == list(ALL)
    assert set(data["timings"]) == set(ALL) and all(t >= 0 for t in data["timings"].values())
    jsonschema.validate(json.loads((folder / "report.json").read_text()), SCHEMA)
    assert data["weights"] and data["kernels"] and data["patterns"]
    image = data["images"][0]
    assert image["features"], "feature maps"
    maps = [np.asarray(g["heatmap"]) for g in image["gradcam"]]
    assert maps and all(m.ndim == 2 and 0 <= m.min() and m.max() <= 1 for m in maps)
    assert data["gradcam"]["target"]  # the report states what was explained
    for entry in data["patterns"].values():
        assert entry["dead"] == [], entry  # the pre-activation ascent climbs for every filter
    assert not (folder / "errors.log").exists()


def test_subclassed_layers_are_reached_by_path_in_call_order():
    model = A.hed()
    paths = [r.path for r in graph.walk(model)]
    assert paths[:4] == ["block1", "block1/block1_conv1", "block1/block1_conv2", "side1"]
    assert "block2/block2_pool" in paths and paths[-1] == "fuse"
    ref = graph.anatomy(model).ref("block2/block2_conv1")
    assert ref.output_shape == (None, 16, 16, 8) and ref.depth == 1
    assert graph.anatomy(model).subclassed and graph.anatomy(model).output_layers == ["fuse"]


def test_subclassed_feature_maps_equal_the_layers_computed_by_hand():
    model = A.hed()
    x = A.images(2, 32)
    refs = graph.find_layers(
        graph.spatial_layers(model), ["block1_conv2", "block2/block2_conv1", "side2"], "--layers"
    )
    got = {m.path: m.maps for m in feature_maps.compute(model, refs, x)}
    # truth: the model's own blocks and layers called one after another
    np_ = keras.ops.convert_to_numpy
    b1 = np_(model.block1(x))
    h = model.block2.get_layer("block2_pool")(b1)
    b2c1 = np_(model.block2.get_layer("block2_conv1")(h))
    side2 = np_(model.sides[1](model.block2(b1)))
    np.testing.assert_allclose(got["block1/block1_conv2"], b1, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["block2/block2_conv1"], b2c1, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["side2"], side2, rtol=1e-5, atol=1e-6)


def _gradcam_reference(conv, score):
    """Grad-CAM written out from its formula: ReLU(sum_k mean(dS/dA_k) A_k), divided by the max."""
    acts, grads = np.asarray(conv, dtype=np.float64), np.asarray(score, dtype=np.float64)
    m = np.maximum((acts * grads.mean(axis=(1, 2), keepdims=True)).sum(-1), 0)
    peak = m.reshape(len(m), -1).max(axis=1)
    return m / np.where(peak > 0, peak, 1)[:, None, None]


@pytest.mark.skipif(backend.requested() != "tensorflow", reason="the reference uses tf.GradientTape")
def test_dense_output_gradcam_explains_the_mean_of_the_map():
    import tensorflow as tf

    model = A.depth_map()
    x = A.images(3, 24)
    head = cam.classifier_head(model)
    assert head.kind == "map"
    layer = cam.find_target_layer(model).path
    assert layer == "c2"  # the conv before the output, not the output conv itself
    got = cam.explain(model, layer, x)
    sub = keras.Model(model.inputs, [model.get_layer("c2").output, model.output])
    with tf.GradientTape() as tape:
        a, y = sub(x)
        s = tf.reduce_mean(y, axis=[1, 2, 3])
    g = tape.gradient(s, a)
    np.testing.assert_allclose(got.heatmaps[:, 0], _gradcam_reference(a, g), atol=1e-5)
    np.testing.assert_allclose(got.scores[:, 0], np.asarray(s), rtol=1e-5)


@pytest.mark.skipif(backend.requested() != "tensorflow", reason="the reference uses tf.GradientTape")
def test_per_pixel_classifier_explains_its_top_classes_by_area():
    import tensorflow as tf

    model = A.segmentation(classes=3)
    x = A.images(2, 24)
    got = cam.explain(model, "enc2", x, top_k=2)
    probs = keras.ops.convert_to_numpy(model(x))
    winner = probs.argmax(-1)
    pixels = model.get_layer("pixels")
    sub = keras.Model(model.inputs, [model.get_layer("enc2").output, pixels.input])
    for k in range(2):
        classes = got.class_indices[:, k]
        for i, c in enumerate(classes):
            counts = np.bincount(winner[i].ravel(), minlength=3)
            assert counts[c] == np.sort(counts)[::-1][k]  # the k-th largest area
        with tf.GradientTape() as tape:
            a, h = sub(x)
            logits = keras.ops.conv(h, pixels.kernel) + pixels.bias  # before the softmax
            masks = tf.constant((winner == classes[:, None, None]).astype("float32"))
            s = tf.reduce_sum(
                tf.gather(logits, classes, axis=-1, batch_dims=1) * masks, [1, 2]
            ) / tf.reduce_sum(masks, [1, 2])
        g = tape.gradient(s, a)
        np.testing.assert_allclose(got.heatmaps[:, k], _gradcam_reference(a, g), atol=1e-5)


def test_output_option_picks_one_output_of_a_multi_output_model(tmp_path, cli):
    model = A.multi_output()
    path = tmp_path / "two.keras"
    model.save(path)
    res = cli(
        path, "--output", "edges", "--sections", "gradcam", "--format", "json", "--out", tmp_path, "--quiet"
    )
    assert res.status == 0, res.stderr
    data = json.loads((tmp_path / "two" / "report.json").read_text())
    assert data["gradcam"]["output_name"] == "edges" and data["gradcam"]["output"] == "map"
    res = cli(
        path, "--output", "classes", "--sections", "gradcam", "--format", "json", "--out", tmp_path, "--quiet"
    )
    data = json.loads((tmp_path / "two" / "report.json").read_text())
    assert res.status == 0 and data["gradcam"]["output"] == "softmax" and data["images"][0]["predictions"]
    res = cli(path, "--output", "nope", "--out", tmp_path / "never", "--quiet")
    assert res.status == 2 and "no output 'nope'" in res.stderr and "classes, edges" in res.stderr
    assert res.stderr.count("\n") == 1 and not (tmp_path / "never").exists()


def test_image_plus_metadata_gets_the_image_sections_other_inputs_zero_or_given(tmp_path, cli):
    model = A.image_and_metadata()
    path = tmp_path / "im.keras"
    model.save(path)
    meta = np.linspace(-1, 1, 5).astype("float32")
    np.save(tmp_path / "meta.npy", meta)
    for given in ((), ("--input", f"meta={tmp_path / 'meta.npy'}")):
        res = cli(
            path,
            *given,
            "--sections",
            "overview,features,gradcam",
            "--format",
            "json",
            "--out",
            tmp_path,
            "--quiet",
        )
        assert res.status == 0, res.stderr
        data = json.loads((tmp_path / "im" / "report.json").read_text())
        fed = {f["name"]: f["fed"] for f in data["model"]["inputs_fed"]}
        assert fed["image"] == "images" and fed["meta"] == (str(tmp_path / "meta.npy") if given else "zeros")
        assert data["images"][0]["features"] and data["images"][0]["predictions"]
        # truth: the model called on the report's image and what was fed beside it
        x = load_image(sample_photo_path(), InputSpec(20, 20, 3), Preprocessor("unit")).input[None]
        truth = keras.ops.convert_to_numpy(model([x, (meta if given else np.zeros(5, "float32"))[None]]))[0]
        probs = [p["probability"] for p in data["images"][0]["predictions"]]
        np.testing.assert_allclose(probs, np.sort(truth)[::-1][: len(probs)], rtol=1e-5)
    res = cli(path, "--input", "mood=x.npy", "--out", tmp_path / "never", "--quiet")
    assert res.status == 2 and "no input named 'mood'" in res.stderr and "image, meta" in res.stderr


def test_odd_layer_names_pass_every_section_and_are_escaped(shared_report):
    _model, folder, data = shared_report("odd_names")
    assert data["section_errors"] == []
    html = (folder / "report.html").read_text()
    assert A.ODD not in html and "<script>alert" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    ids = [s.split('"')[0] for s in html.split(' id="')[1:]]
    assert len(ids) == len(set(ids)), "every figure id is unique"
    assert A.ODD in data["patterns"] and A.ODD in data["kernels"]


def test_graph_operations_are_listed_and_walked(shared_report):
    model, folder, data = shared_report("with_operations")
    rows = {r.path: r for r in graph.walk(model)}
    ops = [r for r in rows.values() if r.is_op]
    assert {r.class_name for r in ops} >= {"Add", "HardSilu"}  # ops.hard_swish is HardSilu in Keras 3
    table = {r["name"]: r for r in data["layers"]}
    for op in ops:
        assert table[op.path]["params"] == 0 and table[op.path]["operation"] is True
        assert table[op.path]["output_shape"] == [None, 16, 16, 8]
    assert sum(r["params"] for r in data["layers"] if r["depth"] == 0) == model.count_params()


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_is_computed_in_float32(policy, tmp_path):
    model = A.mixed_precision(policy)
    x = A.images(2, 16)
    assert model.get_layer("conv_b").compute_dtype != "float32"
    # truth: the same weights in a float32 model
    plain = A.mixed_precision("float32")
    plain.set_weights(model.get_weights())
    with forward.float32(model) as replaced:
        assert policy in replaced
        got = cam.explain(model, "conv_b", x, classes=[1, 2])
    want = cam.explain(plain, "conv_b", x, classes=[1, 2])
    np.testing.assert_allclose(got.heatmaps, want.heatmaps, atol=1e-6)
    assert model.get_layer("conv_b").compute_dtype != "float32"  # the policy is given back
    folder, data = report(model, tmp_path, "mp")
    assert data["model"]["policies_replaced"] == [policy]
    kernel = model.get_layer("conv_a").kernel.numpy().astype(np.float64)
    assert data["weights"]["conv_a"]["std"] == pytest.approx(kernel.std(), rel=1e-6)
    assert all(e["dead"] == [] for e in data["patterns"].values())
    assert model.get_layer("conv_b").compute_dtype != "float32"


@pytest.mark.skipif(
    backend.requested() != "tensorflow", reason="tf.image.resize inside call() needs TensorFlow"
)
def test_the_issues_hed_example_with_tf_image_resize(tmp_path):
    folder, data = report(A.hed(cls=A.TFResizeHED), tmp_path, "hed_tf")
    assert data["section_errors"] == [] and data["gradcam"]["output"] == "map"
    assert data["gradcam"]["layer"] == "block3/block3_conv2"


def test_subclassed_multi_output_explains_a_layer_the_chosen_output_depends_on():
    """Call order puts the edge branch last; the class output never sees it, so Grad-CAM must not pick it."""
    model = A.subclassed_two_heads()
    assert cam.find_target_layer(model, 0).path == "cls_conv"
    assert cam.find_target_layer(model, 1).path == "edge_conv"
