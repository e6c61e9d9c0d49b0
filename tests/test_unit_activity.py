"""The unit-activity reductions: what a tap keeps of a map, checked against NumPy on the map itself."""

from __future__ import annotations

import reportgen  # noqa: F401

import keras
import numpy as np

from reportgen import backend, config
from reportgen.analyses import activations as A
from reportgen.analyses.findings.activations import activity_findings


def test_reduction_equals_numpy_on_the_map():
    rng = np.random.default_rng(0)
    a = np.maximum(rng.normal(0, 1, (3, 5, 4, 6)), 0).astype("float32")
    a[1, :, :, 2] = 0.0  # a channel silent on one image
    peaks, zeros, finite, nonfinite, _sat = (
        backend.numpy(v) for v in A.unit_reduction("relu", 0.01)(keras.ops.convert_to_tensor(a))
    )
    np.testing.assert_allclose(peaks, np.abs(a).max(axis=(1, 2)))
    expected = (a == 0).reshape(3, -1).sum(axis=1)
    assert zeros.tolist() == expected.tolist()
    assert finite.tolist() == [a[0].size] * 3 and nonfinite.tolist() == [0, 0, 0]


def test_saturation_counts_finite_outputs_only():
    a = np.array([[np.nan, 0.999, np.inf, 0.0]], dtype="float32")
    _p, _z, finite, nonfinite, saturated = (
        backend.numpy(v) for v in A.unit_reduction("tanh", 0.01)(keras.ops.convert_to_tensor(a))
    )
    assert int(saturated.sum()) == 1 and int(finite.sum()) == 2 and int(nonfinite.sum()) == 2


def test_a_unit_that_output_nan_is_never_called_silent():
    """Seven images on which a ReLU conv is silent and one on which it outputs NaN: not 'inactive'."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6, 6, 1)), keras.layers.Conv2D(2, 3, activation="relu", name="c")])
    model.get_layer("c").bias.assign([-5.0, -5.0])
    x = np.zeros((8, 6, 6, 1), "float32")
    x[3] = np.nan
    activity = A.unit_activity(model, A.batches_of(x, 4))
    ua = activity.layers["c"]
    assert np.isnan(ua.peaks).all() and ua.active_images.tolist() == [1, 1]
    found = activity_findings(model, activity, config.Thresholds())
    assert not [f for f in found if f["kind"] in ("inactive_unit", "inactive_layer")]
    x[3] = 0.0  # the same without the NaN image: now every unit is silent on all 8 images
    found = activity_findings(model, A.unit_activity(model, A.batches_of(x, 4)), config.Thresholds())
    assert [f for f in found if f["kind"] in ("inactive_unit", "inactive_layer")]


def test_batches_are_sized_at_the_images_size_when_the_model_leaves_it_open():
    """A (None, None, 3) model is fed 224 px images: its batches are those of the same model built at 224."""

    def build(size):
        keras.utils.set_random_seed(0)
        return keras.Sequential(
            [
                keras.Input((size, size, 3)),
                keras.layers.Conv2D(64, 3, padding="same", activation="relu"),
                keras.layers.Conv2D(128, 3, padding="same", activation="relu"),
            ]
        )

    fixed = A.batch_size(build(224))
    assert fixed < 64
    assert A.batch_size(build(None)) == fixed
