"""Many models in one run: ``reportgen A B C``, a folder, a glob -> one report each and an index.

The checkpoints are three copies of one small architecture with perturbed
weights; the weight drift in the index is checked against NumPy, the names,
parameters and errors against what Keras, hashlib and the single-model
command line say on their own.
"""

from __future__ import annotations

import reportgen  # noqa: F401

import hashlib
import importlib.util
import json
import os
import shutil

import numpy as np
import pytest

from conftest import small_cnn
from reportgen import batch

VOLATILE = ("generated", "seconds", "worker")  # differ between two runs of the same models
SECTIONS = ("--sections", "overview,weights", "--format", "json", "--quiet")


def _save_checkpoints(folder, names_scales, seed=1):
    """Save small_cnn copies with weights base + scale * noise; returns {file stem: {layer: kernel}}."""
    folder.mkdir(parents=True, exist_ok=True)
    model = small_cnn()
    rng = np.random.default_rng(seed)
    base = [rng.normal(0, 0.3, size=v.shape).astype("float32") for v in model.weights]
    kernels = {}
    for stem, scale in names_scales:
        for var, b in zip(model.weights, base):
            var.assign(b + scale * rng.normal(0, 0.3, size=b.shape).astype("float32"))
        model.save(folder / f"{stem}.keras")
        kernels[stem] = {
            n: model.get_layer(n).kernel.numpy().astype(np.float64) for n in ("conv_a", "conv_b", "head")
        }
    return kernels, int(model.count_params())


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    """ckpt/epoch_{1,2,10}.keras (natural order 1, 2, 10; plain order 1, 10, 2)."""
    folder = tmp_path_factory.mktemp("many") / "ckpt"
    kernels, params = _save_checkpoints(folder, [("epoch_1", 0.0), ("epoch_10", 0.3), ("epoch_2", 0.1)])
    return folder, kernels, params


def _numpy_drift(kernels, order):
    first = kernels[order[0]]
    return {
        layer: [
            np.linalg.norm(kernels[n][layer] - first[layer]) / np.linalg.norm(first[layer]) for n in order
        ]
        for layer in first
    }


def _stable(rows):
    return [{k: v for k, v in r.items() if k not in VOLATILE} for r in rows]


@pytest.fixture(scope="module")
def sequential(ckpts, tmp_path_factory):
    """``reportgen ckpt/`` in this process, one model after the other."""
    from reportgen.cli import main
    import contextlib
    import io

    folder, _, _ = ckpts
    out = tmp_path_factory.mktemp("seq") / "reports"
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        status = main([str(folder), *SECTIONS, "--out", str(out)])
    return status, out, json.loads((out / "index.json").read_text()), err.getvalue()


def test_a_folder_of_checkpoints_gets_reports_an_index_and_the_drift_numpy_computes(ckpts, sequential, cli):
    folder, kernels, params = ckpts
    status, out, index, stderr = sequential
    assert status == 0, stderr
    order = ["epoch_1", "epoch_2", "epoch_10"]  # natural sort
    rows = index["models"]
    assert [r["name"] for r in rows] == order
    assert [r["source"] for r in rows] == [str(folder / f"{n}.keras") for n in order]
    for r in rows:
        assert r["status"] == "written" and r["exit_status"] == 0 and r["error"] is None
        assert r["link"] == f"{r['name']}/report.json" and (out / r["link"]).is_file()
        assert r["total_params"] == params and r["findings_summary"] is None and r["accuracy"] is None
    assert (
        index["summary"] == {"models": 3, "written": 3, "flagged": 0, "failed": 0}
        and index["exit_status"] == 0
    )
    drift = index["drift"]
    assert drift["reference"] == "epoch_1" and drift["models"] == order
    assert drift["layers"] == ["conv_a", "conv_b", "head"]
    expected = _numpy_drift(kernels, order)
    for layer, values in expected.items():
        assert drift["relative_l2_change"][layer] == pytest.approx(values, abs=1e-12)
    assert all(
        drift["relative_l2_change"][layer][2] > drift["relative_l2_change"][layer][1] > 0
        for layer in expected
    )
    html = (out / "index.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and 'href="epoch_10/report.json"' in html
    assert 'id="index-drift-figure"' in html and "data:image/png;base64," in html
    # Every option applies to every model: the batch's report equals the single-model command's.
    single = cli(folder / "epoch_2.keras", *SECTIONS, "--out", out.parent / "single")
    assert single.status == 0 and not (out.parent / "single" / "index.json").exists()
    one = json.loads((out.parent / "single" / "epoch_2" / "report.json").read_text())
    many = json.loads((out / "epoch_2" / "report.json").read_text())
    assert many["weights"] == one["weights"] and many["sections"] == ["overview", "weights"]


def test_index_command_rebuilds_the_index_from_the_report_folders(ckpts, sequential, cli, tmp_path):
    _, out, index, _ = sequential
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    for name in batch.INDEX_FILES:
        (copy / name).unlink()
    res = cli("index", copy, "--quiet")
    assert res.status == 0, res.stderr
    rebuilt = json.loads((copy / "index.json").read_text())
    drop = ("spec",) + VOLATILE
    assert [{k: v for k, v in r.items() if k not in drop} for r in rebuilt["models"]] == [
        {k: v for k, v in r.items() if k not in drop} for r in index["models"]
    ]
    # the drift comes from the source files, found by the reports' SHA-256
    assert rebuilt["drift"] == index["drift"]
    res = cli("index", copy / "epoch_1", "--quiet")
    assert res.status == 2 and "no report folders" in res.stderr
    # a source file that changed since its report (another SHA-256) is not used for the drift
    report = copy / "epoch_2" / "report.json"
    data = json.loads(report.read_text())
    data["model"]["sha256"] = "0" * 64
    report.write_text(json.dumps(data))
    assert cli("index", copy, "--quiet").status == 0
    rebuilt = json.loads((copy / "index.json").read_text())
    assert rebuilt["drift"] is None and "no model file for epoch_2" in rebuilt["drift_note"]
    assert "no model file for epoch_2" in (copy / "index.html").read_text()


def test_models_of_different_architectures_get_no_drift(ckpts, tmp_path, cli):
    folder, _, _ = ckpts
    small_cnn(classes=5).save(tmp_path / "wider.keras")
    res = cli(
        folder / "epoch_1.keras",
        tmp_path / "wider.keras",
        "--sections",
        "overview",
        "--format",
        "json",
        "--quiet",
        "--out",
        tmp_path / "out",
    )
    assert res.status == 0, res.stderr
    index = json.loads((tmp_path / "out" / "index.json").read_text())
    assert [r["status"] for r in index["models"]] == ["written", "written"]
    assert index["drift"] is None
    assert index["drift_note"].startswith(
        f"No weight drift: wider: {batch.ARCHITECTURES_DIFFER}: layer 'head'"
    )


def test_jobs_2_uses_two_processes_and_equals_the_sequential_run(ckpts, sequential, cli, tmp_path):
    folder, _, _ = ckpts
    _, _, index, _ = sequential
    res = cli(folder, *SECTIONS, "--out", tmp_path / "par", "--jobs", "2")
    assert res.status == 0, res.stderr
    par = json.loads((tmp_path / "par" / "index.json").read_text())
    pids = {r["worker"]["pid"] for r in par["models"]}
    assert len(pids) == 2 and os.getpid() not in pids
    assert _stable(par["models"]) == _stable(index["models"])
    assert par["drift"] == index["drift"]
    for r in par["models"]:
        a = json.loads((tmp_path / "par" / r["link"]).read_text())
        b = json.loads((sequential[1] / r["link"]).read_text())
        assert a["weights"] == b["weights"]


def test_duplicate_names_get_distinct_folders_and_the_index_says_which(ckpts, tmp_path, cli):
    folder, _, _ = ckpts
    for sub, stem in (("a", "epoch_1"), ("b", "epoch_2")):
        (tmp_path / sub).mkdir()
        shutil.copy(folder / f"{stem}.keras", tmp_path / sub / "model.keras")
    res = cli(
        str(tmp_path / "*" / "model.keras"),
        "--sections",
        "overview",
        "--format",
        "json",
        "--quiet",
        "--out",
        tmp_path / "out",
    )
    assert res.status == 0, res.stderr
    rows = json.loads((tmp_path / "out" / "index.json").read_text())["models"]
    assert [r["name"] for r in rows] == ["model", "model-2"]
    assert [r["source"] for r in rows] == [
        str(tmp_path / "a" / "model.keras"),
        str(tmp_path / "b" / "model.keras"),
    ]
    for r, sub in zip(rows, ("a", "b")):
        data = json.loads((tmp_path / "out" / r["link"]).read_text())
        assert (
            data["model"]["sha256"]
            == hashlib.sha256((tmp_path / sub / "model.keras").read_bytes()).hexdigest()
        )


def test_a_failing_model_is_one_row_with_its_error_and_the_others_are_written(
    ckpts, tmp_path, cli, monkeypatch
):
    folder, _, _ = ckpts
    broken = tmp_path / "broken.keras"
    broken.write_bytes(b"not a zip archive")
    single = cli(broken, "--out", tmp_path / "never", "--quiet")
    assert single.status == 2
    message = single.stderr.strip().removeprefix("reportgen: error: ")

    from reportgen import loading

    real = loading.load_file

    def crash(path, *a, **k):
        if path.name == "epoch_10.keras":
            raise RuntimeError("planted crash\nsecond line")
        return real(path, *a, **k)

    monkeypatch.setattr(loading, "load_file", crash)
    res = cli(
        folder / "epoch_1.keras",
        broken,
        folder / "epoch_10.keras",
        folder / "epoch_2.keras",
        "--sections",
        "overview",
        "--format",
        "json",
        "--format",
        "html",
        "--out",
        tmp_path / "out",
    )
    assert res.status == 2
    index = json.loads((tmp_path / "out" / "index.json").read_text())
    rows = {r["name"]: r for r in index["models"]}
    assert list(rows) == ["epoch_1", "broken", "epoch_10", "epoch_2"]  # argument order
    assert rows["broken"]["status"] == "failed" and rows["broken"]["error"] == message
    assert rows["epoch_10"]["error"] == "RuntimeError: planted crash"
    assert rows["broken"]["link"] is None and not (tmp_path / "out" / "broken").exists()
    assert (tmp_path / "out" / "epoch_2" / "report.html").is_file() and rows["epoch_2"]["status"] == "written"
    assert index["summary"] == {"models": 4, "written": 2, "flagged": 0, "failed": 2}
    assert index["drift"]["models"] == ["epoch_1", "epoch_2"]  # the models that ran
    assert f"broken ({broken}): {message}" in res.stderr and "exit status 2" in res.stderr
    html = (tmp_path / "out" / "index.html").read_text()
    assert "RuntimeError: planted crash" in html and 'href="epoch_2/report.html"' in html


def _nan_model(path):
    model = small_cnn()
    rng = np.random.default_rng(3)
    for var in model.weights:
        var.assign(rng.normal(0, 0.3, size=var.shape).astype("float32"))
    k = model.get_layer("conv_b").kernel
    arr = k.numpy()
    arr[0, 0, 0, 0] = np.nan
    k.assign(arr)
    model.save(path)


def test_exit_status_fail_on_then_failed_sections(ckpts, tmp_path, cli, monkeypatch):
    folder, _, _ = ckpts
    _nan_model(tmp_path / "nan.keras")
    models = [folder / "epoch_1.keras", tmp_path / "nan.keras"]
    gate = ("--sections", "weights,findings", "--fail-on", "error", "--format", "json", "--quiet")
    singles = [cli(m, *gate, "--out", tmp_path / "single").status for m in models]
    assert singles[1] == 1  # NaN weights are an error-level finding
    res = cli(*models, *gate, "--out", tmp_path / "gate")
    assert res.status == max(singles) == 1, res.stderr
    rows = json.loads((tmp_path / "gate" / "index.json").read_text())["models"]
    assert [r["exit_status"] for r in rows] == singles
    assert rows[1]["findings_summary"]["error"] >= 1
    assert (
        json.loads((tmp_path / "gate" / "index.json").read_text())["drift"]["relative_l2_change"]["conv_b"][1]
        is None
    )

    from reportgen.sections import kernels

    def explode(ctx):
        raise RuntimeError("planted failure")

    monkeypatch.setattr(kernels, "run", explode)
    res = cli(
        *models,
        "--sections",
        "weights,kernels,findings",
        "--fail-on",
        "error",
        "--format",
        "json",
        "--quiet",
        "--out",
        tmp_path / "flagged",
    )
    assert res.status == 3, res.stderr  # failed sections outrank --fail-on
    index = json.loads((tmp_path / "flagged" / "index.json").read_text())
    assert [r["status"] for r in index["models"]] == ["flagged", "flagged"]
    assert index["models"][0]["section_errors"][0]["section"] == "kernels"
    assert (tmp_path / "flagged" / "epoch_1" / "errors.log").is_file()


def test_the_exit_status_rule():
    def rows(*statuses):
        return [{"exit_status": s} for s in statuses]

    assert batch.exit_status(rows(0, 0)) == 0
    assert batch.exit_status(rows(0, 1)) == 1
    assert batch.exit_status(rows(1, 3, 0)) == 3
    assert batch.exit_status(rows(3, 2, 1)) == 2


@pytest.mark.parametrize("what", ["glob", "folder", "weights-only glob"])
def test_a_glob_or_folder_without_models_is_bad_input_and_writes_nothing(tmp_path, cli, what):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("x")
    (empty / "w.weights.h5").write_bytes(b"x")
    arg = {
        "glob": str(tmp_path / "nothing-*.keras"),
        "folder": str(empty),
        "weights-only glob": str(empty / "*.h5"),
    }[what]
    res = cli(arg, "--out", tmp_path / "out", "--quiet")
    assert res.status == 2 and res.stderr.count("\n") == 1 and res.stderr.startswith("reportgen: error:")
    assert arg in res.stderr and not (tmp_path / "out").exists()


def test_expand_folders_and_globs_in_natural_order(tmp_path):
    for name in ("e_10.keras", "e_2.h5", "e_1.hdf5", "w.weights.h5", ".hidden.keras", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "deep.keras").write_bytes(b"x")
    assert [os.path.basename(p) for p in batch.expand([str(tmp_path)])] == [
        "e_1.hdf5",
        "e_2.h5",
        "e_10.keras",
    ]
    assert [os.path.basename(p) for p in batch.expand([str(tmp_path / "e_*")])] == [
        "e_1.hdf5",
        "e_2.h5",
        "e_10.keras",
    ]
    assert batch.expand([str(tmp_path / "**" / "*.keras")]) == [
        str(tmp_path / "e_10.keras"),
        str(tmp_path / "sub" / "deep.keras"),
    ]
    # the same file twice is reported once; names other than paths pass through
    assert batch.expand([str(tmp_path / "e_2.h5"), str(tmp_path / "e_*.h5"), "vgg16"]) == [
        str(tmp_path / "e_2.h5"),
        "vgg16",
    ]
    assert batch.is_many(["one.keras"]) is False and batch.is_many([str(tmp_path)]) is True
    assert batch.assign_names(["a/model.keras", "b/model.keras", "model-2.keras", "c/Model.h5", "VGG16"]) == [
        "model",
        "model-3",
        "model-2",
        "Model-4",
        "vgg16",
    ]


def test_a_single_model_writes_no_index(saved_small, tmp_path, cli):
    res = cli(saved_small, "--sections", "overview", "--format", "json", "--out", tmp_path / "out", "--quiet")
    assert res.status == 0 and sorted(p.name for p in (tmp_path / "out").iterdir()) == ["small-model"]


def test_executor_ray_without_ray_is_one_line_and_exit_2(saved_small, tmp_path, cli, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a)
    )
    res = cli(saved_small, saved_small, "--executor", "ray", "--out", tmp_path / "out", "--quiet")
    assert res.status == 2 and "pip install 'reportgen[ray]'" in res.stderr and res.stderr.count("\n") == 1
    assert not (tmp_path / "out").exists()
    res = cli(saved_small, "--ray-address", "auto", "--out", tmp_path / "out", "--quiet")
    assert res.status == 2 and "--executor ray" in res.stderr


def test_ray_runs_one_task_per_model_on_a_local_instance(ckpts, sequential, tmp_path, cli):
    try:
        import ray
    except ImportError:
        if os.environ.get("REPORTGEN_REQUIRE_RAY"):  # CI sets it: there the Ray test must run
            raise
        pytest.skip("Ray is not installed (pip install 'reportgen[ray]')")
    folder, _, _ = ckpts
    assert not ray.is_initialized()
    res = cli(
        folder / "epoch_1.keras",
        folder / "epoch_2.keras",
        *SECTIONS,
        "--out",
        tmp_path / "ray",
        "--executor",
        "ray",
        "--jobs",
        "2",
    )
    assert res.status == 0, res.stderr
    assert not ray.is_initialized()  # reportgen started it, reportgen shut it down
    index = json.loads((tmp_path / "ray" / "index.json").read_text())
    assert [r["name"] for r in index["models"]] == ["epoch_1", "epoch_2"]
    assert all(r["worker"]["pid"] != os.getpid() for r in index["models"])
    seq = {r["name"]: r for r in sequential[2]["models"]}
    for r in index["models"]:
        assert r["total_params"] == seq[r["name"]]["total_params"]
        a = json.loads((tmp_path / "ray" / r["link"]).read_text())
        b = json.loads((sequential[1] / r["link"]).read_text())
        assert a["weights"] == b["weights"]
    for layer, values in index["drift"]["relative_l2_change"].items():
        assert values == sequential[2]["drift"]["relative_l2_change"][layer][:2]
