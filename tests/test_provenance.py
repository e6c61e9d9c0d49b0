"""What each page rests on: stand-in images, where the preprocessing came from, the explained output, and
models whose library code built them. Every claim is checked against an independent truth (model.predict on
the same pixels under the convention, the weights the code set)."""

from __future__ import annotations

import reportgen  # noqa: F401

import json

import keras
import numpy as np
import pytest
from PIL import Image

import awkward_models as A
from conftest import small_cnn
from reportgen.preprocessing import Preprocessor

SIZE = 16
PER_CLASS = 32  # 64 images: the measurement (64 at most) sees all of them


def _images(n: int, bright: bool, rng: np.random.Generator) -> np.ndarray:
    """Grey 16x16 images with stripes, darker or brighter than mid-grey (127.5) on average."""
    levels = rng.uniform(150, 235, n) if bright else rng.uniform(20, 105, n)
    stripes = np.sin(np.arange(SIZE) * rng.uniform(0.5, 2.0, (n, 1)))[:, None, :] * 15
    noise = rng.normal(0, 8, (n, SIZE, SIZE))
    return np.clip(levels[:, None, None] + stripes + noise, 0, 255).astype(np.uint8)[..., None]


@pytest.fixture(scope="module")
def minus_one_to_one(tmp_path_factory):
    """A CNN trained on [-1, 1] input (pixels / 127.5 - 1) with no Rescaling layer, its file, and a labelled
    folder (class folders 'bright' = 0, 'dark' = 1, Keras' alphanumeric order) it classifies."""
    rng = np.random.default_rng(0)
    x = np.concatenate([_images(160, True, rng), _images(160, False, rng)]).astype("float32")
    y = np.array([0] * 160 + [1] * 160)
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((SIZE, SIZE, 1)),
            keras.layers.Conv2D(6, 3, activation="relu", name="conv"),
            keras.layers.GlobalAveragePooling2D(name="gap"),
            keras.layers.Dense(2, activation="softmax", name="head"),
        ],
        name="signed",
    )
    model.compile(optimizer=keras.optimizers.Adam(0.02), loss="sparse_categorical_crossentropy")
    model.fit(x / 127.5 - 1.0, y, epochs=30, batch_size=32, verbose=0)
    root = tmp_path_factory.mktemp("signed")
    path = root / "signed.keras"
    model.save(path)
    folder = root / "val"
    pixels, labels = [], []
    for label, name in ((0, "bright"), (1, "dark")):
        (folder / name).mkdir(parents=True)
        for i, img in enumerate(_images(PER_CLASS, name == "bright", rng)):
            Image.fromarray(img[..., 0]).save(folder / name / f"{i:02d}.png")
            pixels.append(img)
            labels.append(label)
    return model, path, folder, np.stack(pixels).astype("float32"), np.array(labels)


def _accuracy(model, x, labels) -> float:
    return float(np.mean(model.predict(x, verbose=0).argmax(axis=1) == labels))


def test_auto_measures_the_convention_on_labelled_images(minus_one_to_one, cli, tmp_path):
    model, path, folder, pixels, labels = minus_one_to_one
    truth = {
        "unit": _accuracy(model, pixels / 255.0, labels),
        "tf": _accuracy(model, pixels / 127.5 - 1, labels),
    }
    assert truth["tf"] - truth["unit"] > 0.10  # the awkward case: /255 would explain the wrong model
    res = cli(
        path,
        "--images",
        folder,
        "--sections",
        "dataset,features",
        "--format",
        "json",
        "--out",
        tmp_path,
        "--quiet",
    )
    assert res.status == 0, res.stderr
    data = json.loads((tmp_path / "signed" / "report.json").read_text())
    pre = data["dataset"]["preprocess"]
    assert pre["source"] == "measured" and pre["mode"] == "tf", pre
    measured = {c["mode"]: (c["accuracy"], c["images"]) for c in pre["candidates"]}
    assert set(measured) == {"unit", "tf", "caffe", "torch", "none"}
    # Every candidate's number is model.predict's on the same pixels: the first `images` of the measurement's
    # order (one per class in turn); a candidate clearly worse than the best was dropped after fewer images.
    from reportgen.images.folders import sample_indices, scan

    scanned = scan([str(folder)])
    chosen = sample_indices(scanned, 128)
    queues = [
        [i for i in chosen if scanned.labels[i] == c] for c in sorted({scanned.labels[i] for i in chosen})
    ]
    order = [
        q[k] for k in range(max(map(len, queues))) for q in queues if k < len(q)
    ]  # one per class in turn
    px = np.stack([np.asarray(Image.open(scanned.files[i]), "float32")[..., None] for i in order])
    lab = np.array([scanned.labels[i] for i in order])
    for mode, convert in (("unit", lambda p: p / 255.0), ("tf", lambda p: p / 127.5 - 1)):
        acc, n = measured[mode]
        assert acc == pytest.approx(_accuracy(model, convert(px[:n]), lab[:n]), abs=1e-4)
    assert measured["unit"][1] < measured["tf"][1]  # the wrong convention was dropped early
    assert data["dataset"]["accuracy"] == pytest.approx(truth["tf"], abs=1e-6)
    assert all(
        im["preprocess"]["source"] == "measured" and im["preprocess"]["mode"] == "tf" for im in data["images"]
    )
    assert data["settings"]["preprocess"] == "tf" and data["settings"]["preprocess_source"] == "measured"
    assert "preprocess_guessed" not in {n["kind"] for n in data["notes"]}


def test_an_explicit_preprocess_is_not_measured(minus_one_to_one, cli, tmp_path):
    _model, path, folder, _pixels, _labels = minus_one_to_one
    res = cli(
        path,
        "--images",
        folder,
        "--preprocess",
        "unit",
        "--sections",
        "dataset",
        "--format",
        "json",
        "--out",
        tmp_path,
        "--quiet",
    )
    assert res.status == 0, res.stderr
    pre = json.loads((tmp_path / "signed" / "report.json").read_text())["dataset"]["preprocess"]
    assert pre["source"] == "option" and pre["mode"] == "unit" and "candidates" not in pre


def test_scale_and_offset_feed_pixels_times_s_plus_o(minus_one_to_one, cli, tmp_path):
    model, path, _folder, _pixels, _labels = minus_one_to_one
    img = tmp_path / "in.png"
    px = np.tile(np.arange(SIZE, dtype=np.uint8)[None, :] * 16, (SIZE, 1))
    Image.fromarray(px).save(img)
    res = cli(
        path,
        "--image",
        img,
        "--preprocess",
        "scale=0.0078125,offset=-0.99609375",
        "--sections",
        "gradcam",
        "--format",
        "json",
        "--out",
        tmp_path,
        "--quiet",
    )
    assert res.status == 0, res.stderr
    data = json.loads((tmp_path / "signed" / "report.json").read_text())
    image = data["images"][0]
    assert image["preprocess"]["source"] == "option" and image["preprocess"]["mode"] == "scale"
    assert image["preprocess"]["value_range"] == pytest.approx(
        [0 * 0.0078125 - 0.99609375, 240 * 0.0078125 - 0.99609375]
    )
    expected = model.predict(((px.astype("float32") - 127.5) / 128.0)[None, ..., None], verbose=0)[0]
    top = image["predictions"][0]
    assert top["probability"] == pytest.approx(float(expected.max()), abs=1e-5)
    assert data["notes"] == [] and not image["stand_in"]


@pytest.mark.parametrize(
    "text", ["scale=0.5,offset=-1", "mean=123.7,116.3,103.5,std=58.4,57.1,57.4", "mean=10,std=2"]
)
def test_numeric_forms_invert_exactly(text):
    pre = Preprocessor.from_text(text)
    for channels in (1, 3):
        px = np.random.default_rng(1).uniform(0, 255, (4, 5, channels)).astype("float32")
        x = pre.forward(px)
        assert np.allclose(pre.inverse(x), px, atol=1e-3)
    if text.startswith("mean=123"):
        px = np.full((1, 1, 3), 200.0, "float32")
        assert np.allclose(
            pre.forward(px)[0, 0], (200 - np.array([123.7, 116.3, 103.5])) / np.array([58.4, 57.1, 57.4])
        )


@pytest.mark.parametrize(
    "value, needle",
    [
        ("scale=0", "non-zero"),
        ("mean=1,2,std=1", "1 (grey) or 3"),
        ("scale=x", "not a number"),
        ("std=0,mean=1", "positive"),
        ("bananas", "not known"),
    ],
)
def test_bad_preprocess_values_are_one_line(cli, value, needle):
    res = cli("missing.keras", "--preprocess", value)
    assert res.status == 2 and needle in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_a_grey_model_without_an_image_says_its_photo_is_a_stand_in(cli, tmp_path):
    model = small_cnn((SIZE, SIZE, 1), classes=3, name="grey")
    path = tmp_path / "grey.keras"
    model.save(path)
    res = cli(
        path,
        "--sections",
        "features,gradcam",
        "--format",
        "json",
        "--format",
        "html",
        "--out",
        tmp_path,
        "--quiet",
    )
    assert res.status == 0, res.stderr
    data = json.loads((tmp_path / "grey" / "report.json").read_text())
    assert [im["stand_in"] for im in data["images"]] == [True]
    kinds = [n["kind"] for n in data["notes"]]
    assert kinds == ["stand_in_image", "preprocess_guessed"]
    assert data["images"][0]["preprocess"]["source"] == "default"
    assert "--preprocess" in data["notes"][1]["message"] and "--image" in data["notes"][0]["message"]
    page = (tmp_path / "grey" / "report.html").read_text()
    assert (
        page.count("A stand-in photo, not this model&#39;s data")
        + page.count("A stand-in photo, not this model's data")
        == 2
    )
    assert "What this report rests on" in page


def test_no_note_when_the_model_says_how_it_scales(cli, tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((SIZE, SIZE, 3)),
            keras.layers.Rescaling(1 / 255.0, name="scale"),
            keras.layers.Conv2D(4, 3, name="c"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(2, activation="softmax"),
        ],
        name="selfscaled",
    )
    img = tmp_path / "in.png"
    Image.fromarray(np.full((SIZE, SIZE, 3), 90, np.uint8)).save(img)
    res = cli(
        model.save(tmp_path / "selfscaled.keras") or tmp_path / "selfscaled.keras",
        "--image",
        img,
        "--sections",
        "gradcam",
        "--format",
        "json",
        "--out",
        tmp_path,
        "--quiet",
    )
    assert res.status == 0, res.stderr
    data = json.loads((tmp_path / "selfscaled" / "report.json").read_text())
    assert (
        data["images"][0]["preprocess"]["source"] == "model"
        and data["images"][0]["preprocess"]["mode"] == "none"
    )
    assert data["notes"] == []


# --- models that libraries build ------------------------------------------------------------------


@pytest.fixture
def detector_project(tmp_path, monkeypatch):
    """``det.py`` calls the library's detector code; ``trained.npz`` holds weights no initialiser draws."""
    (tmp_path / "det.py").write_text(
        "import os\nimport awkward_models as A\n\n"
        "def make():\n    return A.library_detector(os.environ.get('DET_WEIGHTS'))\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    A.save_trained_like(A.library_detector(), tmp_path / "trained.npz")
    return tmp_path


def test_library_built_model_takes_input_shape_and_its_weights_are_measured(
    detector_project, cli, monkeypatch
):
    monkeypatch.setenv("DET_WEIGHTS", str(detector_project / "trained.npz"))
    res = cli(
        "det:make",
        "--sections",
        "features,gradcam",
        "--format",
        "json",
        "--out",
        detector_project / "r",
        "--quiet",
    )
    assert res.status == 2 and "built without an input shape" in res.stderr and "--input-shape" in res.stderr
    img = detector_project / "face.png"
    Image.fromarray(np.random.default_rng(3).integers(0, 255, (30, 30, 3), dtype=np.uint8)).save(img)
    res = cli(
        "det:make",
        "--input-shape",
        "24,24,3",
        "--image",
        img,
        "--format",
        "json",
        "--format",
        "html",
        "--out",
        detector_project / "r",
        "--pattern-steps",
        "2",
        "--pattern-filters",
        "4",
        "--quiet",
    )
    assert res.status == 0, res.stderr
    data = json.loads((detector_project / "r" / "make" / "report.json").read_text())
    assert data["model"]["weights_state"] == "trained" and data["model"]["weights"] == "code"
    page = (detector_project / "r" / "make" / "report.html").read_text()
    assert "trained weights, loaded by the code" in page and "freshly built" not in page
    # The explained output: the face/no-face softmax, not the box regression declared first.
    assert data["settings"]["output"] == "face_prob" and data["gradcam"]["output_name"] == "face_prob"
    note = next(n for n in data["notes"] if n["kind"] == "output_chosen")
    assert "face_prob" in note["message"] and "bbox_reg" in note["message"] and "--output" in note["message"]
    # Its predictions are model.predict's, on the same pixels.
    model = A.library_detector(str(detector_project / "trained.npz"))
    x = (
        np.asarray(Image.open(img).convert("RGB").resize((24, 24), Image.Resampling.BICUBIC), "float32")
        / 255.0
    )
    expected = np.asarray(model.predict(x[None], verbose=0)[1][0])
    got = {p["index"]: p["probability"] for p in data["images"][0]["predictions"]}
    assert got == pytest.approx({0: float(expected[0]), 1: float(expected[1])}, abs=1e-4)
    # --output picks the other one, by name or by Keras' position.
    res = cli(
        "det:make",
        "--input-shape",
        "24,24,3",
        "--image",
        img,
        "--output",
        "output_0",
        "--sections",
        "gradcam",
        "--format",
        "json",
        "--out",
        detector_project / "r2",
        "--quiet",
    )
    assert res.status == 0, res.stderr
    data = json.loads((detector_project / "r2" / "make" / "report.json").read_text())
    assert data["settings"]["output"] == "bbox_reg" and "output_chosen" not in {
        n["kind"] for n in data["notes"]
    }


def test_library_built_model_without_weights_is_measured_fresh(detector_project, cli, monkeypatch):
    monkeypatch.delenv("DET_WEIGHTS", raising=False)
    res = cli(
        "det:make",
        "--input-shape",
        "24,24,3",
        "--sections",
        "overview,weights",
        "--format",
        "json",
        "--out",
        detector_project / "r",
        "--quiet",
    )
    assert res.status == 0, res.stderr
    data = json.loads((detector_project / "r" / "make" / "report.json").read_text())
    assert data["model"]["weights_state"] == "fresh", data["model"]["weights_state_detail"]


def test_an_untrained_model_measures_nothing_and_the_guess_stays_a_guess(minus_one_to_one, cli, tmp_path):
    _model, _path, folder, pixels, labels = minus_one_to_one
    model = small_cnn((SIZE, SIZE, 1), classes=2, seed=3, name="untrained")
    model.save(tmp_path / "untrained.keras")
    res = cli(
        tmp_path / "untrained.keras",
        "--images",
        folder,
        "--sections",
        "dataset",
        "--format",
        "json",
        "--out",
        tmp_path,
        "--quiet",
    )
    assert res.status == 0, res.stderr
    data = json.loads((tmp_path / "untrained" / "report.json").read_text())
    pre = data["dataset"]["preprocess"]
    assert pre["source"] == "default" and pre["mode"] == "unit" and len(pre["candidates"]) == 5
    assert data["dataset"]["accuracy"] == pytest.approx(_accuracy(model, pixels / 255.0, labels))
    note = next(n for n in data["notes"] if n["kind"] == "preprocess_guessed")
    assert "no convention stood out" in note["message"].lower()
