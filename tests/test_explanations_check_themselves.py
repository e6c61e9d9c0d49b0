"""Explanations that check themselves: maps in the image's own axes, verdicts that say when a check cannot
tell.

Truths independent of the code under test:
- Grad-CAM by ``tf.GradientTape`` at the right conv layer of a trained detector whose last conv output is
  permuted (H <-> W) before its dense head, compared in image coordinates with the spot's known place;
- deletion and insertion curves recomputed in NumPy, one ``model.predict`` per perturbed image, under the
  replacement the report chose (the image's mean colour, where a blur keeps the class);
- the verdict logic on hand-made curves and hand-made cascades;
- a class whose map is zero: a constant map is never a pass.
"""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from reportgen import graph
from reportgen.analyses import cam
from reportgen.analyses import sanity as S
from reportgen.analyses.cam import faithfulness as F
from reportgen.analyses.findings.faithfulness import check_faithfulness
from reportgen.analyses.findings.sanity import check_sanity
from reportgen.errors import UserError

SIZE = 24


def spots(
    n: int, rng: np.random.Generator, where: tuple[int, int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Noise in [0, 0.4]; half the images (label 1) carry a bright 4x4 square at a random (or given) place."""
    x = rng.uniform(0.0, 0.4, (n, SIZE, SIZE, 1)).astype("float32")
    y = np.ones(n, int) if where is not None else rng.integers(0, 2, n)
    for i in np.flatnonzero(y):
        r, c = where if where is not None else rng.integers(1, SIZE - 5, 2)
        x[i, r : r + 4, c : c + 4, 0] = 1.0
    return x, y


@pytest.fixture(scope="module")
def permuted() -> keras.Model:
    """A spot detector whose last conv output is permuted (H <-> W) before it is flattened into the head."""
    keras.utils.set_random_seed(1)
    inp = keras.Input((SIZE, SIZE, 1))
    x = keras.layers.Conv2D(8, 3, activation="relu", padding="same", name="conv_a")(inp)
    x = keras.layers.MaxPooling2D(2, name="pool")(x)
    x = keras.layers.Conv2D(8, 3, activation="relu", padding="same", name="conv_b")(x)
    x = keras.layers.Permute((2, 1, 3), name="swap_hw")(x)
    x = keras.layers.Flatten(name="flat")(x)
    out = keras.layers.Dense(2, activation="softmax", name="head")(x)
    model = keras.Model(inp, out, name="permuted_spots")
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    xs, ys = spots(3000, np.random.default_rng(0))
    model.fit(xs, ys, epochs=5, batch_size=64, verbose=0)
    xt, yt = spots(300, np.random.default_rng(1))
    assert model.evaluate(xt, yt, verbose=0)[1] > 0.9  # it learned the spot
    return model


def gradcam_by_tape(model: keras.Model, x: np.ndarray, cls: int) -> np.ndarray:
    """Grad-CAM of the class logit at ``conv_b``, written out with a GradientTape (TensorFlow backend)."""
    import tensorflow as tf

    sub = keras.Model(model.input, model.get_layer("conv_b").output)
    dense = model.get_layer("head")
    with tf.GradientTape() as tape:
        a = sub(x[None])
        tape.watch(a)
        z = tf.reshape(tf.transpose(a, (0, 2, 1, 3)), (1, -1))  # Permute((2, 1, 3)), Flatten
        logit = (z @ dense.kernel + dense.bias)[0, cls]
    g = tape.gradient(logit, a)[0].numpy()
    m = np.maximum((a[0].numpy() * g.mean(axis=(0, 1))).sum(axis=-1), 0)
    return m / m.max()


def test_the_default_cam_layer_is_the_conv_before_the_permute(permuted):
    status = graph.axes.statuses(permuted)
    assert status["conv_b"] == "aligned" and status["swap_hw"] == "broken" and status["flat"] == "broken"
    assert graph.cam_layer(permuted).path == "conv_b"
    assert "swap_hw" not in [r.path for r in graph.default_feature_layers(permuted)]


def test_the_report_map_is_grad_cam_by_tape_in_image_coordinates(permuted, tmp_path, cli):
    """The spot is top right: the report's map equals Grad-CAM by hand at conv_b, and peaks top right."""
    from PIL import Image

    x, _ = spots(1, np.random.default_rng(5), where=(3, 17))
    Image.fromarray((x[0, ..., 0] * 255).round().astype(np.uint8), "L").save(tmp_path / "spot.png")
    path = tmp_path / "permuted.keras"
    permuted.save(path)
    out = tmp_path / "out"
    r = cli(
        path,
        "--sections",
        "gradcam",
        "--format",
        "json",
        "--out",
        out,
        "--quiet",
        "--preprocess",
        "unit",
        "--image",
        tmp_path / "spot.png",
        "--top-k",
        "1",
        "--faithfulness-steps",
        "0",
    )
    assert r.status == 0, r.stderr
    data = json.loads((out / "permuted" / "report.json").read_text())
    entry = data["images"][0]["gradcam"][0]
    assert entry["layer"] == "conv_b" and entry["class_index"] == 1
    assert "'swap_hw' (Permute) moves the image's axes" in data["gradcam"]["axes_note"]  # the choice, said
    x_in = np.asarray(Image.open(tmp_path / "spot.png"), dtype=np.float32)[..., None] / 255.0
    want = gradcam_by_tape(permuted, x_in, 1)
    got = np.asarray(entry["heatmap"])
    np.testing.assert_allclose(got, want, atol=2e-4)
    row, col = np.unravel_index(np.argmax(got), got.shape)
    assert row < got.shape[0] // 2 <= col  # top right, as the spot: not bottom left (the transpose)


def test_a_gradcam_layer_off_the_image_axes_is_refused_naming_the_nearest_valid_one(permuted, tmp_path, cli):
    path = tmp_path / "permuted.keras"
    permuted.save(path)
    for option in ("--gradcam-layer",):
        r = cli(
            path,
            option,
            "swap_hw",
            "--sections",
            "gradcam",
            "--format",
            "json",
            "--out",
            tmp_path / "o",
            "--quiet",
        )
        assert r.status == 2, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
        assert "'swap_hw' is not a map of the image" in r.stderr and "--gradcam-layer conv_b" in r.stderr
        assert not (tmp_path / "o").exists()


class _Transpose(keras.layers.Layer):
    def call(self, x):
        return keras.ops.transpose(x, (0, 2, 1, 3))


class _Scale(keras.layers.Layer):
    def call(self, x):
        return x * 2.0


def test_a_custom_layer_is_judged_by_the_probe():
    """The graph cannot read a custom layer; the probe moves a bright patch and sees where the response
    goes."""
    keras.utils.set_random_seed(0)
    inp = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="c1")(inp)
    x = _Scale(name="scale")(x)
    x = _Transpose(name="custom_t")(x)
    x = keras.layers.Conv2D(4, 3, padding="same", name="c2")(x)
    out = keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(x))
    model = keras.Model(inp, out)
    status = graph.axes.statuses(model)
    assert status["c1"] == "aligned" and status["scale"] == status["custom_t"] == status["c2"] == "unknown"
    refs = [r for r in graph.walk(model) if r.path in ("c1", "scale", "custom_t", "c2")]
    assert graph.axes.probe(model, refs) == {"c1": True, "scale": True, "custom_t": False, "c2": False}
    assert graph.cam_layer(model).path == "scale"
    with pytest.raises(UserError, match="nearest layer before it that is: 'scale'"):
        cam.resolve_layer(model, "c2")


def test_the_probe_verdict_on_hand_made_responses():
    aligned = [(0.25, 0.25), (0.25, 0.75), (0.75, 0.25)]
    transposed = [(0.25, 0.25), (0.75, 0.25), (0.25, 0.75)]
    flipped = [(0.75, 0.25), (0.75, 0.75), (0.25, 0.25)]
    assert graph.axes.verdict_from_centroids(aligned) is True
    assert graph.axes.verdict_from_centroids(transposed) is False
    assert graph.axes.verdict_from_centroids(flipped) is False
    assert graph.axes.verdict_from_centroids([(0.5, 0.5)] * 3) is None  # a response that does not move
    assert graph.axes.verdict_from_centroids([None, (0.2, 0.2), (0.3, 0.3)]) is None


# --- faithfulness verdicts ----------------------------------------------------------------------------


def _curves(deletion, insertion) -> F.Curve:
    return F.Curve(np.asarray(deletion, float), np.asarray(insertion, float))


def _image(cam_curve, random_curve, edge_curve, moved=0.5, constant=False) -> F.ImageCurves:
    return F.ImageCurves(
        cams={"gradcam": [cam_curve]},
        random=[random_curve],
        edge=[edge_curve],
        replacement="gaussian_blur",
        moved={"gaussian_blur": [moved]},
        constant={"gradcam": [constant]},
    )


FAST_DROP = _curves([1, 0.2, 0.1, 0.1, 0.1], [0.1, 0.9, 1, 1, 1])
SLOW_DROP = _curves([1, 0.9, 0.7, 0.4, 0.1], [0.1, 0.3, 0.6, 0.8, 1])


def test_the_verdict_on_hand_made_curves():
    # The map deletes and inserts the class faster than both baselines: faithful, with its lead.
    v = F.entry_verdict(_image(FAST_DROP, SLOW_DROP, SLOW_DROP), "gradcam", 0, margin=0.05)
    lead = (FAST_DROP.insertion_auc - FAST_DROP.deletion_auc) - (
        SLOW_DROP.insertion_auc - SLOW_DROP.deletion_auc
    )
    assert v.verdict == "faithful" and v.lead == pytest.approx(lead) and f"{lead:+.2f}" in v.why
    # No better than the random map: not better than random.
    v = F.entry_verdict(_image(SLOW_DROP, FAST_DROP, SLOW_DROP), "gradcam", 0, margin=0.05)
    assert v.verdict == "not better than random" and v.baseline == "random" and v.lead < 0
    # Every AUC within the band (the ViT whose blurred image still scores 0.99999): uninformative.
    flat = _curves([1, 1, 1, 1, 1], [1, 1, 1, 0.995, 1])
    v = F.entry_verdict(_image(flat, flat, flat), "gradcam", 0, margin=0.05)
    assert v.verdict == "uninformative" and "within" in v.why
    # The fully replaced image did not move the score by the margin: uninformative, naming what was tried.
    ic = _image(FAST_DROP, SLOW_DROP, SLOW_DROP, moved=0.007)
    ic.moved = {"gaussian_blur": [0.007], "mean_colour": [0.01], "uniform_noise": [0.02]}
    v = F.entry_verdict(ic, "gradcam", 0, margin=0.05)
    assert v.verdict == "uninformative" and "gaussian blur 0.007" in v.why and "uniform noise 0.020" in v.why
    # A constant map: uninformative, never a pixel order drawn from the tie-break.
    v = F.entry_verdict(_image(FAST_DROP, SLOW_DROP, SLOW_DROP, constant=True), "gradcam", 0, margin=0.05)
    assert v.verdict == "uninformative" and "constant" in v.why


def test_method_verdict_rests_only_on_the_images_that_could_tell():
    """Two images: one that could tell (the map is worse than random there), one that could not (its score
    never moved, its curves faithful-looking). The verdict is the informative image's alone."""
    could = _image(SLOW_DROP, FAST_DROP, SLOW_DROP)
    could_not = _image(FAST_DROP, SLOW_DROP, SLOW_DROP, moved=0.01)
    result = F.Faithfulness(images=[could, could_not], methods=["gradcam"], layer="conv")
    verdict, judged = F.method_verdict(result, "gradcam", margin=0.05)
    assert (verdict.verdict, judged) == ("not better than random", 1) and "1 of 2 image(s)" in verdict.why
    assert [f["kind"] for f in check_faithfulness(result, 0.05)] == ["cam_unfaithful"]
    # Neither could tell: an info note, not a warning.
    result.images = [could_not, _image(SLOW_DROP, FAST_DROP, SLOW_DROP, moved=0.0)]
    verdict, judged = F.method_verdict(result, "gradcam", margin=0.05)
    assert (verdict.verdict, judged) == ("uninformative", 0)
    found = check_faithfulness(result, 0.05)
    assert [(f["kind"], f["severity"]) for f in found] == [("cam_faithfulness_uninformative", "info")]
    assert "gaussian blur" in found[0]["message"] and "not a pass" in found[0]["message"]


def halves(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Noise with the left (label 0) or the right (label 1) half brightened: a class a blur keeps."""
    x = rng.uniform(0.0, 0.3, (n, SIZE, SIZE, 1)).astype("float32")
    y = rng.integers(0, 2, n)
    for i in range(n):
        half = slice(SIZE // 2, None) if y[i] else slice(None, SIZE // 2)
        x[i, :, half, 0] += 0.5
    return x, y


@pytest.fixture(scope="module")
def halves_model() -> keras.Model:
    keras.utils.set_random_seed(2)
    model = keras.Sequential(
        [
            keras.Input((SIZE, SIZE, 1)),
            keras.layers.Conv2D(6, 3, activation="relu", padding="same", name="conv"),
            keras.layers.AveragePooling2D(4, name="pool"),
            keras.layers.Flatten(name="flat"),
            keras.layers.Dense(2, activation="softmax", name="head"),
        ],
        name="halves",
    )
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    xs, ys = halves(1500, np.random.default_rng(0))
    model.fit(xs, ys, epochs=5, batch_size=64, verbose=0)
    assert model.evaluate(*halves(200, np.random.default_rng(1)), verbose=0)[1] > 0.95
    return model


def test_a_blur_that_keeps_the_class_gives_way_to_the_mean_colour(halves_model):
    """A blur keeps which half is bright, so the score does not move: the mean colour is used instead, and
    its curves equal the protocol recomputed in NumPy, one predict per perturbed image."""
    x, _ = halves(2, np.random.default_rng(9))
    head = cam.classifier_head(halves_model)
    res = cam.explain(halves_model, "conv", x, top_k=1, head=head)
    got = F.measure(
        halves_model, head, x, {"gradcam": res.heatmaps}, res.target, res.outputs, seed=0, steps=5
    )
    for i, ic in enumerate(got.images):
        assert abs(ic.moved["gaussian_blur"][0]) < F.INFORMATIVE <= abs(ic.moved["mean_colour"][0])
        assert ic.replacement == "mean_colour" and "uniform_noise" not in ic.moved
        cls = int(res.target.classes[i, 0])
        base = np.broadcast_to(x[i].mean(axis=(0, 1), keepdims=True), x[i].shape)
        tiebreak = np.random.default_rng([0, i]).permutation(SIZE * SIZE).reshape(SIZE, SIZE)
        order = F.pixel_order(res.heatmaps[i, 0], tiebreak)
        want_del, want_ins = [], []
        for step in range(6):
            mask = np.zeros(SIZE * SIZE, bool)
            mask[order[: int(round(step * SIZE * SIZE / 5))]] = True
            mask = mask.reshape(SIZE, SIZE, 1)
            for want, img in ((want_del, np.where(mask, base, x[i])), (want_ins, np.where(mask, x[i], base))):
                want.append(float(halves_model.predict_on_batch(img[None].astype("float32"))[0, cls]))
        curve = ic.cams["gradcam"][0]
        np.testing.assert_allclose(curve.deletion, want_del, atol=1e-5)
        np.testing.assert_allclose(curve.insertion, want_ins, atol=1e-5)
    assert got.protocol()["replacement"] == "mean_colour"
    assert "softmax probability" in F.score_name(head)


def test_a_model_no_replacement_moves_is_uninformative_in_the_report(tmp_path, cli):
    """A saturated classifier (p = 1 for every image, the blurred one too): nothing can be told, so the
    report says 'uninformative' with what was tried, and gives no cam_unfaithful warning."""
    keras.utils.set_random_seed(3)
    model = keras.Sequential(
        [
            keras.Input((SIZE, SIZE, 3)),
            keras.layers.Conv2D(4, 3, activation="relu", padding="same", name="conv"),
            keras.layers.GlobalAveragePooling2D(name="gap"),
            keras.layers.Dense(2, activation="softmax", name="head"),
        ],
        name="saturated",
    )
    kernel, _bias = model.get_layer("head").get_weights()
    model.get_layer("head").set_weights([kernel * 1e-3, np.array([40.0, -40.0], "float32")])
    path = tmp_path / "saturated.keras"
    model.save(path)
    out = tmp_path / "out"
    r = cli(
        path,
        "--sections",
        "gradcam,findings",
        "--format",
        "json",
        "--out",
        out,
        "--quiet",
        "--faithfulness-steps",
        "5",
        "--top-k",
        "1",
    )
    assert r.status == 0, r.stderr
    data = json.loads((out / "saturated" / "report.json").read_text())
    faith = data["images"][0]["gradcam"][0]["faithfulness"]
    assert faith["verdict"] == "uninformative" and faith["replacement"] == "gaussian_blur"
    assert (
        "gaussian blur" in faith["why"] and "mean colour" in faith["why"] and "uniform noise" in faith["why"]
    )
    assert data["gradcam"]["faithfulness"]["verdicts"]["gradcam"]["verdict"] == "uninformative"
    assert "softmax probability" in data["gradcam"]["faithfulness"]["score"]
    kinds = [f["kind"] for f in data["findings"]]
    assert "cam_unfaithful" not in kinds and "cam_faithfulness_uninformative" in kinds


# --- a class whose map is zero ------------------------------------------------------------------------


def zero_map_model() -> keras.Model:
    """Class 1's logit is a negative sum of ReLU features: its Grad-CAM is zero everywhere."""
    keras.utils.set_random_seed(4)
    model = keras.Sequential(
        [
            keras.Input((SIZE, SIZE, 1)),
            keras.layers.Conv2D(4, 3, activation="relu", padding="same", name="conv"),
            keras.layers.GlobalAveragePooling2D(name="gap"),
            keras.layers.Dense(2, activation="softmax", name="head"),
        ],
        name="zero_map",
    )
    conv = model.get_layer("conv")
    k, _b = conv.get_weights()
    conv.set_weights([np.abs(k), np.full(4, 0.1, "float32")])  # positive features on positive images
    model.get_layer("head").set_weights(
        [np.stack([np.ones(4), -np.ones(4)], axis=1).astype("float32"), np.zeros(2, "float32")]
    )
    return model


def test_a_zero_map_is_no_evidence_and_never_a_pass():
    model = zero_map_model()
    x, _ = spots(2, np.random.default_rng(3), where=(5, 5))
    head = cam.classifier_head(model)
    res = cam.explain(model, "conv", x, np.ones(2, int), head=head)
    assert np.all(res.peaks == 0) and res.negligible.all()  # drawn as "no evidence", not stretched
    # The sanity cascade on that class: every rank correlation undefined, the verdict uninformative.
    result = S.cascade(model, "conv", x, max_steps=2, head=head, target=res.target)
    verdict, why = result.verdict(0.5)
    assert verdict == "uninformative" and "constant" in why
    assert np.isnan(result.correlations).all() and result.statistic is None
    found = check_sanity(result, 0.5)
    assert [(f["kind"], f["severity"]) for f in found] == [("gradcam_sanity_uninformative", "info")]
    # ... and its faithfulness: constant maps, an uninformative verdict.
    got = F.measure(model, head, x, {"gradcam": res.heatmaps}, res.target, res.outputs, seed=0, steps=5)
    assert all(F.entry_verdict(ic, "gradcam", 0, 0.05).verdict == "uninformative" for ic in got.images)


def test_the_sanity_verdict_on_hand_made_cascades():
    rng = np.random.default_rng(0)
    original = rng.random((2, 4, 4))

    def result(corrs, orig=original):
        r = S.SanityResult(layer="conv", class_indices=np.array([1, 1]), original=orig)
        r.steps = [f"s{i}" for i in range(len(corrs))]
        r.step_layers = [["x"]] * len(corrs)
        r.correlations = np.asarray(corrs, float)
        return r

    assert result([[0.9, 0.8], [0.2, 0.1]]).verdict(0.5)[0] == "passed"
    assert result([[0.9, 0.8], [0.7, 0.6]]).verdict(0.5)[0] == "failed"
    assert result([[np.nan, np.nan], [np.nan, np.nan]]).verdict(0.5)[0] == "uninformative"
    # Undefined steps do not count: the defined one decides, and the JSON says which were undefined.
    r = result([[np.nan, np.nan], [0.1, 0.3]])
    assert r.verdict(0.5)[0] == "passed" and "1 of 2 steps undefined" in r.verdict(0.5)[1]
    assert r.as_json(0.5)["steps"][0]["mean_rank_correlation"] is None
    assert result([[0.1, 0.1]], orig=np.zeros((2, 4, 4))).verdict(0.5)[0] == "uninformative"


def test_negligible_is_relative_to_the_layers_contribution():
    peaks = np.array([[1.4e-7, 0.3, 0.0]])
    scales = np.array([[1.0, 1.0, 1.0]])
    assert cam.negligible(peaks, scales).tolist() == [[True, False, True]]
    assert cam.negligible(np.array([[1e-9]]), np.array([[1e-8]])).tolist() == [
        [False]
    ]  # small, yet all there is


def test_the_data_set_mean_cam_follows_the_same_rule(permuted, tmp_path, cli):
    """The data-set pass's mean CAM per class is taken at conv_b too, and a --gradcam-layer off the image's
    axes stops it with one line."""
    from PIL import Image

    path = tmp_path / "permuted.keras"
    permuted.save(path)
    x, y = spots(8, np.random.default_rng(12))
    for i, (img, label) in enumerate(zip(x, y)):
        folder = tmp_path / "val" / ("spot" if label else "plain")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray((img[..., 0] * 255).round().astype(np.uint8), "L").save(folder / f"{i}.png")
    (tmp_path / "names.txt").write_text("plain\nspot\n")
    common = [
        "--images",
        tmp_path / "val",
        "--preprocess",
        "unit",
        "--class-names",
        tmp_path / "names.txt",
        "--sections",
        "dataset",
        "--format",
        "json",
        "--quiet",
    ]
    r = cli(path, *common, "--out", tmp_path / "out")
    assert r.status == 0, r.stderr
    data = json.loads((tmp_path / "out" / "permuted" / "report.json").read_text())
    assert data["dataset"]["cam_layer"] == "conv_b"
    r = cli(path, *common, "--out", tmp_path / "bad", "--gradcam-layer", "flat")
    assert r.status == 2 and len(r.stderr.strip().splitlines()) == 1 and "'flat'" in r.stderr
