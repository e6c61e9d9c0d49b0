"""``reportgen demo``: offline training of the tutorials' CNN and its full report."""

from __future__ import annotations

import json
import re

import keras
import numpy as np

from reportgen.demo import build_model, load_digits_28


def test_demo_model_is_the_tutorials_cnn():
    model = build_model()
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == [
        "Conv2D",
        "MaxPooling2D",
        "Conv2D",
        "MaxPooling2D",
        "Flatten",
        "Dense",
        "Dropout",
        "Dense",
    ]
    assert model.count_params() == 320 + 18_496 + 313_700 + 1_010  # the tutorials' summary
    assert model.layers[-1].activation.__name__ == "softmax"


def test_bundled_digits_are_real_28x28_images():
    images, labels, names = load_digits_28()
    assert images.shape == (1797, 28, 28) and images.dtype == np.uint8
    assert images.max() == 255 and set(labels.tolist()) == set(range(10)) and names[3] == "3"


def test_demo_trains_offline_and_writes_a_complete_report(cli, tmp_path):
    result = cli("demo", "--out", tmp_path, "--epochs", "3", "--quiet")
    assert result.status == 0, result.stderr
    accuracy = float(re.search(r"validation accuracy (\d\.\d+)", result.stderr).group(1))
    assert accuracy > 0.8  # real data, really learned
    model = keras.saving.load_model(tmp_path / "best-cnn-model.keras")
    assert model.count_params() == 333_526
    folder = tmp_path / "best-cnn-model"
    assert sorted(p.name for p in folder.iterdir()) == ["report.html", "report.json", "report.pdf"]
    data = json.loads((folder / "report.json").read_text())
    assert data["sections"] == [
        "findings",
        "overview",
        "layers",
        "weights",
        "kernels",
        "features",
        "gradcam",
        "patterns",
    ]
    assert [im["true_label"] for im in data["images"]] == ["0", "1", "2", "3"]
    assert len(data["images"][0]["predictions"]) == 3
    assert set(data["patterns"]) == {"conv2d", "conv2d_1"}
    assert data["model"]["name"] == "best-cnn-model"
    import jsonschema

    schema = json.loads(
        (__import__("pathlib").Path(__file__).parents[1] / "docs" / "report.schema.json").read_text()
    )
    jsonschema.validate(data, schema)
