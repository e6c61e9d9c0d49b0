"""The analyses are functions whose parameters name their inputs (issue 28): the graph comes from the
signatures, the results are frozen, reading never computes, a failure is never run twice, and a new
analysis is one function (the worked example of docs/architecture.md, run here)."""

from __future__ import annotations

import reportgen  # noqa: F401  (quiet TensorFlow before keras)

import dataclasses
import inspect

import keras
import numpy as np
import pytest

from conftest import small_cnn
from reportgen import scheduler, steps
from reportgen.context import Context, LoadedModel, Options
from reportgen.scheduler import ANALYSES, GIVEN, NotComputed, analysis, compute, schedule


def test_every_analysis_needs_exactly_what_its_signature_names():
    """One declaration: the needs are the parameters, and every parameter is given or an analysis."""
    for name, step in ANALYSES.items():
        params = list(inspect.signature(step.function).parameters)
        assert step.needs == tuple(p for p in params if p not in GIVEN), name
        for p in step.needs:
            assert p in ANALYSES, f"{name} reads '{p}', which no analysis computes"
    # the report's analyses are the functions of reportgen.steps, no more, no fewer
    defined = {
        n for n, f in vars(steps).items() if callable(f) and getattr(f, "__module__", "") == steps.__name__
    }
    assert {n for n in ANALYSES if ANALYSES[n].function.__module__ == steps.__name__} == defined - {
        "KernelGrids",
        "FeatureMaps",
    }


def test_the_order_puts_each_analysis_after_its_inputs_and_the_file_readers_first():
    order = schedule(["sanity", "faithfulness", "patterns", "kernel_grids", "robustness"])
    for i, name in enumerate(order):
        for need in ANALYSES[name].needs:
            assert order.index(need) < i, (need, name)
    early = [n for n in order if ANALYSES[n].early]
    assert order[: len(early)] == early and {"images", "preprocessor", "folder"} <= set(early)
    assert "weights" in order and not ANALYSES["weights"].early


def test_results_are_frozen_and_reading_never_computes(monkeypatch):
    model = small_cnn()
    loaded = LoadedModel(model, "m", "m", None)
    calls = []
    real = ANALYSES["weights"]
    monkeypatch.setitem(
        ANALYSES,
        "weights",
        dataclasses.replace(real, function=lambda **kw: calls.append(1) or real.function(**kw)),
    )
    found = compute(loaded, Options(), ["weight_findings"])
    assert calls == [1] and found.ran("weights") and found.ran("weight_findings")
    for _ in range(3):
        found.weights  # noqa: B018
        found.get("weights")
    assert calls == [1]  # read three times, computed once
    with pytest.raises(dataclasses.FrozenInstanceError):
        found.values = {}  # type: ignore[misc]
    with pytest.raises(TypeError):
        found.values["weights"] = None  # type: ignore[index]
    with pytest.raises(NotComputed, match="not computed"):
        found.cams  # noqa: B018  (not asked for: reading it says so, it does not start it)
    assert found.get("cams") is None and "cams" not in found.values


def test_a_failed_analysis_fails_what_needs_it_and_never_runs_again(monkeypatch):
    loaded = LoadedModel(small_cnn(), "m", "m", None)
    calls = []

    def broken(model, options):
        calls.append(1)
        raise RuntimeError("no weights here")

    monkeypatch.setitem(
        ANALYSES,
        "weights",
        dataclasses.replace(ANALYSES["weights"], function=broken, needs=(), params=("model", "options")),
    )
    first = compute(loaded, Options(), ["weight_findings"])
    assert calls == [1]
    assert first.failed["weights"].message == "no weights here"
    assert first.failed["weight_findings"] == first.failed["weights"]  # failed with it, not run
    again = compute(loaded, Options(), ["weight_findings", "weights"], given=first)
    assert calls == [1] and again.get("weights") is None
    with pytest.raises(NotComputed, match="failed: no weights here"):
        again.weights  # noqa: B018


def test_a_report_reads_its_settings_from_the_results_not_from_its_json():
    """settings.pattern_steps is what the ascent used per layer, taken from Results.patterns."""
    from reportgen.report import _settings, run_sections

    ctx = run_sections(
        LoadedModel(small_cnn(), "m", "m", None),
        Options(sections=("patterns", "kernels", "gradcam"), pattern_filters=2, faithfulness_steps=0),
    )
    settings = _settings(ctx)
    used = {p: lp.result.steps for p, lp in ctx.analyses.patterns.layers.items()}
    assert settings["pattern_steps"] == (next(iter(used.values())) if len(set(used.values())) == 1 else used)
    assert (
        settings["gradcam_layer"]
        == ctx.analyses.cams.layer
        == ctx.results["gradcam"].json["gradcam"]["layer"]
    )
    assert settings["kernel_channel"] == {p: g["channel"] for p, g in ctx.analyses.kernel_grids.grids.items()}
    assert settings["layers"] == "not used: the features section did not run"


# --- the worked example of docs/architecture.md: a new analysis is one function --------------------------


@pytest.fixture
def mean_activation():
    """The example, registered as a plug-in would be, and taken out again after the test."""

    @analysis
    def mean_activation(model, images: list, feeds) -> dict[str, float]:
        """Each feature-map layer's mean activation over the report's images."""
        from reportgen.analyses import feature_maps as F

        batch = np.stack([im.input for im in images])
        layers = F.compute(model, F.select_layers(model, None), batch, feeds)
        return {L.path: float(L.channel_mean.mean()) for L in layers}

    yield mean_activation
    del ANALYSES["mean_activation"]


def test_a_new_analysis_is_one_function(mean_activation):
    """Its needs come from its signature; the scheduler runs its inputs first; its values equal a plain
    Keras sub-model's mean on the very input the report fed."""
    assert ANALYSES["mean_activation"].needs == ("images", "feeds")
    rng = np.random.default_rng(0)
    samples = [(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8), str(i)) for i in range(3)]
    model = small_cnn()
    ctx = Context.computed(
        LoadedModel(model, "m", "m", None, sample_images=samples), Options(), ["mean_activation"]
    )
    got = ctx.analyses.mean_activation
    x = np.stack([im.input for im in ctx.analyses.images])
    np.testing.assert_allclose(x, np.stack([s for s, _ in samples]) / 255.0, atol=1e-6)  # unit scaling
    assert list(got) == ["conv_a", "pool_a", "conv_b"]
    for name, value in got.items():
        sub = keras.Model(model.inputs, model.get_layer(name).output)
        assert value == pytest.approx(float(np.mean(keras.ops.convert_to_numpy(sub(x)))), rel=1e-5)
    assert scheduler.schedule(["mean_activation"])[-1] == "mean_activation"
