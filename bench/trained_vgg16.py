"""A trained VGG16-size network, made offline: the yardstick for the audit's false-alarm rate.

ImageNet weights are a download away, and benchmarks run without a network.
So this trains ``keras.applications.VGG16`` (the whole 14.7M-parameter
convolutional base, 13 conv layers, from a fresh initialisation) with a small
dense head on scikit-learn's bundled handwritten digits, upscaled to 32x32 RGB
and lightly augmented (shifts), with AdamW. The result is a VGG16-size network
whose every layer was trained on real images: what a reviewer brings, at a
size the 2-core CI machine can make in minutes. It is cached in
``bench/.cache/vgg16-digits.keras`` and re-used.

Why weight decay: a network trained for long (ImageNet: ~100 epochs with
weight decay) has forgotten its initial noise; a few epochs of plain Adam
leave most weights where the initialiser put them (measured: std ratios of
1.00-1.02, and the 512x128 head statistically indistinguishable from a fresh
draw), which no trained model a reviewer brings looks like. Decoupled weight
decay with ``learning_rate * weight_decay * steps`` of about 1 decays the
initial noise as a long training does, in minutes.

Usage::

    python bench/trained_vgg16.py            # train (or re-use) and print the held-out accuracy
    python bench/trained_vgg16.py --force    # train again
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import reportgen  # noqa: E402,F401

import numpy as np  # noqa: E402

CACHE = Path(__file__).resolve().parent / ".cache"
PATH = CACHE / "vgg16-digits.keras"
SIZE = 32


def digits_rgb(size: int = SIZE) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as uint8 RGB images of ``size`` px, and their labels."""
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    imgs = np.stack(
        [
            np.asarray(
                Image.fromarray((im * (255.0 / 16.0)).astype(np.uint8)).resize((size, size), Image.BILINEAR)
            )
            for im in d.images
        ]
    )
    return np.repeat(imgs[..., None], 3, axis=-1), d.target.astype(np.int64)


def split(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    cut = int(0.85 * n)
    return order[:cut], order[cut:]


def build(size: int = SIZE):
    import keras

    base = keras.applications.VGG16(weights=None, include_top=False, input_shape=(size, size, 3))
    inp = keras.Input((size, size, 3), name="image")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="rescale")(inp)
    x = base(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dense(128, activation="relu", name="fc")(x)
    out = keras.layers.Dense(10, activation="softmax", name="predictions")(x)
    return keras.Model(inp, out, name="vgg16_digits")


def train(epochs: int = 30, seed: int = 0, verbose: int = 2):
    import keras

    x, y = digits_rgb()
    tr, te = split(len(x), seed)
    keras.utils.set_random_seed(seed)
    model = build()
    model.compile(
        keras.optimizers.AdamW(1e-4, weight_decay=6.0),
        "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    rng = np.random.default_rng(seed)

    def shifted(batch: np.ndarray) -> np.ndarray:
        out = np.empty_like(batch)
        for i, im in enumerate(batch):
            dy, dx = rng.integers(-4, 5, size=2)
            out[i] = np.roll(np.roll(im, dy, axis=0), dx, axis=1)
        return out

    t0 = time.perf_counter()
    for epoch in range(epochs):
        order = rng.permutation(tr)
        model.fit(shifted(x[order]).astype("float32"), y[order], epochs=1, batch_size=32, verbose=0)
        acc = model.evaluate(x[te].astype("float32"), y[te], verbose=0)[1]
        if verbose:
            print(
                f"epoch {epoch + 1}: held-out accuracy {acc:.4f} ({time.perf_counter() - t0:.0f} s)",
                flush=True,
            )
    CACHE.mkdir(parents=True, exist_ok=True)
    model.save(PATH)
    return model, float(acc)


def ensure(force: bool = False) -> Path:
    """The cached trained model's path, training it first when missing."""
    if force or not PATH.exists():
        train()
    return PATH


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--force", action="store_true")
    p.add_argument("--epochs", type=int, default=30)
    args = p.parse_args()
    if args.force or not PATH.exists():
        train(args.epochs)
    print(PATH)


if __name__ == "__main__":
    main()
