"""Models from code (module:callable), and every way of handing over a model that cannot work: one line, exit
2."""

from __future__ import annotations

import reportgen  # noqa: F401

import json
import sys
import textwrap

import keras
import numpy as np
import pytest

import awkward_models as A

MODULE = textwrap.dedent('''
    import keras
    import numpy as np
    from awkward_models import MiniHED

    class Edges(MiniHED):
        """A subclassed model built on first call: reportgen calls Edges() and loads the weights."""
        def __init__(self):
            super().__init__(name="edges")
            self(np.zeros((1, 32, 32, 3), "float32"))

    def factory():
        return keras.Sequential([keras.Input((12, 12, 3)), keras.layers.Conv2D(4, 3, name="c"),
                                 keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2, name="d")])

    def unbuilt():
        return MiniHED(name="never_called")

    def broken():
        raise RuntimeError("no GPU found")

    def not_a_model():
        return {"weights": 1}

    constant = 3
''')


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A folder holding ``zoo.py`` (the model code) as the working directory, and trained weights."""
    (tmp_path / "zoo.py").write_text(MODULE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "zoo", raising=False)  # a zoo.py another test imported must not answer
    trained = A.hed(seed=4)
    trained.save_weights(tmp_path / "edges.weights.h5")
    return tmp_path


def test_module_callable_class_with_weights_gets_a_full_report(project, cli):
    res = cli(
        "zoo:Edges",
        "--weights",
        project / "edges.weights.h5",
        "--format",
        "json",
        "--out",
        project / "r",
        "--pattern-steps",
        "2",
        "--pattern-filters",
        "4",
        "--quiet",
    )
    assert res.status == 0, res.stderr
    data = json.loads((project / "r" / "Edges" / "report.json").read_text())  # named after the callable
    assert data["section_errors"] == [] and data["model"]["kind"] == "subclassed"
    assert "zoo:Edges" in data["model"]["source"] and data["model"]["sha256"]
    # the weights really were loaded: the report's statistics are the trained model's
    trained = A.hed(seed=4)
    kernel = trained.block1.get_layer("block1_conv1").kernel.numpy().astype(np.float64)
    assert data["weights"]["block1/block1_conv1"]["std"] == pytest.approx(kernel.std(), rel=1e-6)


def test_module_callable_factory_without_weights(project, cli):
    res = cli("zoo:factory", "--sections", "layers", "--format", "json", "--out", project / "r", "--quiet")
    assert res.status == 0, res.stderr
    data = json.loads((project / "r" / "factory" / "report.json").read_text())
    assert [r["name"] for r in data["layers"]] == ["c", "global_average_pooling2d", "d"] or [
        r["name"] for r in data["layers"]
    ][0] == "c"


@pytest.mark.parametrize(
    "spec, needle",
    [
        ("nozoo:Edges", "cannot import 'nozoo'"),
        ("zoo:Nope", "cannot import 'Nope' from 'zoo'"),
        ("zoo:broken", "zoo:broken() raised RuntimeError: no GPU found"),
        ("zoo:not_a_model", "returned dict, not a Keras model"),
        ("zoo:constant", "is not callable"),
        ("zoo:unbuilt", "never built"),
    ],
)
def test_bad_code_specs_say_which_of_import_call_or_model_failed(project, cli, spec, needle):
    res = cli(spec, "--out", project / "never", "--quiet")
    assert res.status == 2, res.stderr
    assert needle in res.stderr and res.stderr.count("\n") == 1 and "Traceback" not in res.stderr
    assert not (project / "never").exists()


def test_unbuilt_code_model_is_built_with_input_shape(project, cli):
    res = cli(
        "zoo:unbuilt",
        "--input-shape",
        "24,24,3",
        "--sections",
        "overview,layers,features",
        "--format",
        "json",
        "--out",
        project / "r",
        "--quiet",
    )
    assert res.status == 0, res.stderr
    data = json.loads((project / "r" / "unbuilt" / "report.json").read_text())
    assert data["model"]["input_shape"] == [None, 24, 24, 3]


def test_weights_file_as_model_says_how_to_give_it(project, cli):
    res = cli(project / "edges.weights.h5", "--out", project / "never", "--quiet")
    assert res.status == 2 and "holds weights only" in res.stderr
    assert "--weights" in res.stderr and "module:callable" in res.stderr


def test_weights_that_do_not_fit_name_the_first_layer(project, cli):
    other = A.MiniHED(widths=(4, 6, 8), name="other")
    other(np.zeros((1, 32, 32, 3), "float32"))
    other.save_weights(project / "other.weights.h5")
    res = cli("zoo:Edges", "--weights", project / "other.weights.h5", "--out", project / "never", "--quiet")
    assert res.status == 2, res.stderr
    assert "do not fit zoo:Edges" in res.stderr
    assert (
        "layer 'block2/block2_conv1': its weights have shape (3, 3, 4, 8), the file's (3, 3, 4, 6)"
        in res.stderr
    )


def test_savedmodel_folder_says_how_to_convert(tmp_path, cli):
    folder = tmp_path / "exported"
    folder.mkdir()
    (folder / "saved_model.pb").write_bytes(b"\x08\x01")
    res = cli(folder, "--out", tmp_path / "never", "--quiet")
    assert res.status == 2 and "SavedModel" in res.stderr and "model.keras" in res.stderr


def test_unbuilt_sequential_file_needs_input_shape(tmp_path, cli):
    model = keras.Sequential(
        [keras.layers.Conv2D(4, 3, name="c"), keras.layers.Flatten(), keras.layers.Dense(2)]
    )
    path = tmp_path / "unbuilt.keras"
    model.save(path)
    res = cli(path, "--out", tmp_path / "never", "--quiet")
    assert res.status == 2 and "--input-shape" in res.stderr and "Traceback" not in res.stderr
    res = cli(
        path,
        "--input-shape",
        "10,10,3",
        "--sections",
        "overview,weights",
        "--format",
        "json",
        "--out",
        tmp_path,
        "--quiet",
    )
    assert res.status == 0, res.stderr
    data = json.loads((tmp_path / "unbuilt" / "report.json").read_text())
    assert data["model"]["input_shape"] == [None, 10, 10, 3] and "c" in data["weights"]
