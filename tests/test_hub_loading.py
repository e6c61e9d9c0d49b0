"""keras-hub models (issue 19, item 6): preprocessing read from the model, preset directories, offline
errors for preset handles, and a quiet load.

The truths are keras-hub's own: the task's image converter run on the same pixels (what
``model.predict`` applies before the network), ``model.predict`` itself, and the warning Keras prints
when it loads the same file directly. The models are built from a config in the test (no download:
a preset handle would need Kaggle or Hugging Face).
"""

from __future__ import annotations

import reportgen  # noqa: F401  (quiets TensorFlow before it is imported)

import json
import os
import socket
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

keras_hub = pytest.importorskip(
    "keras_hub", reason="keras-hub is not installed (pip install 'reportgen[hub]')"
)
import keras  # noqa: E402

from conftest import run_cli  # noqa: E402
from reportgen import batch, loading  # noqa: E402
from reportgen.batch.specs import spec_name  # noqa: E402
from reportgen.errors import UserError  # noqa: E402
from reportgen.preprocessing import Preprocessor  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SIZE = 32
# keras-hub's ImageNet ResNet presets: per-channel, scale = 1 / (255 std), offset = -mean / std.
IMAGENET_MEAN, IMAGENET_STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])


def _backbone() -> "keras_hub.models.ResNetBackbone":
    return keras_hub.models.ResNetBackbone(
        input_conv_filters=[64],
        input_conv_kernel_sizes=[3],
        stackwise_num_filters=[64, 32],
        stackwise_num_blocks=[1, 1],
        stackwise_num_strides=[1, 2],
        block_type="basic_block",
        use_pre_activation=False,
        image_shape=(SIZE, SIZE, 3),
    )


def _classifier(backbone, converter) -> "keras_hub.models.ResNetImageClassifier":
    preprocessor = keras_hub.models.ResNetImageClassifierPreprocessor(image_converter=converter)
    return keras_hub.models.ResNetImageClassifier(backbone, num_classes=3, preprocessor=preprocessor)


def _pixels(n: int, seed: int = 0) -> np.ndarray:
    """Every value 0..255 in every channel, then random pixels: float32 n x SIZE x SIZE x 3."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, SIZE, SIZE, 3)).astype(np.float32)
    x[0].reshape(-1, 3)[:256] = np.arange(256, dtype=np.float32)[:, None]
    return x


@pytest.fixture(scope="module")
def hub_task(tmp_path_factory):
    """A small trained ResNetImageClassifier with its preprocessor (scale 1/127.5, offset -1), saved as
    a .keras file and as a preset directory; trained with Adam, so the file holds an optimizer state."""
    keras.utils.set_random_seed(0)
    converter = keras_hub.layers.ResNetImageConverter(image_size=(SIZE, SIZE), scale=1 / 127.5, offset=-1)
    model = _classifier(_backbone(), converter)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(_pixels(6, seed=1), np.arange(6) % 3, epochs=1, batch_size=6, verbose=0)
    folder = tmp_path_factory.mktemp("hub")
    model.save(folder / "small_resnet.keras")
    model.save_to_preset(str(folder / "small_preset"))
    image = folder / "pixels.png"
    Image.fromarray(_pixels(1, seed=2)[0].astype(np.uint8)).save(image)
    return model, converter, folder


def _converted(converter, pixels: np.ndarray) -> np.ndarray:
    return keras.ops.convert_to_numpy(converter(keras.ops.convert_to_tensor(pixels)))


def test_preprocessing_is_the_converters(hub_task):
    """(a) What the report feeds is what the converter makes of the same pixels; the inverse gives the pixels
    back. For the scalar converter and for a per-channel (ImageNet) one."""
    model, converter, _ = hub_task
    pixels = _pixels(2)
    pre = Preprocessor.resolve("auto", None, model)
    assert (pre.source, pre.mode, pre.converter) == ("model", "scale", "ResNetImageConverter")
    np.testing.assert_allclose(pre.forward(pixels), _converted(converter, pixels), atol=1e-5)
    np.testing.assert_allclose(pre.inverse(pre.forward(pixels)), pixels, atol=1e-3)
    # The --preprocess value the report records gives the same input back.
    again = Preprocessor.from_text(pre.option_text())
    np.testing.assert_allclose(again.forward(pixels), pre.forward(pixels), atol=1e-6)

    per_channel = keras_hub.layers.ResNetImageConverter(
        scale=list(1 / (255 * IMAGENET_STD)), offset=list(-IMAGENET_MEAN / IMAGENET_STD)
    )
    imagenet = _classifier(model.backbone, per_channel)
    pre = Preprocessor.resolve("auto", None, imagenet)
    assert (pre.source, pre.mode) == ("model", "meanstd")
    np.testing.assert_allclose(pre.mean, IMAGENET_MEAN * 255, rtol=1e-6)
    np.testing.assert_allclose(pre.std, IMAGENET_STD * 255, rtol=1e-6)
    np.testing.assert_allclose(pre.forward(pixels), _converted(per_channel, pixels), atol=1e-5)
    np.testing.assert_allclose(pre.inverse(pre.forward(pixels)), pixels, atol=1e-3)
    # The user's word still wins over the model's.
    assert Preprocessor.resolve("unit", None, imagenet).source == "option"


def _report(folder: Path, name: str) -> dict:
    return json.loads((folder / name / "report.json").read_text())


def test_keras_file_report_uses_the_converter(hub_task, tmp_path):
    """(b) report.json says the preprocessing came from the model, with the converter's numbers, and its top
    predictions are model.predict's on the raw pixels (which runs the converter)."""
    model, _converter, folder = hub_task
    res = run_cli(
        folder / "small_resnet.keras",
        "--image",
        folder / "pixels.png",
        "--sections",
        "overview,gradcam",
        "--format",
        "json",
        "--out",
        tmp_path,
        "--quiet",
    )
    assert res.status == 0, res.stderr
    data = _report(tmp_path, "small_resnet")
    pre = data["images"][0]["preprocess"]
    assert pre["source"] == "model" and pre["mode"] == "scale"
    assert "ResNetImageConverter" in pre["description"]
    assert Preprocessor.from_text(pre["option"]).scale == pytest.approx(1 / 127.5, rel=1e-9)
    assert Preprocessor.from_text(pre["option"]).offset == -1
    assert pre["value_range"][0] >= -1 and pre["value_range"][1] <= 1
    kinds = [n["kind"] for n in data["notes"]]
    assert "preprocess_from_model" in kinds and "preprocess_guessed" not in kinds
    raw = np.asarray(Image.open(folder / "pixels.png"), np.float32)[None]
    expected = model.predict(raw, verbose=0)[0]
    got = data["images"][0]["predictions"]
    assert [p["index"] for p in got] == list(np.argsort(-expected)[: len(got)])
    np.testing.assert_allclose([p["value"] for p in got], np.sort(expected)[::-1][: len(got)], atol=1e-4)


def test_preset_directory_loads_and_reports(hub_task, tmp_path):
    """(c) The folder save_to_preset writes is one MODEL (not a folder of model files), named after the
    folder, with the same weights and preprocessing as the task."""
    model, _converter, folder = hub_task
    preset = folder / "small_preset"
    assert not batch.is_many([str(preset)]) and spec_name(str(preset)) == "small_preset"
    res = run_cli(
        preset,
        "--image",
        folder / "pixels.png",
        "--sections",
        "overview,layers,gradcam",
        "--format",
        "json",
        "--out",
        tmp_path,
        "--quiet",
    )
    assert res.status == 0, res.stderr
    data = _report(tmp_path, "small_preset")
    assert data["model"]["source"] == str(preset) and len(data["model"]["sha256"]) == 64
    assert data["images"][0]["preprocess"]["source"] == "model"
    raw = np.asarray(Image.open(folder / "pixels.png"), np.float32)[None]
    expected = model.predict(raw, verbose=0)[0]
    np.testing.assert_allclose(
        [p["value"] for p in data["images"][0]["predictions"]], np.sort(expected)[::-1], atol=1e-4
    )


@pytest.mark.parametrize(
    "handle", ["kaggle://keras/resnetv2/keras/resnet50_v2_imagenet", "hf://keras/vit", "resnet_18_imagenet"]
)
def test_preset_handle_is_one_line_offline(handle, tmp_path, monkeypatch):
    """(d) A preset handle needs the network: exit 2, one line naming the fix, no traceback, no connection
    tried."""

    def no_network(*_args, **_kwargs):
        raise AssertionError("reportgen tried the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    res = run_cli(handle, "--format", "json", "--out", tmp_path / "out")
    assert res.status == 2
    assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr, res.stderr
    assert (
        "needs the network" in res.stderr and "save_to_preset(DIR)" in res.stderr and "pass DIR" in res.stderr
    )
    assert not (tmp_path / "out").exists()


def test_load_prints_no_optimizer_warning(hub_task):
    """(e) Keras warns that the saved Adam state was skipped when it loads this file; reportgen's load does
    not, and keeps the other warnings."""
    _model, _converter, folder = hub_task
    path = folder / "small_resnet.keras"
    with warnings.catch_warnings(record=True) as direct:
        warnings.simplefilter("always")
        keras.saving.load_model(path, compile=False)
    assert any("Skipping variable loading for optimizer" in str(w.message) for w in direct)
    with warnings.catch_warnings(record=True) as ours:
        warnings.simplefilter("always")
        loading.load(str(path))
        with loading.quiet_optimizer():
            warnings.warn("something else", UserWarning)
    messages = [str(w.message) for w in ours]
    assert not any("optimizer" in m for m in messages) and "something else" in messages


def test_without_keras_hub(hub_task, tmp_path):
    """Without the extra, a keras-hub model (file or preset directory) gets one line naming the install."""
    _model, _converter, folder = hub_task
    code = (
        "import sys; sys.modules['keras_hub'] = None  # as "
        "if not installed: import fails, find_spec is None\n"
        "from reportgen.cli import main\n"
        "for spec in sys.argv[2:]:\n"
        "    print(main([spec, '--format', 'json', '--out', sys.argv[1]]))"
    )
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    )
    specs = [str(folder / "small_resnet.keras"), str(folder / "small_preset")]
    res = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "out"), *specs],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert res.stdout.split() == ["2", "2"], res.stderr
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 2 and all('pip install "reportgen[hub]"' in line for line in lines), res.stderr
    assert "Traceback" not in res.stderr and not (tmp_path / "out").exists()


def test_bad_preset_directory_is_one_line(hub_task, tmp_path):
    """A preset directory without its weights: a UserError naming the folder and the fix."""
    _model, _converter, folder = hub_task
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("config.json", "metadata.json"):
        (broken / name).write_bytes((folder / "small_preset" / name).read_bytes())
    with pytest.raises(UserError, match="keras-hub preset directory.*save_to_preset"):
        loading.load(str(broken))


def test_a_config_that_does_not_rebuild_its_network_is_told_so(tmp_path):
    """keras-hub 0.32's EfficientNetBackbone.get_config() leaves out ``num_features``: a backbone built with
    32 comes back with a 1280-channel top conv, and Keras reports "3 objects could not be loaded" (and
    warns of skipped weight groups). The one line names the layer, both shapes, the arguments the config
    leaves out, and the fix -- which then works: the model built in code, given the file's weights."""
    import hub_models

    model = hub_models.efficientnet()
    path = tmp_path / "efficientnet.keras"
    model.save(path)
    res = run_cli(path, "--format", "json", "--out", tmp_path / "out", "--sections", "overview")
    if "num_features" in model.backbone.get_config():  # a keras-hub that records it: the file loads
        assert res.status == 0, res.stderr
        return
    assert res.status == 2
    assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr, res.stderr
    assert "top_conv" in res.stderr and "(1, 1, 16, 1280)" in res.stderr and "(1, 1, 16, 32)" in res.stderr
    assert "EfficientNetBackbone.get_config() does not record" in res.stderr and "num_features" in res.stderr
    assert "truncated" not in res.stderr and "Skipping nested container" not in res.stderr
    assert f"module:callable --weights {path}" in res.stderr
    fixed = run_cli(
        "hub_models:efficientnet",
        "--weights",
        path,
        "--format",
        "json",
        "--out",
        tmp_path / "out",
        "--sections",
        "overview",
        "--quiet",
    )
    assert fixed.status == 0, fixed.stderr
    data = json.loads(next((tmp_path / "out").glob("*/report.json")).read_text())
    assert data["model"]["weights"] == str(path) and data["model"]["total_params"] == model.count_params()
