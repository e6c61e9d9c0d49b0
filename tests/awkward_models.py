"""Models we did not design for: subclassed, dense outputs, several outputs or inputs, odd names, mixed
precision.

Each builder returns a small model that runs in well under a second, so the
tests can afford a full report on each.
"""

from __future__ import annotations

import reportgen  # noqa: F401

import keras
import numpy as np

ODD = "<img src=x onerror=alert(1)>"


@keras.saving.register_keras_serializable(package="reportgen_tests")
class MiniHED(keras.Model):
    """A HED-style edge detector: VGG-like conv blocks kept in ``keras.Sequential`` attributes,
    a 1x1 side conv per block, the side outputs resized to the input and fused by a 1x1 conv."""

    def __init__(self, widths=(4, 8, 8), **kwargs):
        super().__init__(**kwargs)
        self.widths = tuple(widths)
        self.blocks = []
        for i, w in enumerate(self.widths):
            layers = [] if i == 0 else [keras.layers.MaxPooling2D(2, name=f"block{i + 1}_pool")]
            layers += [
                keras.layers.Conv2D(w, 3, padding="same", activation="relu", name=f"block{i + 1}_conv{j + 1}")
                for j in range(2)
            ]
            block = keras.Sequential(layers, name=f"block{i + 1}")
            setattr(self, f"block{i + 1}", block)
            self.blocks.append(block)
        self.sides = [keras.layers.Conv2D(1, 1, name=f"side{i + 1}") for i in range(len(self.widths))]
        self.fuse = keras.layers.Conv2D(1, 1, activation="sigmoid", name="fuse")

    def call(self, x):
        h, w = x.shape[1], x.shape[2]
        sides = []
        for block, side in zip(self.blocks, self.sides):
            x = block(x)
            s = side(x)
            if s.shape[1] != h:
                s = self.resize(s, (h, w))
            sides.append(s)
        return self.fuse(keras.ops.concatenate(sides, axis=-1))

    def resize(self, s, size):
        return keras.ops.image.resize(s, size, interpolation="bilinear")

    def get_config(self):
        return {**super().get_config(), "widths": list(self.widths)}


class TFResizeHED(MiniHED):
    """The issue's example exactly: ``tf.image.resize`` inside ``call`` (TensorFlow backend only)."""

    def resize(self, s, size):
        import tensorflow as tf

        return tf.image.resize(s, size)


def hed(seed: int = 0, size: int = 32, cls=MiniHED) -> keras.Model:
    keras.utils.set_random_seed(seed)
    model = cls(name="mini_hed")
    model(np.zeros((1, size, size, 3), "float32"))
    _spread(model, seed)
    return model


def _spread(model: keras.Model, seed: int) -> None:
    """Trained-looking weights (spread out, positive biases so the ReLUs fire)."""
    rng = np.random.default_rng(seed)
    for v in model.weights:
        if "kernel" in v.path:
            v.assign(rng.normal(0, 0.4, v.shape).astype("float32"))
        elif "bias" in v.path:
            v.assign(rng.uniform(0.05, 0.2, v.shape).astype("float32"))


def segmentation(classes: int = 3, seed: int = 0, size: int = 24) -> keras.Model:
    """A per-pixel classifier: encoder, upsampling, a softmax over classes at every pixel."""
    keras.utils.set_random_seed(seed)
    inp = keras.Input((size, size, 3), name="image")
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="enc1")(inp)
    x = keras.layers.MaxPooling2D(2, name="pool")(x)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="enc2")(x)
    x = keras.layers.UpSampling2D(2, name="up")(x)
    out = keras.layers.Conv2D(classes, 1, activation="softmax", name="pixels")(x)
    model = keras.Model(inp, out, name="segmenter")
    _spread(model, seed)
    return model


def depth_map(seed: int = 0, size: int = 24) -> keras.Model:
    """A dense regression output (depth): one linear channel per pixel."""
    keras.utils.set_random_seed(seed)
    inp = keras.Input((size, size, 3))
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="c1")(inp)
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="c2")(x)
    out = keras.layers.Conv2D(1, 1, name="depth")(x)
    model = keras.Model(inp, out, name="depth_net")
    _spread(model, seed)
    return model


def multi_output(seed: int = 0, size: int = 24) -> keras.Model:
    """Two heads: class scores and an edge map."""
    keras.utils.set_random_seed(seed)
    inp = keras.Input((size, size, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="trunk1")(inp)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="trunk2")(x)
    g = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    cls = keras.layers.Dense(4, activation="softmax", name="classes")(g)
    edges = keras.layers.Conv2D(1, 1, activation="sigmoid", name="edges")(x)
    model = keras.Model(inp, {"classes": cls, "edges": edges}, name="two_heads")
    _spread(model, seed)
    return model


def image_and_metadata(seed: int = 0, size: int = 20) -> keras.Model:
    """An image plus a metadata vector, merged before the classifier."""
    keras.utils.set_random_seed(seed)
    img = keras.Input((size, size, 3), name="image")
    meta = keras.Input((5,), name="meta")
    x = keras.layers.Conv2D(6, 3, activation="relu", padding="same", name="conv1")(img)
    x = keras.layers.Conv2D(6, 3, activation="relu", padding="same", name="conv2")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    m = keras.layers.Dense(6, activation="relu", name="meta_dense")(meta)
    x = keras.layers.Concatenate(name="merge")([x, m])
    out = keras.layers.Dense(3, activation="softmax", name="out")(x)
    model = keras.Model([img, meta], out, name="image_meta")
    _spread(model, seed)
    return model


def odd_names(seed: int = 0) -> keras.Model:
    """Every layer name Keras accepts that breaks naive code: markup, spaces, ampersands, unicode."""
    keras.utils.set_random_seed(seed)
    inp = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(6, 3, activation="relu", padding="same", name=ODD)(inp)
    x = keras.layers.MaxPooling2D(2, name="pool & <b>bold<b>")(x)
    x = keras.layers.Conv2D(8, 3, activation="relu", padding="same", name="conv 2 \"quoted\" 'x'")(x)
    x = keras.layers.Conv2D(8, 3, activation="relu", padding="same", name="层-é-🙂")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    out = keras.layers.Dense(3, activation="softmax", name="<script>alert(2)<\\script>")(x)
    model = keras.Model(inp, out, name="odd <names>")
    _spread(model, seed)
    return model


def with_operations(seed: int = 0) -> keras.Model:
    """A functional graph holding operations that are not layers: ``x + y`` and ``ops.hard_swish``."""
    keras.utils.set_random_seed(seed)
    inp = keras.Input((16, 16, 3))
    a = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="a")(inp)
    b = keras.layers.Conv2D(8, 3, padding="same", name="b")(a)
    x = a + b
    x = keras.ops.hard_swish(x)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="c")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    out = keras.layers.Dense(3, activation="softmax", name="out")(x)
    model = keras.Model(inp, out, name="with_ops")
    _spread(model, seed)
    return model


def mixed_precision(policy: str = "mixed_float16", seed: int = 0) -> keras.Model:
    """A small CNN built under a mixed-precision policy (float32 weights, 16-bit compute)."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        keras.utils.set_random_seed(seed)
        model = keras.Sequential(
            [
                keras.Input((16, 16, 3)),
                keras.layers.Conv2D(8, 3, activation="relu", padding="same", name="conv_a"),
                keras.layers.MaxPooling2D(2, name="pool"),
                keras.layers.Conv2D(12, 3, activation="relu", padding="same", name="conv_b"),
                keras.layers.GlobalAveragePooling2D(name="gap"),
                keras.layers.Dense(4, name="logits"),
                keras.layers.Activation("softmax", dtype="float32", name="probs"),
            ],
            name=f"mp_{policy}",
        )
    finally:
        keras.config.set_dtype_policy(previous)
    _spread(model, seed)
    return model


class TwoHeads(keras.Model):
    """Subclassed, two outputs: class scores from a short branch; an edge map from a deeper one, called
    last."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.stem = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="stem")
        self.cls_conv = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="cls_conv")
        self.gap = keras.layers.GlobalAveragePooling2D(name="gap")
        self.classes = keras.layers.Dense(4, activation="softmax", name="classes")
        self.edge_conv = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="edge_conv")
        self.edges = keras.layers.Conv2D(1, 1, activation="sigmoid", name="edges")

    def call(self, x):
        x = self.stem(x)
        scores = self.classes(self.gap(self.cls_conv(x)))
        return [scores, self.edges(self.edge_conv(x))]


def subclassed_two_heads(seed: int = 0, size: int = 20) -> keras.Model:
    keras.utils.set_random_seed(seed)
    model = TwoHeads(name="two_heads_subclassed")
    model(np.zeros((1, size, size, 3), "float32"))
    _spread(model, seed)
    return model


def binary(seed: int = 0, size: int = 16) -> keras.Model:
    """A two-class classifier with ONE sigmoid unit (cats vs dogs)."""
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((size, size, 3)),
            keras.layers.Conv2D(6, 3, activation="relu", padding="same", name="conv1"),
            keras.layers.Conv2D(6, 3, activation="relu", padding="same", name="conv2"),
            keras.layers.GlobalAveragePooling2D(name="gap"),
            keras.layers.Dense(1, activation="sigmoid", name="is_dog"),
        ],
        name="binary",
    )
    _spread(model, seed)
    return model


def images(n: int = 2, size: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 1, (n, size, size, 3)).astype("float32")


class LibraryDetector(keras.Model):
    """A face detector as a library writes it (MTCNN's R-Net shape): its code builds each layer by hand in a
    ``build()`` that takes no shape, then sets trained weights from a bundled file. Keras records no input
    shape for it; two outputs, a linear box regression first and a face/no-face softmax second."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.conv1 = keras.layers.Conv2D(8, 3, name="conv1")
        self.prelu1 = keras.layers.PReLU(shared_axes=[1, 2], name="prelu1")
        self.pool1 = keras.layers.MaxPooling2D(2, name="pool1")
        self.conv2 = keras.layers.Conv2D(16, 3, name="conv2")
        self.prelu2 = keras.layers.PReLU(shared_axes=[1, 2], name="prelu2")
        self.flat = keras.layers.Flatten(name="flatten")
        self.fc = keras.layers.Dense(32, name="fc")
        self.box = keras.layers.Dense(4, name="bbox_reg")
        self.cls = keras.layers.Dense(2, activation="softmax", name="face_prob")

    def build(self, input_shape=None):
        self.conv1.build((None, 24, 24, 3))
        self.prelu1.build((None, 22, 22, 8))
        self.conv2.build((None, 11, 11, 8))
        self.prelu2.build((None, 9, 9, 16))
        self.fc.build((None, 9 * 9 * 16))
        self.box.build((None, 32))
        self.cls.build((None, 32))
        self.built = True

    def call(self, x):
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.fc(self.flat(self.prelu2(self.conv2(x))))
        return [self.box(x), self.cls(x)]


def library_detector(weights_file: str | None = None) -> keras.Model:
    """``LibraryDetector()``, ``build()`` with no shape, then ``set_weights`` from an ``.npz`` (as its library
    does); without a file its weights stay freshly initialised."""
    keras.utils.set_random_seed(0)
    model = LibraryDetector(name="rnet")
    model.build()
    if weights_file:
        stored = np.load(weights_file)
        model.set_weights([stored[f"w{i}"] for i in range(len(stored.files))])
    return model


def save_trained_like(model: keras.Model, path, seed: int = 1) -> None:
    """Weights no initialiser draws (wider than Glorot's interval), as training leaves them, into an
    ``.npz``."""
    rng = np.random.default_rng(seed)
    np.savez(
        path,
        **{
            f"w{i}": rng.normal(0.0, 0.3, w.shape).astype("float32")
            for i, w in enumerate(model.get_weights())
        },
    )
