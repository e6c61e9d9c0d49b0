"""Warnings raised while a report runs (issue 32): the known harmless ones dropped, an unknown one kept on
page 1 and still shown once."""

from __future__ import annotations

import reportgen  # noqa: F401  (quiets TensorFlow before it is imported)

import warnings

import keras
import numpy as np

from reportgen import Report, warned


@keras.saving.register_keras_serializable("test_issue32")
class Grumbles(keras.layers.Layer):
    """An identity that warns whenever it runs, once with a message Keras really prints and once with its
    own."""

    def call(self, x):
        warnings.warn("The structure of `inputs` doesn't match the expected structure.", UserWarning)
        warnings.warn("Grumbles: this layer was never meant for inference", UserWarning)
        return x


def test_known_warnings_are_dropped_and_unknown_ones_become_notes():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.Conv2D(2, 3, name="conv"),
            Grumbles(name="g"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )
    pixels = np.random.default_rng(0).integers(0, 256, (8, 8, 3)).astype(np.uint8)
    with warnings.catch_warnings(record=True) as raised:
        warnings.simplefilter("default")
        data = Report(model, images=[pixels], sections="features", quiet=True).json
    notes = [n["message"] for n in data["notes"] if n["kind"] == "keras_warning"]
    assert len(notes) == 1 and "Grumbles: this layer was never meant for inference" in notes[0]
    shown = [str(w.message) for w in raised]
    assert shown.count("Grumbles: this layer was never meant for inference") == 1
    assert not any(warned.known(m) for m in shown)
