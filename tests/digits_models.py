"""A small CNN trained for a few seconds on real data (scikit-learn's bundled digits).

Shared by the findings, sanity-check and compare tests: a healthy trained
model, from which each test derives copies carrying one defect on purpose.
"""

from __future__ import annotations

import reportgen  # noqa: F401  (quiets TensorFlow before it is imported)

from functools import lru_cache

import keras
import numpy as np


@lru_cache(maxsize=1)
def digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.images / 16.0).astype("float32")[..., None], d.target.astype("int64")


def build(seed: int = 1) -> keras.Model:
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv1"),
            keras.layers.Conv2D(32, 3, padding="same", name="conv2"),
            keras.layers.BatchNormalization(name="bn"),
            keras.layers.Activation("relu", name="relu2"),
            keras.layers.Flatten(name="flat"),
            keras.layers.Dense(64, activation="relu", name="dense1"),
            keras.layers.Dense(10, activation="softmax", name="out"),
        ],
        name="digits_cnn",
    )


@lru_cache(maxsize=1)
def _trained_weights() -> tuple[list, float]:
    x, y = digits()
    model = build()
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x[:1500], y[:1500], epochs=8, batch_size=32, verbose=0)
    accuracy = float(model.evaluate(x[1500:], y[1500:], verbose=0)[1])
    return [w.copy() for w in model.get_weights()], accuracy


def trained() -> keras.Model:
    """A fresh model object holding the trained weights (each call: an independent copy)."""
    weights, _ = _trained_weights()
    model = build()
    model.set_weights(weights)
    return model


def held_out_accuracy() -> float:
    return _trained_weights()[1]


def held_out(n: int = 16) -> np.ndarray:
    x, _ = digits()
    return x[1500 : 1500 + n]
