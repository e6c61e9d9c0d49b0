"""Grad-CAM sanity check (Adebayo et al. 2018): the cascading parameter-randomisation test."""

from __future__ import annotations

import reportgen  # noqa: F401

import keras
import numpy as np
import pytest
from scipy.stats import spearmanr

import digits_models as dm
from reportgen.analyses import sanity as S
from reportgen.analyses.findings.sanity import check_sanity
from reportgen.analyses.baseline import fresh_values
from reportgen.analyses.cam import find_target_layer
from reportgen.analyses.cam import heatmaps as gradcam_heatmaps


def test_rank_correlation_matches_scipy_and_handles_flat_maps():
    rng = np.random.default_rng(0)
    a, b = rng.random((6, 6)), rng.random((6, 6))
    assert S.rank_correlation(a, a) == pytest.approx(1.0)
    assert S.rank_correlation(a, 3 * a + 1) == pytest.approx(1.0)  # ranks, not values
    assert S.rank_correlation(a, -a) == pytest.approx(-1.0)
    assert S.rank_correlation(a, b) == pytest.approx(spearmanr(a.ravel(), b.ravel()).statistic)
    zero = np.zeros((6, 6))
    # A constant map ranks nothing: the correlation is undefined on either side, never 1 (a "pass" of
    # nothing).
    assert np.isnan(S.rank_correlation(zero, zero))
    assert np.isnan(S.rank_correlation(a, zero)) and np.isnan(S.rank_correlation(zero, a))


def test_cascade_groups_top_down_by_stage_and_bounded():
    model = dm.trained()
    assert S.cascade_groups(model, 6) == [
        ("dense1…out", ["dense1", "out"]),
        ("conv1…bn", ["conv1", "conv2", "bn"]),
    ]
    assert S.cascade_groups(model, 1) == [("conv1…out", ["conv1", "conv2", "bn", "dense1", "out"])]
    assert S.cascade_groups(model, 0) == []


def test_unchanged_heatmaps_give_about_1_and_a_finding(monkeypatch):
    model = dm.trained()
    layer = find_target_layer(model).path

    def unchanged(m, paths, seed, draws=None):  # "randomising" to the same weights changes nothing
        return {}

    monkeypatch.setattr(S, "randomised", unchanged)
    result = S.cascade(model, layer, dm.held_out(4))
    assert result.statistic == pytest.approx(1.0, abs=1e-6)
    found = check_sanity(result, 0.5)
    assert [(f["kind"], f["layer"], f["anchor"]) for f in found] == [
        ("gradcam_sanity", layer, "findings-sanity")
    ]


def test_trained_model_vs_randomised_copy_is_clearly_lower_and_the_model_is_untouched():
    model = dm.trained()
    before = [w.copy() for w in model.get_weights()]
    layer = find_target_layer(model).path
    x = dm.held_out(4)
    result = S.cascade(model, layer, x, seed=0)
    # the fully re-initialised model, built by hand: a copy with every layer's fresh draw (seed + 1)
    base = keras.models.clone_model(model)
    for lay in base.layers:
        if lay.weights:
            lay.set_weights(fresh_values(model.get_layer(lay.name), lay.name, 1))
    # independent truth: the original heatmaps are Grad-CAM of the untouched model
    classes = np.argmax(keras.ops.convert_to_numpy(model(x)), axis=1)
    np.testing.assert_array_equal(result.class_indices, classes)
    np.testing.assert_allclose(result.original, gradcam_heatmaps(model, layer, x, classes), atol=1e-6)
    # and the last step equals Grad-CAM of the fully re-initialised model (the baseline)
    np.testing.assert_allclose(result.heatmaps[-1], gradcam_heatmaps(base, layer, x, classes), atol=1e-5)
    assert result.correlations.shape == (2, 4)
    assert result.statistic < 0.3
    assert check_sanity(result, 0.5) == []
    for w, w0 in zip(model.get_weights(), before):  # the user's model is never modified
        np.testing.assert_array_equal(w, w0)


def _three_stage_model() -> keras.Model:
    """Stages at 16, 8 and 4 px with a skip that crosses a stage, a layer name with a space, a dense head."""
    i = keras.Input((16, 16, 3))
    a = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="stem conv")(i)
    b = keras.layers.Conv2D(6, 3, padding="same", name="c2")(a)
    x = keras.layers.MaxPooling2D()(keras.layers.Add()([a, b]))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="c3")(x)
    skip = keras.layers.AveragePooling2D(4)(a)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="c4")(x)
    x = keras.layers.Concatenate(name="join")([x, skip])
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(i, keras.layers.Dense(4, activation="softmax", name="head")(x))


def _three_stage_sequential() -> keras.Model:
    return keras.Sequential(
        [
            keras.Input((16, 16, 3)),
            keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="stem conv"),
            keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="c2"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="c3"),
            keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="c4"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(4, activation="softmax", name="head"),
        ]
    )


@pytest.mark.parametrize("build", [_three_stage_model, _three_stage_sequential])
def test_each_step_equals_gradcam_of_a_copy_randomised_by_hand_and_runs_only_above_its_layers(
    monkeypatch, build
):
    from reportgen.graph import forward

    model = build()
    x = np.random.default_rng(3).uniform(0, 1, (3, 16, 16, 3)).astype("float32")
    fed = []
    resume = forward.Reuse.resume

    def spy(self, m, inp, tapped):
        r = resume(self, m, inp, tapped)
        fed.append(None if r is None or r.feed is None else set(r.feed))
        return r

    monkeypatch.setattr(forward.Reuse, "resume", spy)
    result = S.cascade(model, "c4", x, seed=5)
    classes = np.argmax(keras.ops.convert_to_numpy(model(x)), axis=1)
    assert result.steps == ["head", "c4", "c3", "stem conv…c2"]
    for k, layers in enumerate(result.step_layers):
        done = [p for step in result.step_layers[: k + 1] for p in step]
        copy = keras.models.clone_model(model)
        copy.set_weights(model.get_weights())
        for name in done:  # the draws the cascade uses: each layer's own initialisers, seed + 1
            copy.get_layer(name).set_weights(fresh_values(model.get_layer(name), name, 6))
        np.testing.assert_allclose(result.heatmaps[k], gradcam_heatmaps(copy, "c4", x, classes), atol=1e-5)
    # The first pass records; every step starts from its tensors. Until the stem is randomised no step reads
    # the image: they start above the layers they randomise (and the stem's output for the skip).
    assert fed[0] is None and all(f is not None for f in fed[1:]) and len(fed) == 5
    image = id(model) if isinstance(model, keras.Sequential) else id(model.inputs[0])
    assert [image in f for f in fed[1:]] == [False, False, False, True]
