"""Shared fixtures: small models built in the test, a CLI runner, a temp report folder."""

from __future__ import annotations

import reportgen  # noqa: F401  (quiets TensorFlow before it is imported)

import io
import contextlib
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import pytest

import reportgen.painters  # noqa: F401  (registers the painters: tests draw a section's figures with draw())
from reportgen.cli import main


@dataclass
class CliResult:
    status: int
    stdout: str
    stderr: str


def run_cli(*args: str) -> CliResult:
    """Run ``reportgen ARGS`` in-process; returns exit status, stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main([str(a) for a in args])
    return CliResult(status, out.getvalue(), err.getvalue())


@pytest.fixture
def cli():
    """Run ``reportgen ARGS`` in-process; returns exit status, stdout and stderr."""
    return run_cli


def small_cnn(
    input_shape=(16, 16, 3), classes: int = 4, seed: int = 0, name: str = "small_cnn"
) -> keras.Model:
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input(input_shape),
            keras.layers.Conv2D(8, 3, activation="relu", padding="same", name="conv_a"),
            keras.layers.MaxPooling2D(2, name="pool_a"),
            keras.layers.Conv2D(12, 3, activation="relu", padding="same", name="conv_b"),
            keras.layers.GlobalAveragePooling2D(name="gap"),
            keras.layers.Dense(classes, activation="softmax", name="head"),
        ],
        name=name,
    )


def nested_cnn(seed: int = 0) -> keras.Model:
    """A transfer-learning shape: a functional backbone held as one layer of an outer model."""
    keras.utils.set_random_seed(seed)
    inner_in = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(6, 3, activation="relu", name="block1_conv1")(inner_in)
    x = keras.layers.MaxPooling2D(2, name="block1_pool")(x)
    x = keras.layers.Conv2D(10, 3, activation="relu", name="block2_conv1")(x)
    backbone = keras.Model(inner_in, x, name="backbone")
    inp = keras.Input((16, 16, 3))
    y = keras.layers.Rescaling(1 / 255.0, name="rescale")(inp)
    y = backbone(y)
    y = keras.layers.Flatten(name="flatten")(y)
    y = keras.layers.Dense(5, activation="softmax", name="classifier")(y)
    return keras.Model(inp, y, name="transfer")


@pytest.fixture
def small_model():
    return small_cnn()


@pytest.fixture
def nested_model():
    return nested_cnn()


@pytest.fixture
def saved_small(tmp_path):
    """A small CNN saved as ``small-model.keras`` (file stem names the report)."""
    path = tmp_path / "small-model.keras"
    model = small_cnn()
    # make trained-looking weights: spread the kernels out, deterministic
    rng = np.random.default_rng(1)
    for layer in model.layers:
        for var in layer.weights:
            var.assign(rng.normal(0, 0.3, size=var.shape).astype("float32"))
    model.save(path)
    return path


# --- slow models and reports, built once for the tests that only read them ------------------------


@pytest.fixture(scope="session")
def vgg16() -> keras.Model:
    """``keras.applications.VGG16(weights=None)`` with its top (138 M parameters, seconds to build).

    Shared: only for tests that read its layers; a test that changes weights builds its own."""
    return keras.applications.VGG16(weights=None)


@pytest.fixture(scope="session")
def mobilenet_v3_small_report(tmp_path_factory) -> tuple[CliResult, Path]:
    """``reportgen mobilenet_v3_small --weights none``, every section, JSON and HTML, at small pattern and
    feature settings: (the command's result, the report folder). Read by test_zoo and test_browser."""
    out = tmp_path_factory.mktemp("mobilenet_v3_small")
    result = run_cli(
        "mobilenet_v3_small",
        "--weights",
        "none",
        "--format",
        "json",
        "--format",
        "html",
        "--out",
        out,
        "--quiet",
        "--pattern-steps",
        "1",
        "--pattern-filters",
        "4",
        "--feature-channels",
        "8",
    )
    return result, out / "mobilenet_v3_small"
