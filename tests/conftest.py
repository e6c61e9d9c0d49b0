"""Shared fixtures: small models built in the test, a CLI runner, a temp report folder; and how the
suite runs on two pytest-xdist workers (which tests share a worker, in which order, on how many threads)
and which tests are marked ``slow``."""

from __future__ import annotations

import reportgen  # noqa: F401  (quiets TensorFlow before it is imported)

import io
import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

import reportgen.painters  # noqa: F401  (registers the painters: tests draw a section's figures with draw())
from reportgen.cli import main

if TYPE_CHECKING:
    import keras

# Keras, and with it TensorFlow, is imported by the first test that needs it, not here: under pytest-xdist
# the controlling process only hands tests out, and importing TensorFlow there would hold up the workers'
# start by seconds.


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
    import keras

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
    import keras

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
    import keras

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


# --- two workers: the README's command runs the suite on two pytest-xdist workers -----------------------
#
# pyproject.toml's addopts: ``-n 2 --dist loadfile --no-loadscope-reorder``; ``-n 0`` runs the tests in
# one process. Each test file goes to one worker whole, so a module-scoped fixture is built once; the files
# below, which read one session fixture, go to one worker together, for the same reason.
SHARED_SESSION_FIXTURE = {
    "test_zoo.py": "mobilenet_v3_small_report",
    "test_browser.py": "mobilenet_v3_small_report",
    "test_gradcam.py": "vgg16",
    "test_graph.py": "vgg16",
}

# The slowest files first, so that a worker's last file is a short one and the two finish together; files not
# named here follow in their usual order. Seconds: the whole suite in one process (-n 0), 2 cores, torch
# installed as in CI, 284 s.
SLOWEST_FILES_FIRST = (
    "test_hub_families.py",  # 30
    "test_backends.py",  # 26 (three probe processes at once)
    "test_transformers.py",  # 25
    "test_browser.py",  # 17, and test_zoo.py's 7 on the same worker
    "test_awkward_models.py",  # 22
    "test_robustness.py",  # 19
    "test_dataset_review.py",  # 17
    "test_many_models.py",  # 14
    "test_messages.py",  # 12
    "test_fuzz.py",  # 12
    "test_demo.py",  # 8
    "test_pages.py",  # 7
    "test_filter_patterns.py",  # 6
    "test_architecture.py",  # 6
    "test_hub_loading.py",  # 6
    "test_dataset.py",  # 5
    "test_layout.py",  # 5
    "test_cli_and_loading.py",  # 5
    "test_provenance.py",  # 4
    "test_weights_and_layers.py",  # 4
    "test_alpha.py",  # 4
    "test_gradcam.py",  # 3 with test_graph.py
)


def _workers(config: pytest.Config) -> int:
    n = getattr(config.option, "numprocesses", None)  # pytest-xdist's -n, "auto" already made a number
    return n if isinstance(n, int) else 0


def pytest_configure(config: pytest.Config) -> None:
    """Under ``-n N`` (N > 1), before the workers start: TensorFlow's and the BLAS libraries' thread pools
    get the cores divided by N, so that the workers do not take turns on cores their spinning pools hold
    (130 tests, 2 cores, 2 workers: 77 s with two threads each, 62 s with one). The tests' own subprocesses
    inherit it."""
    workers = _workers(config)
    if workers > 1 and not hasattr(config, "workerinput"):
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        each = str(max(1, cores // workers))
        for var in (
            "TF_NUM_INTRAOP_THREADS",
            "TF_NUM_INTEROP_THREADS",
            "OMP_NUM_THREADS",
            "OPENBLAS_NUM_THREADS",
        ):
            os.environ.setdefault(var, each)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """``--dist loadfile``, with the files of SHARED_SESSION_FIXTURE grouped as one file."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class SharedFixtureFiles(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            file = super()._split_scope(nodeid)
            return SHARED_SESSION_FIXTURE.get(file.rsplit("/", 1)[-1], file)

    return SharedFixtureFiles(config, log)


@pytest.hookimpl(tryfirst=True)  # before -m reads the marks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _is_slow(item):
            item.add_marker(pytest.mark.slow)
    if hasattr(config, "workerinput"):  # a worker: the order in which the files are handed out
        rank = {name: i for i, name in enumerate(SLOWEST_FILES_FIRST)}
        items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: a file keeps its order


# --- slow: `python3 -m pytest -m "not slow"` runs the rest, for a quick loop; CI runs every test -----------
#
# The tests that take seconds each (one process, 2 cores): a training run, a big or hub model, a subprocess
# that imports a backend, a browser. {file: the test functions (every parameter), or ALL: the whole file,
# where a module fixture costs the seconds}. Marked here, in one table, rather than in each file.
ALL = frozenset({"*"})
SLOW = {
    "test_hub_families.py": ALL,  # one report of each keras-hub family, 30 s
    "test_transformers.py": ALL,  # a ViT trained for its fixture, and every keras-hub backbone
    "test_browser.py": ALL,  # chromium, and the two reports it opens
    "test_zoo.py": ALL,  # MobileNetV3Small's full report, InceptionV3
    "test_backends.py": {
        "test_every_backend_gives_the_same_numbers",
        "test_a_report_on_another_backend_never_imports_tensorflow",
    },
    "test_many_models.py": {
        "test_ray_runs_one_task_per_model_on_a_local_instance",
        "test_jobs_2_uses_two_processes_and_equals_the_sequential_run",
    },
    "test_fuzz.py": {"test_case_behaves_as_promised", "test_sigterm_stops_jobs_workers_with_the_parent"},
    "test_demo.py": {"test_demo_trains_offline_and_writes_a_complete_report"},
    "test_robustness.py": {
        "test_jobs_1_and_jobs_2_give_identical_numbers",
        "test_other_backends_agree_with_tensorflow_within_0_002",
    },
    "test_messages.py": {"test_ctrl_c_in_a_run_of_several_models"},
    "test_architecture.py": {"test_a_json_only_report_imports_no_plotting_or_pdf_code"},
    "test_layout.py": {"test_a_small_vit_report_keeps_headings_with_their_content_and_fills_its_pages"},
    "test_dataset_review.py": {"test_every_section_renders_under_each_preprocess_source"},
    "test_awkward_models.py": {
        "test_every_kind_of_model_gets_every_section",
        "test_the_issues_hed_example_with_tf_image_resize",
    },
    "test_weights_and_layers.py": {
        "test_top_singular_value_equals_numpy_svd",
        "test_trained_weights_spread_out_against_the_baseline",
    },
    "test_pages.py": {"test_activation_zeros_come_from_the_relu_after_each_conv"},
    "test_hub_loading.py": {"test_without_keras_hub"},
    "test_gradcam.py": {"test_heatmap_peak_falls_on_the_bright_square"},
    "test_dataset.py": {"test_unreadable_files_are_skipped_counted_and_named"},
    "test_packaging.py": {"test_wheel_ships_templates_data_and_console_script"},
}


def _is_slow(item: pytest.Item) -> bool:
    names = SLOW.get(item.path.name, ())
    return names is ALL or getattr(item, "originalname", item.name) in names
