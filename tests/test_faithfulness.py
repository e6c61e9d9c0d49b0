"""CAM faithfulness (reportgen.analyses.cam.faithfulness): deletion and insertion against baselines.

Truths independent of the code under test: a model whose output is a known function of a known pixel
region (the curves follow from a NumPy computation of the documented protocol); a detector trained to
find a bright spot (deleting the spot first must destroy its score faster than deleting at random);
one `model.predict` per perturbed image (the batched curves must equal it); an inverted map (least
important pixels first) must be flagged as unfaithful.
"""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from reportgen.analyses import cam
from reportgen.analyses.cam import faithfulness as F
from reportgen.analyses.cam.head import two_classes
from reportgen.analyses.findings.faithfulness import check_faithfulness

SIZE = 32


def spot_images(n: int, rng: np.random.Generator, spot: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Noise in [0, 0.5] with (label 1) or without (label 0) a bright disc of radius 3 at a random place."""
    x = rng.uniform(0.0, 0.5, (n, SIZE, SIZE, 1)).astype("float32")
    y = rng.integers(0, 2, n) if spot is None else np.full(n, int(spot))
    yy, xx = np.mgrid[:SIZE, :SIZE]
    for i in np.flatnonzero(y):
        cy, cx = rng.integers(4, SIZE - 4, 2)
        x[i, (yy - cy) ** 2 + (xx - cx) ** 2 <= 9, 0] = 1.0
    return x, y


@pytest.fixture(scope="module")
def spot_detector() -> keras.Model:
    """A tiny CNN trained (seeded, ~3 s) to tell a bright spot from noise: the truth is where the spot is."""
    keras.utils.set_random_seed(0)
    x, y = spot_images(2000, np.random.default_rng(0))
    model = keras.Sequential(
        [
            keras.Input((SIZE, SIZE, 1)),
            keras.layers.Conv2D(8, 3, activation="relu", name="conv_a"),
            keras.layers.Conv2D(16, 3, activation="relu", name="conv_b"),
            keras.layers.GlobalMaxPooling2D(name="gmp"),
            keras.layers.Dense(2, activation="softmax", name="head"),
        ],
        name="spot_detector",
    )
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=4, batch_size=64, verbose=0)
    xt, yt = spot_images(400, np.random.default_rng(1))
    assert model.evaluate(xt, yt, verbose=0)[1] > 0.97  # it learned the spot
    return model


def protocol_curves(x: np.ndarray, order: np.ndarray, f, steps: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """The documented protocol in plain NumPy, one image at a time: ``steps`` steps of 1/steps of the pixels,
    deletion to a Gaussian-blurred copy (sigma 0.1 x the shorter side), insertion from it."""
    h, w = x.shape[:2]
    base = gaussian_filter(
        x.astype(np.float32), sigma=(max(1.0, 0.1 * min(h, w)),) * 2 + (0,), mode="reflect"
    )
    dele, ins = [], []
    for step in range(steps + 1):
        chosen = np.zeros(h * w, bool)
        chosen[order[: int(round(step * h * w / steps))]] = True
        chosen = chosen.reshape(h, w, 1)
        dele.append(f(np.where(chosen, base, x)))
        ins.append(f(np.where(chosen, x, base)))
    return np.array(dele), np.array(ins)


def trapezoid(y: np.ndarray) -> float:
    return float(np.trapezoid(y, np.linspace(0.0, 1.0, len(y))))


@pytest.mark.parametrize("steps", [20, 5])
def test_curves_of_a_model_with_a_known_region_equal_the_protocol_in_numpy(steps):
    """p = sigmoid(20 mean(x over R) - 14): the region-first curves are the NumPy protocol's, and deleting R
    first drops p far faster than the random baseline does."""
    h = w = 20
    region = np.zeros((h, w), bool)
    region[4:10, 6:12] = True  # 36 pixels: 9% of the image
    weights = (region / region.sum() * 20.0).reshape(-1, 1)
    model = keras.Sequential(
        [
            keras.Input((h, w, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(1, activation="sigmoid", name="out"),
        ]
    )
    model.get_layer("out").set_weights([weights.astype("float32"), np.array([-14.0], "float32")])
    x = np.random.default_rng(3).uniform(0.0, 0.3, (1, h, w, 1)).astype("float32")
    x[0, region] = 1.0
    # Region first, then the rest; no ties, so the order is this map's alone (no tie-break needed).
    heat = region + np.linspace(0.0, 1e-3, h * w).reshape(h, w)
    order = np.argsort(-heat.ravel(), kind="stable")

    def p(img: np.ndarray) -> float:
        return float(1.0 / (1.0 + np.exp(-(img.reshape(-1) @ weights.ravel() - 14.0))))

    want_del, want_ins = protocol_curves(x[0], order, p, steps)
    head = cam.classifier_head(model)
    target = cam.class_target(True, np.array([[1]]), [["region"]])
    outputs = two_classes(np.array([[p(x[0])]]), logit=False)
    got = F.measure(
        model, head, x, {"gradcam": heat[None, None].astype("float32")}, target, outputs, seed=0, steps=steps
    )
    # The image and its three replacements (the end points, and which replacement can tell), then the curves.
    assert got.protocol()["steps"] == steps and got.perturbed_images == 4 + 2 * (steps - 1) * 5
    assert got.images[0].replacement == "gaussian_blur" and abs(got.images[0].moved["gaussian_blur"][0]) > 0.1
    curve = got.images[0].cams["gradcam"][0]
    np.testing.assert_allclose(curve.deletion, want_del, atol=1e-5)
    np.testing.assert_allclose(curve.insertion, want_ins, atol=1e-5)
    assert curve.deletion_auc == pytest.approx(trapezoid(want_del), abs=1e-6)
    assert curve.insertion_auc == pytest.approx(trapezoid(want_ins), abs=1e-6)
    scores = got.images[0].scores("gradcam", 0)
    assert set(scores) == set(F.KEYS) and all(0.0 <= v <= 1.0 for v in scores.values())
    lead = 0.2 if steps == 20 else 0.1  # 5 coarse steps blur the region's 9% into a 20% step
    assert scores["deletion_auc"] < scores["random_deletion_auc"] - lead
    assert scores["insertion_auc"] > scores["random_insertion_auc"] + lead
    # The end points are the image and its blurred copy for every map.
    for c in (curve, got.images[0].random[0], got.images[0].edge[0]):
        assert c.deletion[0] == pytest.approx(p(x[0]), abs=1e-5) and c.insertion[-1] == pytest.approx(
            p(x[0]), abs=1e-5
        )


@pytest.fixture(scope="module")
def spot_faithfulness(spot_detector):
    """Every method's maps of 3 spot images, measured against the baselines."""
    x, _ = spot_images(3, np.random.default_rng(7), spot=True)
    head = cam.classifier_head(spot_detector)
    maps, first = {}, None
    for name in cam.METHODS:
        res = cam.explain(spot_detector, "conv_b", x, np.ones(3, int), method_name=name, head=head)
        maps[name], first = res.heatmaps, first or res
    return x, maps, first, F.measure(spot_detector, head, x, maps, first.target, first.outputs, seed=0)


def test_every_method_beats_the_random_map_on_the_spot_detector(spot_faithfulness):
    """Deleting the spot first destroys the score faster than random deletion, and inserting it first
    restores it faster, for every method; no method is flagged."""
    _x, _maps, _first, got = spot_faithfulness
    for name in cam.METHODS:
        gap = F.advantage(got, name)
        assert gap["cam"] > gap["random"] + 0.15, (name, gap)
        assert gap["cam"] > gap["edge"] + 0.15, (name, gap)
        for ic in got.images:
            s = ic.scores(name, 0)
            assert s["deletion_auc"] < s["random_deletion_auc"], (name, s)
            assert s["insertion_auc"] > s["random_insertion_auc"] + 0.05, (name, s)
    gc = [ic.scores("gradcam", 0) for ic in got.images]
    assert np.mean([s["random_deletion_auc"] - s["deletion_auc"] for s in gc]) > 0.1
    assert check_faithfulness(got, 0.05) == []


def test_an_inverted_map_is_flagged_as_unfaithful(spot_detector, spot_faithfulness):
    """Least important pixels first (1 - Grad-CAM): worse than random, so the finding fires."""
    x, maps, first, _got = spot_faithfulness
    inverted = F.measure(
        spot_detector,
        cam.classifier_head(spot_detector),
        x,
        {"gradcam": 1.0 - maps["gradcam"]},
        first.target,
        first.outputs,
        seed=0,
    )
    inverted.layer = "conv_b"
    found = check_faithfulness(inverted, 0.05)
    assert [f["kind"] for f in found] == ["cam_unfaithful"]
    assert found[0]["value"] < 0 and found[0]["layer"] == "conv_b"


def test_batched_curves_equal_one_predict_per_perturbed_image(spot_detector, monkeypatch):
    """Batches of 4 through the report's forward pass give the curves of one model.predict per image."""
    x, _ = spot_images(1, np.random.default_rng(11), spot=True)
    heat = np.random.default_rng(12).uniform(0, 1, (SIZE, SIZE)).astype("float32")  # full size: no upsampling
    order = np.argsort(-heat.ravel(), kind="stable")
    head = cam.classifier_head(spot_detector)
    res = cam.explain(spot_detector, "conv_b", x, [1], head=head)

    def p(img: np.ndarray) -> float:
        return float(np.asarray(spot_detector.predict_on_batch(img[None]))[0, 1])

    want_del, want_ins = protocol_curves(x[0], order, p)
    shapes = []
    real_inference = F.inference

    def recording(*args, **kwargs):
        run = real_inference(*args, **kwargs)
        return lambda batch: shapes.append(batch.shape) or run(batch)

    monkeypatch.setattr(F, "inference", recording)
    got = F.measure(spot_detector, head, x, {"gradcam": heat[None, None]}, res.target, res.outputs, batch=4)
    curve = got.images[0].cams["gradcam"][0]
    np.testing.assert_allclose(curve.deletion, want_del, atol=1e-5)
    np.testing.assert_allclose(curve.insertion, want_ins, atol=1e-5)
    # The image and its 3 replacements (one pass of 4), then 19 interior steps x 2 curves x (1 map + 3 random
    # + 1 edge), in batches of 4.
    assert got.perturbed_images == 4 + 19 * 2 * 5
    assert got.forward_passes == 1 + int(np.ceil((19 * 2 * 5) / 4)) == len(shapes)
    # One shape for every pass (the last one padded): the compiled inference is traced once.
    assert set(shapes) == {(4,) + x.shape[1:]}


def test_chunk_size_evens_the_passes_and_pads_less_than_one_image_each():
    for images in (1, 5, 192, 268, 1000):
        for batch in (1, 4, 9, 64):
            size = F.chunk_size(images, batch)
            passes = -(-images // size)
            assert size <= batch and passes == -(-images // batch)
            assert passes * size - images < passes


def test_report_json_has_faithfulness_for_every_method_and_follows_the_schema(spot_detector, tmp_path, cli):
    import jsonschema
    from PIL import Image

    path = tmp_path / "spot.keras"
    spot_detector.save(path)
    x, _ = spot_images(2, np.random.default_rng(5), spot=True)
    images = []
    for i, im in enumerate(x):
        images.append(tmp_path / f"spot{i}.png")
        Image.fromarray((im[..., 0] * 255).round().astype(np.uint8), "L").save(images[-1])
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
        "--cam",
        ",".join(cam.METHODS),
        "--top-k",
        "2",
        "--preprocess",
        "unit",
        *[a for im in images for a in ("--image", im)],
    )
    assert r.status == 0, r.stderr
    data = json.loads(next(out.rglob("report.json")).read_text())
    jsonschema.validate(
        data, json.loads((Path(__file__).resolve().parents[1] / "docs" / "report.schema.json").read_text())
    )
    for image in data["images"]:
        entries = image["gradcam"]
        assert sorted({e["method"] for e in entries}) == sorted(cam.METHODS) and len(entries) == 4 * 2
        for e in entries:
            assert set(F.KEYS) <= set(e["faithfulness"])
            assert len(e["faithfulness"]["deletion_curve"]) == F.STEPS + 1
        spot = [e for e in entries if e["class_index"] == 1]
        assert all(e["faithfulness"]["deletion_auc"] < e["faithfulness"]["random_deletion_auc"] for e in spot)
    assert data["gradcam"]["faithfulness"]["steps"] == 20
    assert "cam_unfaithful" in data["findings_checked"]
    assert not [f for f in data["findings"] if f["kind"] == "cam_unfaithful"]


def test_the_default_steps_fit_the_budget_counted_by_hand(spot_detector):
    """The spot detector's forward pass counted by hand: conv_a 30x30x8 outputs x 9 taps x 1 channel, conv_b
    28x28x16 x 9 x 8, the head 16 x 2 multiply-adds, 2 FLOPs each; the default steps are the most of 20, 10
    and 5 whose images (the image and its 3 replacements, then 2 (S - 1) maps) fit the budget, none when 5 do
    not."""
    flops = 2.0 * (30 * 30 * 8 * 9 * 1 + 28 * 28 * 16 * 9 * 8 + 16 * 2)
    assert F.forward_flops(spot_detector, SIZE, SIZE) == flops
    maps = 7  # gradcam x 3 classes, 3 random maps, the edge map
    per_steps = {s: (4 + 2 * (s - 1) * maps) * flops for s in (20, 10, 5)}
    assert F.fitted_steps(flops, maps, budget=per_steps[20]) == 20
    assert F.fitted_steps(flops, maps, budget=per_steps[20] - 1) == 10
    assert F.fitted_steps(flops, maps, budget=per_steps[10] - 1) == 5
    assert F.fitted_steps(flops, maps, budget=per_steps[5] - 1) == 0
    assert F.fitted_steps(None, maps, budget=1.0) == F.STEPS  # a model that cannot be counted keeps 20


def test_a_costly_model_gets_fewer_steps_or_a_note_naming_the_flag(spot_detector, tmp_path, cli, monkeypatch):
    """The fitted default, the flag and the skip, as report.json, the settings and the findings state them."""
    from PIL import Image

    path = tmp_path / "spot.keras"
    spot_detector.save(path)
    x, _ = spot_images(1, np.random.default_rng(5), spot=True)
    Image.fromarray((x[0, ..., 0] * 255).round().astype(np.uint8), "L").save(tmp_path / "spot.png")
    flops = F.forward_flops(spot_detector, SIZE, SIZE)
    maps = 2 + F.RANDOM_DRAWS + 1  # both classes (--top-k 3 of 2), one method

    def report(*extra):
        out = tmp_path / f"out{len(list(tmp_path.iterdir()))}"
        r = cli(
            path,
            "--sections",
            "gradcam,findings",
            "--format",
            "json",
            "--out",
            out,
            "--quiet",
            "--preprocess",
            "unit",
            "--image",
            tmp_path / "spot.png",
            *extra,
        )
        assert r.status == 0, r.stderr
        return json.loads(next(out.rglob("report.json")).read_text())

    monkeypatch.setattr(F, "BUDGET_FLOPS", F.images_needed(maps, 10) * flops)  # 20 steps are over it, 10 fit
    data = report()
    faith = data["gradcam"]["faithfulness"]
    assert (faith["steps"], faith["steps_source"]) == (10, "fitted")
    assert faith["forward_flops_per_image"] == pytest.approx(F.images_needed(maps, 10) * flops)
    assert faith["perturbed_images"] == F.images_needed(maps, 10)
    assert len(data["images"][0]["gradcam"][0]["faithfulness"]["deletion_curve"]) == 11
    assert data["settings"]["faithfulness_steps"] == 10 and "cam_unfaithful" in data["findings_checked"]

    data = report("--faithfulness-steps", "4")  # the flag wins over the budget
    assert (data["gradcam"]["faithfulness"]["steps"], data["gradcam"]["faithfulness"]["steps_source"]) == (
        4,
        "option",
    )
    assert data["settings"]["faithfulness_steps"] == 4

    monkeypatch.setattr(F, "BUDGET_FLOPS", F.images_needed(maps, 5) * flops - 1)  # even 5 steps are over it
    data = report()
    faith = data["gradcam"]["faithfulness"]
    assert (
        faith["steps"] == 0
        and faith["steps_source"] == "fitted"
        and "--faithfulness-steps 5" in faith["note"]
    )
    assert "faithfulness" not in data["images"][0]["gradcam"][0]
    assert "cam_unfaithful" not in data["findings_checked"]  # not measured is not passed
    assert "--faithfulness-steps" in data["settings"]["faithfulness_steps"]

    r = cli(path, "--faithfulness-steps", "1", "--format", "json", "--out", tmp_path / "bad", "--quiet")
    assert r.status == 2 and "--faithfulness-steps" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_the_cost_count_includes_a_transformers_projections():
    """Multi-head attention's query, key, value and output projections (EinsumDense, inside the attention
    layer) are counted by hand: 4 tokens x 2 heads x 8 values each summing over the 16 channels, three times,
    and 4 x 16 outputs summing over 2 heads x 8; plus the patch conv and the head."""
    inp = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(16, 4, strides=4, name="patch")(inp)
    x = keras.layers.Reshape((4, 16))(x)
    x = keras.layers.MultiHeadAttention(num_heads=2, key_dim=8, name="mha")(x, x)
    x = keras.layers.GlobalAveragePooling1D()(x)
    model = keras.Model(inp, keras.layers.Dense(3, activation="softmax", name="head")(x))
    patch, projections, output, head = (
        2 * 2 * 16 * (4 * 4 * 3),
        3 * (4 * 2 * 8) * 16,
        (4 * 16) * (2 * 8),
        16 * 3,
    )
    assert F.forward_flops(model, 8, 8) == 2.0 * (patch + projections + output + head)
