"""Image folders: statistics over every image, checked against model.predict on the same files."""

from __future__ import annotations

import reportgen  # noqa: F401

import json

import keras
import numpy as np
import pytest
from PIL import Image

import digits_models as dm
from reportgen import Report
from reportgen.analyses import cam


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """scikit-learn's held-out digits as 8x8 PNGs in class sub-folders, one broken file among them."""
    from sklearn.datasets import load_digits

    root = tmp_path_factory.mktemp("digits")
    d = load_digits()
    for i in range(1500, 1797):
        sub = root / str(d.target[i])
        sub.mkdir(exist_ok=True)
        Image.fromarray(np.rint(d.images[i] / 16.0 * 255).astype(np.uint8)).save(sub / f"{i}.png")
    (root / "3" / "broken.png").write_bytes(b"not a png")
    return root


def _truth(model, root):
    """Independent truth: every readable file, read with PIL, /255, through model.predict."""
    paths, labels = [], []
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        for f in sorted(sub.iterdir()):
            try:
                x = np.asarray(Image.open(f), dtype=np.float32)[..., None] / 255.0
            except Exception:
                continue
            paths.append(x)
            labels.append(int(sub.name))
    x = np.stack(paths)
    probs = model.predict(x, verbose=0)
    return x, np.asarray(labels), probs


@pytest.fixture(scope="module")
def report(folder):
    model = dm.trained()
    r = Report(model, images=[folder], sections="dataset,features,gradcam,findings", sample=4)
    return model, r


def test_accuracy_and_confusion_equal_model_predict(folder, report):
    model, r = report
    ds = r.json["dataset"]
    x, labels, probs = _truth(model, folder)
    predicted = probs.argmax(1)
    assert ds["images"] == len(x) == 297 and ds["labelled_images"] == 297
    assert ds["accuracy"] == pytest.approx(float((predicted == labels).mean()))
    confusion = np.zeros((10, 10), int)
    np.add.at(confusion, (labels, predicted), 1)
    assert np.array_equal(np.asarray(ds["confusion"]), confusion)
    for c in range(10):
        mine = labels == c
        assert ds["per_class"][str(c)]["images"] == int(mine.sum())
        assert ds["per_class"][str(c)]["accuracy"] == pytest.approx(float((predicted[mine] == c).mean()))


def test_unreadable_files_are_skipped_counted_and_named(folder, report):
    _model, r = report
    skipped = r.json["dataset"]["skipped"]
    assert [s["path"] for s in skipped] == [str(folder / "3" / "broken.png")]
    html = r.html()
    assert "broken.png" in html and "297" in html


def test_unit_activity_equals_a_plain_keras_submodel(folder, report):
    model, r = report
    x, _labels, _probs = _truth(model, folder)
    units = r.json["dataset"]["units"]
    for name in ("conv1", "dense1"):
        out = keras.ops.convert_to_numpy(keras.Model(model.inputs, model.get_layer(name).output)(x))
        fired = (np.abs(out.reshape(len(x), -1, out.shape[-1])) > 1e-6).any(axis=1).mean(axis=0)
        np.testing.assert_allclose(units[name]["active_fraction"], fired, atol=1e-6)


def test_mean_cam_per_class_equals_the_single_image_maps(folder, report):
    model, r = report
    x, labels, _probs = _truth(model, folder)
    ds = r.json["dataset"]
    layer = ds["cam_layer"]
    for c in (0, 7):
        maps = cam.explain(model, layer, x[labels == c], classes=np.full((labels == c).sum(), c)).heatmaps[
            :, 0
        ]
        np.testing.assert_allclose(ds["mean_cam"][str(c)], maps.mean(axis=0), atol=2e-4)


def test_the_report_shows_a_sample_and_says_over_how_many_images(report):
    _model, r = report
    data = r.json
    assert len(data["images"]) == 4  # --sample
    assert [im["true_label"] for im in data["images"]] == ["0", "1", "2", "3"]  # one per class in turn
    html = r.html()
    assert "every</strong> readable image" in html and "show\n4 of them" in html.replace("show 4", "show\n4")
    mistakes = data["dataset"]["mistakes"]
    assert all(m["true"] != m["predicted"] for m in mistakes)
    conf = [m["confidence"] for m in mistakes]
    assert conf == sorted(conf, reverse=True)


def test_inactive_units_are_judged_on_every_image(folder, report):
    model, r = report
    x, _l, _p = _truth(model, folder)
    out = keras.ops.convert_to_numpy(keras.Model(model.inputs, model.get_layer("dense1").output)(x))
    silent = set(np.flatnonzero(out.max(axis=0) <= 1e-6).tolist())
    found = set()
    for f in r.findings:  # ten listed one by one, the rest summed up in one entry's `filters`
        if f["kind"] == "inactive_unit" and f["layer"] == "dense1":
            found |= {f["filter"]} if f["filter"] is not None else set(f["filters"])
    assert found == silent
    for f in r.findings:
        if f["kind"] == "inactive_unit" and f["filter"] is not None:
            assert "297 input images" in f["message"]


def test_bad_folders_exit_2(tmp_path, cli, saved_small):
    empty = tmp_path / "empty"
    (empty / "cats").mkdir(parents=True)
    (empty / "cats" / "a.png").write_bytes(b"nope")
    res = cli(saved_small, "--images", empty, "--out", tmp_path / "never", "--quiet")
    assert res.status == 2 and "none of the 1 files could be read" in res.stderr
    assert not (tmp_path / "never").exists()
    names = tmp_path / "names.txt"
    names.write_text("ant\nbee\ncat\ndog\n")
    ok = tmp_path / "ok"
    (ok / "zebra").mkdir(parents=True)
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(ok / "zebra" / "z.png")
    res = cli(saved_small, "--images", ok, "--class-names", names, "--out", tmp_path / "never", "--quiet")
    assert res.status == 2 and "class folder 'zebra'" in res.stderr and "ant, bee, cat, dog" in res.stderr
    res = cli(saved_small, "--images", tmp_path / "missing", "--out", tmp_path / "never", "--quiet")
    assert res.status == 2 and "does not exist" in res.stderr


def test_report_json_with_a_folder_follows_the_schema(report):
    import jsonschema
    from pathlib import Path

    schema = json.loads((Path(__file__).resolve().parents[1] / "docs" / "report.schema.json").read_text())
    _model, r = report
    jsonschema.validate(r.json, schema)


def test_one_sigmoid_unit_with_open_sizes_is_a_two_class_classifier(folder, tmp_path):
    """Cats-vs-dogs models end in ONE sigmoid unit, and many take any image size (None x None)."""
    import shutil

    from reportgen.images import DEFAULT_SIZE

    two = tmp_path / "two"
    for c in ("0", "1"):
        shutil.copytree(folder / c, two / c)
    keras.utils.set_random_seed(3)
    model = keras.Sequential(
        [
            keras.Input((None, None, 1)),
            keras.layers.Conv2D(4, 3, activation="relu", padding="same", name="conv1"),
            keras.layers.Conv2D(4, 3, activation="relu", padding="same", name="conv2"),
            keras.layers.GlobalAveragePooling2D(name="gap"),
            keras.layers.Dense(1, activation="sigmoid", name="is_one"),
        ],
        name="binary_open",
    )
    model.get_layer("is_one").bias.assign([-0.05])
    r = Report(model, images=[two], sections="dataset,findings", sample=2)
    ds = r.json["dataset"]
    assert r.json["section_errors"] == []
    xs, labels = [], []
    for c in (0, 1):  # independent truth: PIL's bicubic resize to the default side, /255, model.predict
        for f in sorted((two / str(c)).glob("*.png")):
            img = Image.open(f).resize((DEFAULT_SIZE, DEFAULT_SIZE), Image.Resampling.BICUBIC)
            xs.append(np.asarray(img, dtype=np.float32)[..., None] / 255.0)
            labels.append(c)
    labels = np.asarray(labels)
    p = model.predict(np.stack(xs), verbose=0)[:, 0]
    predicted = (p > 0.5).astype(int)
    assert ds["images"] == len(labels)
    assert ds["accuracy"] == pytest.approx(float((predicted == labels).mean()))
    confusion = np.zeros((2, 2), int)
    np.add.at(confusion, (labels, predicted), 1)
    assert np.array_equal(np.asarray(ds["confusion"]), confusion)
    out = keras.ops.convert_to_numpy(keras.Model(model.inputs, model.get_layer("conv2").output)(np.stack(xs)))
    fired = (out.reshape(len(xs), -1, 4) > 1e-6).any(axis=1).mean(axis=0)
    np.testing.assert_allclose(ds["units"]["conv2"]["active_fraction"], fired, atol=1e-6)
    assert "is_one" not in ds["units"]  # the output's sigmoid is explained as a logit, not counted as units


def test_a_model_without_units_to_count_says_so_instead_of_an_empty_table(folder, tmp_path):
    """A ViT's MLPs use GELU, which is never silent: no layer's units are counted, and the page says why
    instead of drawing the table's header over no rows."""
    import shutil

    two = tmp_path / "two"
    for c in ("0", "1"):
        shutil.copytree(folder / c, two / c)
    keras.utils.set_random_seed(3)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(4, 3, activation="gelu", padding="same", name="conv1"),
            keras.layers.GlobalAveragePooling2D(name="gap"),
            keras.layers.Dense(2, activation="softmax", name="head"),
        ],
        name="gelu_only",
    )
    r = Report(model, images=[two], sections="dataset", sample=2)
    assert r.json["section_errors"] == [] and r.json["dataset"]["units"] == {}
    section = r.html().split("Units on the data", 1)[1].split("<h3", 1)[0]
    assert "no units to count" in section and "<table" not in section
