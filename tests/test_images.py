"""Image loading, fitting and preprocessing (reportgen.images): every format and every bad input."""

from __future__ import annotations

import json
import struct
import zlib

import reportgen  # noqa: F401  (quiet TensorFlow before keras)

import keras
import numpy as np
import pytest
from PIL import Image

from reportgen import images as imgs
from reportgen.analyses.labels import class_names
from reportgen.context import LoadedModel, Options
from reportgen.errors import UserError
from reportgen.preprocessing import Preprocessor
from reportgen.scheduler import compute


def _inputs(loaded: LoadedModel, options: Options) -> list:
    """The report's images, as the pipeline computes them."""
    return compute(loaded, options, ["images"]).images


RGB = imgs.InputSpec(16, 16, 3)
GREY = imgs.InputSpec(16, 16, 1)


def _rgb(h: int = 20, w: int = 30, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _png16_rgb(path, arr: np.ndarray) -> None:
    """Write a 16-bit RGB PNG by hand (Pillow cannot write one)."""
    h, w, _ = arr.shape
    raw = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    )


# --- formats --------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["png", "bmp"])
def test_lossless_formats_load_exactly(tmp_path, fmt):
    arr = _rgb()
    path = tmp_path / f"x.{fmt}"
    Image.fromarray(arr).save(path)
    np.testing.assert_array_equal(imgs.load_pixels(path), arr)


def test_jpeg_loads_close_to_original(tmp_path):
    arr = np.full((24, 24, 3), (200, 40, 90), np.uint8)
    Image.fromarray(arr).save(tmp_path / "x.jpg", quality=95)
    got = imgs.load_pixels(tmp_path / "x.jpg")
    assert got.shape == (24, 24, 3)
    assert np.abs(got.astype(int) - arr).max() <= 6


def test_gif_uses_first_frame(tmp_path):
    red = Image.new("RGB", (12, 12), (255, 0, 0))
    blue = Image.new("RGB", (12, 12), (0, 0, 255))
    red.save(tmp_path / "a.gif", save_all=True, append_images=[blue])
    steps: list[str] = []
    got = imgs.load_pixels(tmp_path / "a.gif", steps)
    assert got.shape == (12, 12, 3)
    assert got[..., 0].min() > 200 and got[..., 2].max() < 50
    assert any("first frame of 2" in s for s in steps)


def test_grey_png_stays_one_channel(tmp_path):
    arr = np.arange(100, dtype=np.uint8).reshape(10, 10)
    Image.fromarray(arr).save(tmp_path / "g.png")
    got = imgs.load_pixels(tmp_path / "g.png")
    assert got.shape == (10, 10, 1)
    np.testing.assert_array_equal(got[..., 0], arr)


def test_16bit_grey_png_is_scaled_to_8_bits(tmp_path):
    arr = np.array([[0, 257 * 100, 65535, 257 * 7]] * 4, dtype=np.uint16)
    Image.fromarray(arr).save(tmp_path / "g16.png")
    steps: list[str] = []
    got = imgs.load_pixels(tmp_path / "g16.png", steps)
    np.testing.assert_array_equal(got[0, :, 0], [0, 100, 255, 7])
    assert any("16-bit" in s for s in steps)


def test_16bit_rgb_png_is_reduced_and_said(tmp_path):
    arr = np.zeros((8, 8, 3), np.uint16)
    arr[..., 0] = 65535
    arr[..., 1] = 257 * 128
    _png16_rgb(tmp_path / "c16.png", arr)
    steps: list[str] = []
    got = imgs.load_pixels(tmp_path / "c16.png", steps)
    assert got.shape == (8, 8, 3)
    assert np.all(got[..., 0] == 255) and np.all(np.abs(got[..., 1].astype(int) - 128) <= 1)
    assert np.all(got[..., 2] == 0)
    assert any("16-bit" in s for s in steps)


def test_rgba_is_composited_over_white(tmp_path):
    rgba = np.zeros((6, 6, 4), np.uint8)
    rgba[..., 0] = 255  # red
    rgba[:3, :, 3] = 0  # top half fully transparent
    rgba[3:, :, 3] = 128  # bottom half half-transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    steps: list[str] = []
    got = imgs.load_pixels(tmp_path / "a.png", steps).astype(int)
    assert np.all(got[:3] == 255)  # white where transparent
    np.testing.assert_allclose(got[3:, :, 0], 255)
    np.testing.assert_allclose(got[3:, :, 1:], 255 * (1 - 128 / 255), atol=1.5)
    assert any("over white" in s for s in steps)


@pytest.mark.parametrize(
    "arr, expected",
    [
        (np.full((10, 12, 3), 77, np.uint8), 77),
        (np.full((10, 12), 0.5, np.float32), 128),  # 0..1 floats
        (np.full((10, 12, 1), 200.0, np.float64), 200),  # 0..255 floats
        (np.full((1, 10, 12, 3), 9, np.uint8), 9),  # a batch of one
        (np.full((10, 12), 257 * 40, np.uint16), 40),  # 16-bit
    ],
)
def test_npy_arrays(tmp_path, arr, expected):
    np.save(tmp_path / "a.npy", arr)
    got = imgs.load_pixels(tmp_path / "a.npy")
    assert got.dtype == np.uint8 and got.shape[:2] == (10, 12) and got.shape[-1] in (1, 3)
    assert np.all(got == expected)


# --- fitting and preprocessing -----------------------------------------------------------


def test_fit_keeps_aspect_ratio_and_crops_the_centre():
    # 40 wide x 20 high: left and right quarters black, centre half white.
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, 10:30] = 255
    steps: list[str] = []
    out = imgs.fit_to_input(arr, imgs.InputSpec(10, 10, 3), steps)
    assert out.shape == (10, 10, 3)
    # Scaling to 20x10 and cropping the centre 10 columns keeps exactly the white band
    # (a squash to 10x10 would keep the black quarters).
    assert out[:, 1:-1].min() >= 250 and out.min() > 200  # (bicubic softens the band's edge)
    assert "centre-cropped" in steps[-1]


def test_fit_converts_channels():
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[..., 1] = 200
    grey = imgs.fit_to_input(rgb, GREY)
    assert grey.shape == (16, 16, 1)
    assert abs(int(grey[0, 0, 0]) - round(200 * 0.587)) <= 1  # ITU-R 601 luma of pure green
    back = imgs.fit_to_input(grey, RGB)
    assert back.shape == (16, 16, 3) and np.all(back[..., 0] == back[..., 2])


def test_prepare_applies_the_preprocessor_and_records_the_range():
    arr = _rgb(16, 16)
    pre = Preprocessor.resolve("caffe", None)
    p = imgs.prepare(arr, RGB, pre, "x.png")
    expected = arr[..., ::-1].astype(np.float32) - np.array([103.939, 116.779, 123.68], np.float32)
    np.testing.assert_allclose(p.input, expected, rtol=0, atol=1e-4)
    assert p.value_range == (float(expected.min()), float(expected.max()))
    assert p.mode == "caffe" and "caffe" in p.preprocess
    np.testing.assert_array_equal(p.pixels, arr)
    assert p.describe()["value_range"] == [float(expected.min()), float(expected.max())]


# --- where the images come from ------------------------------------------------------------


def _model(shape):
    inp = keras.Input(shape=shape)
    x = keras.layers.Flatten()(inp) if len(shape) > 1 else inp
    return keras.Model(inp, keras.layers.Dense(3, activation="softmax")(x))


def test_default_is_the_grace_hopper_photo_for_rgb_models():
    (img,) = _inputs(LoadedModel(_model((32, 32, 3)), "m", "m", None), Options())
    assert img.path.endswith("grace_hopper.jpg") and img.label is None
    assert img.pixels.shape == (32, 32, 3) and img.input.shape == (32, 32, 3)
    assert img.mode == "unit" and 0 <= img.value_range[0] <= img.value_range[1] <= 1


def test_demo_samples_one_per_class_up_to_four():
    samples = [(np.full((8, 8, 1), i * 20, np.uint8), str(i % 6)) for i in range(12)]
    loaded = LoadedModel(_model((8, 8, 1)), "m", "m", None, sample_images=samples)
    got = _inputs(loaded, Options())
    assert [g.label for g in got] == ["0", "1", "2", "3"]
    np.testing.assert_array_equal(got[1].pixels, samples[1][0])
    np.testing.assert_allclose(got[1].input, samples[1][0] / 255.0, atol=1e-6)


def test_image_option_wins_and_non_image_models_get_none(tmp_path):
    Image.fromarray(_rgb(40, 40)).save(tmp_path / "a.png")
    (img,) = _inputs(
        LoadedModel(_model((16, 16, 3)), "m", "m", None),
        Options(images=(str(tmp_path / "a.png"),), preprocess="tf"),
    )
    assert img.path == str(tmp_path / "a.png") and img.mode == "tf"
    assert -1 <= img.value_range[0] and img.value_range[1] <= 1
    assert _inputs(LoadedModel(_model((10,)), "m", "m", None), Options()) == []


# --- bad input: one UserError naming the file and the fix ---------------------------------


def _bad_files(tmp_path):
    (tmp_path / "notes.png").write_text("this is not an image")
    (tmp_path / "empty.jpg").write_bytes(b"")
    Image.fromarray(_rgb(64, 64)).save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "truncated.png").write_bytes(data[: len(data) // 2])
    Image.new("RGB", (1, 1)).save(tmp_path / "tiny.png")
    np.save(tmp_path / "cube.npy", np.zeros((4, 4, 4, 4)))
    np.save(tmp_path / "range.npy", np.full((10, 10), 1000.0))
    np.save(tmp_path / "nan.npy", np.full((10, 10), np.nan))
    (tmp_path / "folder").mkdir()
    return [
        "notes.png",
        "empty.jpg",
        "truncated.png",
        "tiny.png",
        "cube.npy",
        "range.npy",
        "nan.npy",
        "folder",
        "missing.png",
    ]


def test_every_bad_image_is_a_user_error_naming_the_file(tmp_path):
    names = _bad_files(tmp_path)
    for name in names:
        with pytest.raises(UserError) as err:
            imgs.load_image(str(tmp_path / name), RGB, Preprocessor("unit"))
        msg = str(err.value)
        assert name in msg and "\n" not in msg, msg
        assert any(w in msg for w in ("use", "save", "check", "pass")), msg  # says what to do


def test_image_for_a_model_without_image_input_is_a_user_error(tmp_path):
    Image.fromarray(_rgb()).save(tmp_path / "a.png")
    loaded = LoadedModel(_model((10,)), "m", "m", None)
    with pytest.raises(UserError, match="not an image"):
        _inputs(loaded, Options(images=(str(tmp_path / "a.png"),)))


# --- class names ---------------------------------------------------------------------------


def test_imagenet_names_ship_in_keras_order():
    names = imgs.imagenet_class_names()
    assert len(names) == 1000
    assert names[0] == "tench" and names[1] == "goldfish" and names[999] == "toilet_tissue"
    assert names[386] == "African_elephant" and names[765] == "rocking_chair"


def test_class_names_files(tmp_path):
    (tmp_path / "a.txt").write_text("cat\n\ndog\nbird\n")
    (tmp_path / "b.json").write_text(json.dumps(["cat", "dog", "bird"]))
    (tmp_path / "c.json").write_text(
        json.dumps({"1": ["n1", "dog"], "0": ["n0", "cat"], "2": ["n2", "bird"]})
    )
    for f in ("a.txt", "b.json", "c.json"):
        assert imgs.load_class_names(tmp_path / f) == ["cat", "dog", "bird"]
    (tmp_path / "bad.json").write_text("[1, 2")
    with pytest.raises(UserError, match="bad.json"):
        imgs.load_class_names(tmp_path / "bad.json")
    with pytest.raises(UserError, match="does not exist"):
        imgs.load_class_names(tmp_path / "none.txt")


def test_class_names_resolution(tmp_path):
    (tmp_path / "two.txt").write_text("a\nb\n")
    loaded = LoadedModel(_model((4, 4, 3)), "m", "m", None)
    with pytest.raises(UserError, match="2 names but the model has 3 outputs"):
        compute(loaded, Options(class_names=str(tmp_path / "two.txt")), ["class_names"])
    assert compute(loaded, Options(), ["class_names"]).class_names is None
    assert class_names(loaded, Options(), 3) is None
    assert imgs.label_for(7, None) == "class 7" and imgs.label_for(1, ["a", "b"]) == "b"


# --- through the command line: exit 2, one line on stderr, no report folder ------------------


@pytest.mark.parametrize(
    "bad", ["notes.png", "empty.jpg", "truncated.png", "tiny.png", "cube.npy", "missing.png"]
)
def test_cli_bad_image_exits_2_and_writes_nothing(cli, saved_small, tmp_path, bad):
    _bad_files(tmp_path)
    out = tmp_path / "reports"
    result = cli(saved_small, "--image", tmp_path / bad, "--out", out, "--quiet")
    assert result.status == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and bad in lines[0], result.stderr
    assert not (out / "small-model").exists()


@pytest.mark.parametrize("option, name", [("--layers", "nope"), ("--gradcam-layer", "nope")])
def test_cli_unknown_layer_lists_valid_names(cli, saved_small, tmp_path, option, name):
    out = tmp_path / "reports"
    result = cli(saved_small, option, name, "--out", out, "--quiet")
    assert result.status == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and option in lines[0] and "conv_a" in lines[0] and "conv_b" in lines[0]
    assert not (out / "small-model").exists()


def test_cli_image_for_a_1d_model(cli, tmp_path):
    inp = keras.Input((10,))
    path = tmp_path / "flat.keras"
    keras.Model(inp, keras.layers.Dense(2, activation="softmax")(inp)).save(path)
    Image.fromarray(_rgb()).save(tmp_path / "a.png")
    out = tmp_path / "reports"
    result = cli(path, "--image", tmp_path / "a.png", "--out", out, "--quiet")
    assert result.status == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "not an image" in result.stderr
    assert not (out / "flat").exists()


# --- a model that scales its own input ------------------------------------------------------


def _own_scaling_model(first, name="scales_itself"):
    inp = keras.Input(shape=(16, 16, 3))
    x = first(inp)
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, keras.layers.Dense(3, activation="softmax", name="head")(x), name=name)


@pytest.mark.parametrize(
    "first",
    [
        lambda: keras.layers.Rescaling(1 / 255, name="rescale"),
        lambda: keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="rescale"),
        # Augmentation first, in its own block, then the scaling: the way Keras' guides build it.
        lambda: keras.Sequential(
            [keras.layers.RandomFlip("horizontal"), keras.layers.Rescaling(1 / 255)],
            name="augment_then_scale",
        ),
    ],
    ids=["rescaling_unit", "rescaling_tf", "nested_after_augmentation"],
)
def test_auto_feeds_raw_pixels_to_a_model_that_rescales_them_itself(first):
    # Dividing by 255 before the model's own Rescaling(1/255) would hand it values below 1/255:
    # predictions, maps and patterns of a model that never saw such input.
    from reportgen import Report

    model = _own_scaling_model(first())
    pixels = np.random.default_rng(1).integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    data = Report(model, images=pixels, sections="gradcam", top_k=3).json
    pre = data["images"][0]["preprocess"]
    assert pre["mode"] == "none" and "scales pixels itself" in pre["description"], pre
    assert pre["value_range"][1] > 1.0  # raw pixels reached the model
    expected = model.predict(pixels.astype("float32"), verbose=0)
    got = [p["probability"] for p in data["images"][1]["predictions"]]
    np.testing.assert_allclose(got, np.sort(expected[1])[::-1], rtol=1e-5)


def test_normalization_first_decides_by_the_scale_it_was_adapted_on():
    rng = np.random.default_rng(0)
    raw = rng.uniform(0, 255, (32, 16, 16, 3)).astype("float32")
    on_pixels, on_unit = keras.layers.Normalization(), keras.layers.Normalization()
    on_pixels.adapt(raw)
    on_unit.adapt(raw / 255.0)
    pre = Preprocessor.resolve("auto", None, _own_scaling_model(lambda x: on_pixels(x)))
    assert pre.mode == "none" and "scales pixels itself" in pre.describe()
    assert Preprocessor.resolve("auto", None, _own_scaling_model(lambda x: on_unit(x))).mode == "unit"


def test_auto_keeps_unit_where_the_model_does_not_scale_pixels():
    # A Rescaling that is not a pixel scale (x2), or none at all: the tutorials' / 255.
    assert Preprocessor.resolve("auto", None, _own_scaling_model(keras.layers.Rescaling(2.0))).mode == "unit"
    assert Preprocessor.resolve("auto", None, _own_scaling_model(keras.layers.Identity())).mode == "unit"
    # An explicit mode always wins, and a keras.applications name keeps its own preprocess_input.
    scaled = _own_scaling_model(keras.layers.Rescaling(1 / 255))
    assert Preprocessor.resolve("unit", None, scaled).mode == "unit"
    assert Preprocessor.resolve("auto", "VGG16", scaled).mode == "caffe"


def _auto(model):
    return Preprocessor.resolve("auto", None, model)


def test_scaling_done_with_operations_or_preprocess_input_inside_the_model():
    inp = keras.Input(shape=(16, 16, 3))
    by_op = keras.Model(inp, keras.layers.Conv2D(2, 3)(inp / 255.0))
    assert _auto(by_op).mode == "none"
    tf_style = keras.Model(
        inp, keras.layers.Conv2D(2, 3)(keras.applications.mobilenet_v2.preprocess_input(inp))
    )
    assert _auto(tf_style).mode == "none"
    # Caffe style inside the model: the channel means subtracted from 0-255 pixels, no division.
    caffe = keras.Model(inp, keras.layers.Conv2D(2, 3)(keras.applications.vgg16.preprocess_input(inp)))
    pre = _auto(caffe)
    assert pre.mode == "none" and "subtracts channel means" in pre.describe()
    padded = keras.Model(
        inp, keras.layers.Conv2D(2, 3)(keras.layers.Rescaling(1 / 255)(keras.layers.ZeroPadding2D(1)(inp)))
    )
    assert _auto(padded).mode == "none"
    # A Normalization that de-normalises (invert=True) multiplies: its input is not pixels.
    inverted = keras.layers.Normalization(mean=[120.0, 110.0, 100.0], variance=[900.0] * 3, invert=True)
    assert _auto(keras.Model(inp, keras.layers.Conv2D(2, 3)(inverted(inp)))).mode == "unit"


def test_a_metadata_branch_does_not_decide_for_the_image():
    img, age = keras.Input(shape=(16, 16, 3), name="img"), keras.Input(shape=(1,), name="age")
    a = keras.layers.Normalization(mean=[45.0], variance=[100.0], name="age_norm")(age)
    for i in range(4):
        a = keras.layers.Dense(4, name=f"age_dense_{i}")(a)
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3, name="conv")(img))
    plain = keras.Model([img, age], keras.layers.Dense(2)(keras.layers.Concatenate()([x, a])))
    assert _auto(plain).mode == "unit"
    x = keras.layers.GlobalAveragePooling2D()(
        keras.layers.Conv2D(4, 3, name="conv")(keras.layers.Rescaling(1 / 255)(img))
    )
    scaled = keras.Model([img, age], keras.layers.Dense(2)(keras.layers.Concatenate()([x, a])))
    assert _auto(scaled).mode == "none"


class _Subclassed(keras.Model):
    def __init__(self, use_rescale):
        super().__init__()
        self.rescale = keras.layers.Rescaling(1 / 255)  # declared first either way
        self.conv = keras.layers.Conv2D(4, 3)
        self.pool = keras.layers.GlobalAveragePooling2D()
        self.head = keras.layers.Dense(3)
        self.use_rescale = use_rescale

    def call(self, x):
        return self.head(self.pool(self.conv(self.rescale(x) if self.use_rescale else x)))


@pytest.mark.parametrize("use_rescale, mode", [(True, "none"), (False, "unit")])
def test_a_subclassed_model_is_judged_by_what_its_call_does(use_rescale, mode):
    model = _Subclassed(use_rescale)
    model(np.zeros((1, 16, 16, 3), "float32"))
    assert _auto(model).mode == mode
