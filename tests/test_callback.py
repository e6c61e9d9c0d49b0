"""``reportgen.keras.ReportCallback``: a report every N epochs of ``model.fit``, checkpoints, the index."""

from __future__ import annotations

import reportgen  # noqa: F401

import json

import keras
import numpy as np
import pytest

from conftest import small_cnn
from reportgen import batch
from reportgen.errors import UserError
from reportgen.keras import DEFAULT_SECTIONS, ReportCallback

LAYERS = ("conv_a", "conv_b", "head")


def _data(n=32, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 16, 16, 3), dtype=np.float32), rng.integers(0, 4, n)


def _compiled(name="small_cnn"):
    model = small_cnn(name=name)
    model.compile(
        optimizer=keras.optimizers.SGD(0.5), loss="sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    return model


class Recorder(keras.callbacks.Callback):
    """The kernels as they are at the end of each epoch, read independently of reportgen."""

    def __init__(self):
        super().__init__()
        self.kernels = {}

    def on_epoch_end(self, epoch, logs=None):
        self.kernels[epoch + 1] = {
            n: self.model.get_layer(n).kernel.numpy().astype(np.float64) for n in LAYERS
        }


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "reports"
    model = _compiled()
    x, y = _data()
    recorder = Recorder()
    callback = ReportCallback(every=2, out=out, sections="overview,weights")
    history = model.fit(x, y, epochs=5, batch_size=8, verbose=0, callbacks=[callback, recorder])
    return out, callback, recorder, history.history


def test_a_report_every_n_epochs_with_checkpoint_and_logs(trained):
    out, callback, recorder, history = trained
    names = ["small_cnn-epoch-002", "small_cnn-epoch-004"]  # epochs 2 and 4 of 5
    assert [p.name for p in callback.written] == names and callback.failures == []
    for name, epoch in zip(names, (2, 4)):
        folder = out / name
        assert (folder / "report.html").is_file() and not (folder / "report.pdf").exists()
        data = json.loads((folder / "report.json").read_text())
        # the report is of the model as it was at that epoch
        for layer in LAYERS:
            assert data["weights"][layer]["mean"] == pytest.approx(
                recorder.kernels[epoch][layer].mean(), abs=1e-6
            )
            assert data["weights"][layer]["std"] == pytest.approx(
                recorder.kernels[epoch][layer].std(), rel=1e-5
            )
        training = json.loads((folder / batch.TRAINING_FILE).read_text())
        assert training["epoch"] == epoch and training["checkpoint"] == f"{name}.keras"
        for key, values in history.items():
            assert training["logs"][key] == pytest.approx(values[epoch - 1], rel=1e-6)
        saved = keras.saving.load_model(folder / training["checkpoint"])
        for layer in LAYERS:
            np.testing.assert_array_equal(
                saved.get_layer(layer).kernel.numpy(), recorder.kernels[epoch][layer]
            )


def test_the_run_gets_an_index_with_the_drift_between_epochs(trained):
    out, _, recorder, history = trained
    index = json.loads((out / "index.json").read_text())
    rows = index["models"]
    assert [r["name"] for r in rows] == ["small_cnn-epoch-002", "small_cnn-epoch-004"]
    assert [r["training"]["epoch"] for r in rows] == [2, 4]
    assert all(r["status"] == "written" and r["link"] == f"{r['name']}/report.html" for r in rows)
    drift = index["drift"]
    assert drift["reference"] == "small_cnn-epoch-002" and drift["layers"] == list(LAYERS)
    for layer in LAYERS:
        k2, k4 = recorder.kernels[2][layer], recorder.kernels[4][layer]
        expected = np.linalg.norm(k4 - k2) / np.linalg.norm(k2)
        assert expected > 0
        assert drift["relative_l2_change"][layer] == pytest.approx([0.0, expected], abs=1e-7)
    html = (out / "index.html").read_text()
    assert 'id="index-drift-figure"' in html and "Training logs" in html


def test_index_command_rebuilds_the_training_index(trained, cli):
    out, _, _, _ = trained
    before = json.loads((out / "index.json").read_text())
    for name in batch.INDEX_FILES:
        (out / name).unlink()
    res = cli("index", out, "--quiet")
    assert res.status == 0, res.stderr
    after = json.loads((out / "index.json").read_text())
    assert after["models"] == before["models"] and after["drift"] == before["drift"]


def test_options_are_checked_before_training(tmp_path):
    with pytest.raises(TypeError, match="bogus"):
        ReportCallback(bogus=1)
    with pytest.raises(UserError, match="unknown section"):
        ReportCallback(sections="weights,nope")
    with pytest.raises(ValueError, match="every"):
        ReportCallback(every=0)
    with pytest.raises(ValueError, match="json"):
        ReportCallback(formats=("html",))
    assert ReportCallback().options.sections == DEFAULT_SECTIONS
    assert (
        "patterns" not in DEFAULT_SECTIONS
        and "dataset" not in DEFAULT_SECTIONS
        and "weights" in DEFAULT_SECTIONS
    )
    (tmp_path / "cats").mkdir()
    assert "dataset" in ReportCallback(images=[tmp_path]).options.sections


def test_a_failing_report_warns_and_training_goes_on(tmp_path):
    model = _compiled()
    x, y = _data(16)
    callback = ReportCallback(every=1, out=tmp_path / "out", sections="overview,features", layers=["nope"])
    with pytest.warns(RuntimeWarning, match="the report of epoch [12] failed"):
        history = model.fit(x, y, epochs=2, batch_size=8, verbose=0, callbacks=[callback])
    assert len(history.history["loss"]) == 2
    assert [epoch for epoch, _ in callback.failures] == [1, 2] and "nope" in callback.failures[0][1]
    assert callback.written == [] and not (tmp_path / "out" / "index.json").exists()
    strict = ReportCallback(
        every=1, out=tmp_path / "out", sections="overview,features", layers=["nope"], on_error="raise"
    )
    with pytest.raises(UserError, match="nope"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[strict])
