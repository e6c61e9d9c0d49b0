"""One of each (issue 18): each concept has one definition, and every caller reaches it.

The data-set pass computes its CAMs with the CAM package's Grad-CAM and two-class reading; one
batch-size rule; one feeds adapter; one stage grouping; one one-line error formatter; the
configured ``dead_kernel_norm`` reaches the duplicate check.
"""

from __future__ import annotations

import reportgen  # noqa: F401

import inspect
import json
from pathlib import Path

import keras
import numpy as np

from reportgen import graph
from reportgen.analyses import activations as A
from reportgen.analyses import cam
from reportgen.analyses import dataset as D
from reportgen.analyses.cam.base import activate, normalise
from reportgen.analyses.cam.gradcam import GradCAM, gradcam_map
from reportgen.analyses.cam.head import classifier_head, two_classes
from reportgen.errors import UserError, one_line

SOURCE = Path(__file__).resolve().parents[1] / "reportgen"


def _sources() -> dict[str, str]:
    return {str(p.relative_to(SOURCE)): p.read_text() for p in SOURCE.rglob("*.py")}


# --- 1. the data-set pass computes its CAMs with the CAM package ----------------------------------------


def binary_model() -> keras.Model:
    keras.utils.set_random_seed(5)
    model = keras.Sequential(
        [
            keras.Input((12, 12, 1)),
            keras.layers.Conv2D(4, 3, activation="relu", padding="same", name="conv1"),
            keras.layers.Conv2D(6, 3, activation="relu", padding="same", name="conv2"),
            keras.layers.GlobalAveragePooling2D(name="gap"),
            keras.layers.Dense(1, activation="sigmoid", name="is_one"),
        ],
        name="binary",
    )
    model.get_layer("is_one").bias.assign([0.02])
    return model


def test_gradcam_formula_is_one_function_on_arrays_and_tensors():
    rng = np.random.default_rng(0)
    acts, grads = rng.normal(size=(3, 5, 4, 6)), rng.normal(size=(3, 5, 4, 6))
    truth = np.maximum(
        np.einsum("nhwk,nk->nhw", acts, grads.mean(axis=(1, 2))), 0.0
    )  # Selvaraju et al., by hand
    np.testing.assert_allclose(gradcam_map(acts, grads), truth, atol=1e-12)
    on_tensors = keras.ops.convert_to_numpy(
        gradcam_map(
            keras.ops.convert_to_tensor(acts.astype("float32")),
            keras.ops.convert_to_tensor(grads.astype("float32")),
            keras.ops,
        )
    )
    np.testing.assert_allclose(on_tensors, truth, atol=1e-5)
    assert cam.gradcam_map is gradcam_map  # exposed by the package
    # GradCAM's maps are that function's (its ReLU then its normalisation)
    from reportgen.analyses.cam.base import Pass

    p = Pass(x=None, y=np.zeros((3, 2)), acts=acts, grads=[grads, -grads])
    maps = GradCAM.__new__(GradCAM).maps(p)
    np.testing.assert_array_equal(maps[0], gradcam_map(acts, grads))
    np.testing.assert_array_equal(maps[1], gradcam_map(acts, -grads))


def test_two_classes_is_one_reading_for_numpy_tensors_and_the_probabilities():
    z = np.array([[-2.0], [0.0], [1.5]])
    np.testing.assert_array_equal(two_classes(z, logit=True), np.c_[-z, z])
    np.testing.assert_array_equal(two_classes(z, logit=False), np.c_[1 - z, z])
    t = keras.ops.convert_to_numpy(
        two_classes(keras.ops.convert_to_tensor(z.astype("float32")), True, keras.ops)
    )
    np.testing.assert_allclose(t, np.c_[-z, z])
    head = classifier_head(binary_model())
    assert head.is_binary and head.score == "logit"
    p = 1 / (1 + np.exp(-z))
    # the model's probabilities come out the same from the raw logit and from its two-class scores
    np.testing.assert_allclose(activate(head, z), np.c_[1 - p, p])
    np.testing.assert_allclose(activate(head, head.class_scores(z)), np.c_[1 - p, p])


def test_dataset_pass_cams_of_one_sigmoid_unit_equal_the_cam_package():
    """Per image, the data-set pass explains its label (else its prediction) exactly as cam.explain does."""
    model = binary_model()
    head = classifier_head(model)
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, (6, 12, 12, 1)).astype("float32")
    labels = np.array([0, 1, -1, 1, 0, -1])
    y, _stats, maps, _embedding = D.DatasetPass(model, head, "conv2")(x, labels)
    p = model.predict(x, verbose=0)[:, 0].astype(np.float64)  # independent truth for the outputs
    np.testing.assert_allclose(activate(head, y), np.c_[1 - p, p], atol=1e-5)
    target = np.where(labels >= 0, labels, (p > 0.5).astype(int))
    expected = cam.explain(model, "conv2", x, classes=target).heatmaps[:, 0]
    np.testing.assert_allclose(normalise(maps)[0], expected, atol=1e-5)
    assert (normalise(maps)[1] > 0).all()  # real maps, not all-zero ones agreeing by accident


def test_dataset_module_keeps_no_cam_formula_or_binary_handling_of_its_own():
    text = (SOURCE / "analyses" / "dataset.py").read_text()
    # Stacking per-batch results (np.concatenate of the kept indices) is bookkeeping; building two-class
    # scores from one sigmoid unit (ops.concatenate of -z and z) would be a fork of Head.class_scores.
    for forked in ("einsum", "ops.relu", "ops.concatenate", "1.0 - y", "is_binary"):
        assert forked not in text, forked


# --- 2. one batch-size rule ----------------------------------------------------------------------------


def test_one_batch_size_rule_with_the_budget_as_a_parameter():
    assert graph.images_within(100, 1000) == 10
    assert graph.images_within(1, 10**9) == 64 and graph.images_within(1, 10**9, most=8) == 8
    assert graph.images_within(10**9, 10) == 1
    model = keras.applications.VGG16(weights=None)
    sizes = graph.map_elements(model)
    # forward only: the largest map, ~4 alive, float32; with a backward pass: every map kept, ~3 copies
    assert (
        A.batch_size(model)
        == graph.images_per_batch(model, A.BATCH_BYTES)
        == max(1, min(64, A.BATCH_BYTES // (max(sizes) * 4 * 4)))
    )
    assert (
        D.batch_size(model)
        == graph.images_per_batch(model, D.BATCH_BYTES, backward=True)
        == max(1, min(64, D.BATCH_BYTES // (sum(sizes) * 3 * 4)))
    )
    from reportgen.analyses.patterns.ascent import CPU_CHUNK_PIXELS, chunk_size

    # the pattern ascent's chunks: the same rule, capped by the filters and the cache, then near-equal chunks
    assert graph.images_within(10 << 20, 1 << 30, most=min(64, CPU_CHUNK_PIXELS // (64 * 64))) == 43
    assert chunk_size(64, 10 << 20, 1 << 30, gpu=False, size=64) == 32  # at most 43 -> 2 chunks of 32
    assert chunk_size(64, 100 << 20, 1 << 30, gpu=False, size=64) == 10  # at most 10 (the budget) -> 7 chunks


def test_no_other_module_sizes_a_batch_from_a_byte_budget():
    for name, text in _sources().items():
        if name != "graph/probe.py":
            assert "BATCH_BYTES //" not in text and "map_elements(model)) *" not in text, name


# --- 3. one feeds adapter ------------------------------------------------------------------------------


def test_model_inputs_is_the_one_adapter():
    from reportgen.graph.inputs import feeds_for, model_inputs

    x = keras.ops.zeros((2, 8, 8, 3))
    assert model_inputs(None, x) is x
    one = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(2, 3)])
    assert model_inputs(feeds_for(one), x) is x
    img, meta = keras.Input((8, 8, 3), name="img"), keras.Input((4,), name="meta")
    two = keras.Model(
        [img, meta],
        keras.layers.Dense(2)(keras.layers.Concatenate()([keras.layers.GlobalAveragePooling2D()(img), meta])),
    )
    out = model_inputs(feeds_for(two), x)
    assert isinstance(out, list) and out[0] is x and tuple(out[1].shape) == (2, 4)
    for name, text in _sources().items():
        if name != "graph/inputs.py":
            assert "feeds.single" not in text and "feeds.batch(" not in text, name


# --- 4. one stage grouping -----------------------------------------------------------------------------


def se_head_model() -> keras.Model:
    """Two resolutions, an EfficientNet-style squeeze (a FLAT pooled vector) in each block, a dense head."""
    inp = keras.Input((16, 16, 3), name="image")
    x = keras.layers.Conv2D(8, 3, padding="same", name="s1_conv")(inp)
    s = keras.layers.GlobalAveragePooling2D(name="s1_squeeze")(x)  # flat: (None, 8)
    s = keras.layers.Reshape((1, 1, 8), name="s1_reshape")(s)
    s = keras.layers.Conv2D(8, 1, activation="sigmoid", name="s1_expand")(s)  # one pixel
    x = keras.layers.Multiply(name="s1_excite")([x, s])
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same", name="s2_conv")(x)
    s = keras.layers.GlobalAveragePooling2D(name="s2_squeeze")(x)
    s = keras.layers.Reshape((1, 1, 16), name="s2_reshape")(s)
    s = keras.layers.Conv2D(16, 1, activation="sigmoid", name="s2_expand")(s)
    x = keras.layers.Multiply(name="s2_excite")([x, s])
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dense(10, name="fc")(x)
    return keras.Model(inp, keras.layers.Dense(3, activation="softmax", name="out")(x))


def test_one_stage_grouping_for_starts_layer_table_and_kernel_layers():
    from reportgen.analyses.layer_table import layer_rows, stage_summary
    from reportgen.sections.layers import stage_summary as section_summary

    model = se_head_model()
    runs = [[r.path for r in run] for run in graph.stages(graph.walk(model))]
    assert runs == [
        ["s1_conv", "s1_squeeze", "s1_reshape", "s1_expand", "s1_excite"],
        ["s2_conv", "s2_squeeze", "s2_reshape", "s2_expand", "s2_excite"],
        ["pool", "fc", "out"],  # the dense head after the last map is a stage of its own
    ]
    assert [r.path for r in graph.stage_starts(graph.walk(model))] == ["s1_conv", "s2_conv", "pool"]
    assert [r.path for r in graph.stage_starts(graph.conv_layers(model))] == ["s1_conv", "s2_conv"]
    assert [[r.path for r in run] for run in graph.stages(graph.kernel_layers(model))] == [
        ["s1_conv", "s1_expand"],
        ["s2_conv", "s2_expand"],
        ["fc", "out"],
    ]
    rows = layer_rows(model)
    summary = stage_summary(rows)
    assert section_summary(rows) == summary
    assert [(s["first"], s["last"], s["layers"], s["size"]) for s in summary] == [
        ("s1_conv", "s1_excite", 5, (16, 16)),
        ("s2_conv", "s2_excite", 5, (8, 8)),
        ("pool", "out", 3, None),
    ]
    by_path = {r["name"]: r["params"] for r in rows}
    assert summary[2]["params"] == by_path["fc"] + by_path["out"] and summary[2]["channels"] == 3
    assert sum(s["params"] for s in summary) == sum(r["params"] for r in rows if r["depth"] == 0)


def test_model_stages_trace_open_sizes():
    model = keras.applications.MobileNetV3Small(weights=None, input_shape=(None, None, 3), include_top=True)
    refs = graph.weighted_layers(model)
    assert len(graph.stages(refs)) == 1  # every map is None x None: one run
    runs = graph.model_stages(model, refs)
    assert len(runs) == 5 and [r.path for r in runs[0]][0] == "conv"
    assert [run[0].path for run in runs] == [r.path for r in graph.model_stage_starts(model, refs)]


# --- 5. one one-line error formatter -------------------------------------------------------------------


def test_one_line_plain_and_typed():
    assert one_line(ValueError("bad  value\nsecond line")) == "bad value"
    assert one_line(ValueError("bad value\nsecond line"), typed=True) == "ValueError: bad value"
    assert one_line(KeyError()) == "KeyError" and one_line(KeyError(), typed=True) == "KeyError"
    long = "x" * 500
    assert one_line(RuntimeError(long)) == "x" * 299 + "…"
    assert one_line(RuntimeError(long), typed=True) == "RuntimeError: " + "x" * 299 + "…"
    assert one_line(RuntimeError(long), 80) == "x" * 79 + "…"
    user = UserError("--images: " + "y" * 400)
    assert one_line(user, typed=True) == str(user)  # written for the user: whole, no type
    assert one_line(user) == str(user)[:299] + "…"


def test_only_errors_defines_one_line_and_batch_uses_it():
    import reportgen.batch.rows as rows

    assert not hasattr(rows, "one_line")
    defined = [name for name, text in _sources().items() if "def one_line(" in text]
    assert defined == ["errors.py"]


# --- 6. the configured dead_kernel_norm reaches the duplicate check ---------------------------------------


def dead_and_duplicate() -> keras.Model:
    """conv: 8 filters of norm 1, except filter 3 = 5e-3 x filter 1 (a near-duplicate pair, by direction).

    Its norm is 5e-3 of the layer's median: alive at the default threshold (1e-3), dead at 1e-2.
    """
    keras.utils.set_random_seed(7)
    inp = keras.Input((10, 10, 3))
    x = keras.layers.Conv2D(16, 3, activation="relu", padding="same", name="stem")(inp)
    x = keras.layers.Conv2D(8, 3, activation="relu", padding="same", name="conv")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    model = keras.Model(inp, keras.layers.Dense(2, activation="softmax", name="out")(x), name="dead_pair")
    conv = model.get_layer("conv")
    rng = np.random.default_rng(0)
    w = rng.normal(size=(8, 3 * 3 * 16))
    w /= np.linalg.norm(w, axis=1, keepdims=True)
    w[3] = 5e-3 * w[1]
    conv.kernel.assign(w.T.reshape(3, 3, 16, 8).astype("float32"))
    return model


def test_weight_analysis_takes_the_dead_threshold_with_the_config_default():
    from reportgen.analyses import findings as F
    from reportgen.analyses.weights import describe_layer, weight_analysis
    from reportgen.config import Thresholds

    for fn in (weight_analysis, describe_layer):
        assert inspect.signature(fn).parameters["dead_kernel_norm"].default == Thresholds().dead_kernel_norm
    model = dead_and_duplicate()
    for threshold, dead in ((Thresholds().dead_kernel_norm, False), (1e-2, True)):
        t = Thresholds(dead_kernel_norm=threshold)
        lw = weight_analysis(model, 0, dead_kernel_norm=threshold)["conv"]
        found = {(f["kind"], f["filter"]) for f in F.weight_findings({"conv": lw}, t)}
        assert (("dead_filter", 3) in found) is dead
        assert (("duplicate_filters", 3) in found) is not dead
        assert (lw.duplicate_of[3] == 1) is not dead  # left out of the comparison when dead


def _conv_findings(path: Path) -> set[tuple[str, int]]:
    data = json.loads(path.read_text())
    assert data["section_errors"] == []
    return {(f["kind"], f["filter"]) for f in data["findings"] if f["layer"] == "conv"}


def test_a_config_file_threshold_moves_a_filter_from_the_duplicates_to_the_dead(tmp_path, cli):
    saved = tmp_path / "dead_pair.keras"
    dead_and_duplicate().save(saved)
    res = cli(
        saved, "--sections", "weights,findings", "--format", "json", "--out", tmp_path / "default", "--quiet"
    )
    assert res.status in (0, 1), res.stderr
    found = _conv_findings(tmp_path / "default" / "dead_pair" / "report.json")
    assert ("duplicate_filters", 3) in found and ("dead_filter", 3) not in found
    toml = tmp_path / "strict.toml"
    toml.write_text("dead_kernel_norm = 1e-2\n")
    res = cli(
        saved,
        "--sections",
        "weights,findings",
        "--format",
        "json",
        "--out",
        tmp_path / "strict",
        "--config",
        toml,
        "--quiet",
    )
    assert res.status in (0, 1), res.stderr
    found = _conv_findings(tmp_path / "strict" / "dead_pair" / "report.json")
    assert ("dead_filter", 3) in found
    assert not any(kind == "duplicate_filters" for kind, _f in found)  # the dead filter is no duplicate
