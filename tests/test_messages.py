"""Messages (issue 17, part 7): what the one line on stderr says, and what a failed or interrupted run leaves.

- weights Keras cannot read name the format problem and its fix; weights that do not fit still name the layer;
- files skipped for their type in ``--images`` folders are counted, in the error line and in report.json;
- an error line starts on a clean line after a progress bar (a terminal and a log);
- a model file that does not exist is rejected before Keras or TensorFlow is imported;
- Ctrl-C in a run of several models: one line, the index of the finished reports, exit 130, no traceback.
"""

from __future__ import annotations

import reportgen  # noqa: F401

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest
from PIL import Image

from conftest import small_cnn
from reportgen import batch
from reportgen.names import missing_model

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))

ZOO = textwrap.dedent("""
    import keras

    def small():
        return keras.Sequential([keras.Input((16, 16, 1)), keras.layers.Conv2D(4, 3, name="c1"),
                                 keras.layers.Conv2D(4, 3, name="c2")], name="small")
""")


def _tiny(width: int = 4, seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((16, 16, 1)),
            keras.layers.Conv2D(width, 3, name="c1"),
            keras.layers.Conv2D(4, 3, name="c2"),
        ],
        name="small",
    )


def _one_line_exit_2(res, out: Path) -> str:
    assert res.status == 2, res.stderr
    assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr, res.stderr
    assert not out.exists()
    return res.stderr


@pytest.fixture
def zoo(tmp_path, monkeypatch):
    """``zoo:small`` importable from the working directory; ``good.weights.h5`` fits it."""
    (tmp_path / "zoo.py").write_text(ZOO)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(
        sys.modules, "zoo", raising=False
    )  # another test's zoo.py must not answer for this one
    _tiny(seed=3).save_weights(tmp_path / "good.weights.h5")
    yield tmp_path
    sys.modules.pop("zoo", None)  # nor this one for the next test's


# --- 1. weights Keras cannot read, and weights that do not fit ----------------------------------


def _legacy_weights(path: Path, model: keras.Model) -> None:
    """Weights in the Keras 2 layout (``layer_names``, one group per layer), as Keras 2's save_weights wrote
    them."""
    from keras.src.legacy.saving import legacy_h5_format

    with h5py.File(path, "w") as fh:
        legacy_h5_format.save_weights_to_hdf5_group(fh, model)


@pytest.mark.parametrize(
    "case",
    [
        "not_hdf5",
        "empty",
        "truncated",
        "legacy_layout",
        "keras_archive_named_h5",
        "hdf5_named_keras",
        "keras3_named_h5",
        "unknown_extension",
    ],
)
def test_weights_keras_cannot_read_name_the_format_and_the_fix(zoo, cli, case):
    good = zoo / "good.weights.h5"
    if case == "not_hdf5":
        given = zoo / "w.weights.h5"
        given.write_text("these are not weights\n" * 20)
        words, fixed = ["not an HDF5 file"], None
    elif case == "empty":
        given = zoo / "w.weights.h5"
        given.write_bytes(b"")
        words, fixed = ["empty (0 bytes)"], None
    elif case == "truncated":
        given = zoo / "w.weights.h5"
        data = good.read_bytes()
        given.write_bytes(data[: len(data) // 2])
        words, fixed = ["truncated", f"{len(data) // 2:,} of its {len(data):,} bytes"], None
    elif case == "legacy_layout":
        given = zoo / "old.weights.h5"
        _legacy_weights(given, _tiny(seed=3))
        words, fixed = ["Keras 2 layout", "rename it to old.h5"], zoo / "old.h5"
    elif case == "keras_archive_named_h5":
        _tiny(seed=3).save(zoo / "full.keras")
        given = zoo / "full.weights.h5"
        shutil.copy(zoo / "full.keras", given)
        words, fixed = [".keras model archive", "rename it to full.keras"], zoo / "full.keras"
    elif case == "hdf5_named_keras":
        given = zoo / "w.keras"
        shutil.copy(good, given)
        words, fixed = ["HDF5 file named .keras", "rename it to w.weights.h5"], zoo / "w.weights.h5"
    elif case == "keras3_named_h5":
        given = zoo / "w.h5"
        shutil.copy(good, given)
        words, fixed = ["Keras 3 weights", "rename it to w.weights.h5"], zoo / "w.weights.h5"
    else:
        given = zoo / "w.bin"
        shutil.copy(good, given)
        words, fixed = ["'.bin'", "rename it to w.weights.h5"], zoo / "w.weights.h5"
    res = cli("zoo:small", "--weights", given, "--out", zoo / "never", "--quiet")
    err = _one_line_exit_2(res, zoo / "never")
    assert f"'{given}' cannot be read as a Keras weights file (" in err
    assert "do not fit" not in err  # not a shape problem
    for w in words:
        assert w in err, err
    if fixed is not None:  # the fix the line gives works
        if not fixed.exists():
            shutil.copy(given, fixed)
        res = cli(
            "zoo:small",
            "--weights",
            fixed,
            "--sections",
            "weights",
            "--format",
            "json",
            "--out",
            zoo / "r",
            "--quiet",
        )
        assert res.status == 0, res.stderr
        data = json.loads((zoo / "r" / "small" / "report.json").read_text())
        kernel = _tiny(seed=3).get_layer("c1").kernel.numpy().astype(np.float64)
        assert data["weights"]["c1"]["std"] == pytest.approx(kernel.std(), rel=1e-6)


@pytest.mark.parametrize("kind", ["weights.h5", "keras", "legacy.h5"])
def test_weights_of_another_shape_still_name_the_layer(zoo, cli, kind):
    wide = _tiny(width=5)
    if kind == "weights.h5":
        given = zoo / "wide.weights.h5"
        wide.save_weights(given)
        detail = "layer 'c1': its weights have shape (3, 3, 1, 4), the file's (3, 3, 1, 5)"
    elif kind == "keras":
        given = zoo / "wide.keras"
        wide.save(given)  # a .keras archive is read as weights: the layer is found inside it too
        detail = "layer 'c1': its weights have shape (3, 3, 1, 4), the file's (3, 3, 1, 5)"
    else:
        given = zoo / "wide.h5"
        _legacy_weights(given, wide)
        detail = "(named c1)"  # Keras 2's layout is stored by layer name; Keras' own reason says which
    res = cli("zoo:small", "--weights", given, "--out", zoo / "never", "--quiet")
    err = _one_line_exit_2(res, zoo / "never")
    assert "do not fit zoo:small" in err and detail in err and "cannot be read" not in err, err


def test_a_model_file_in_the_wrong_format_says_which(tmp_path, cli):
    legacy = tmp_path / "legacy.h5"
    small_cnn().save(legacy)  # a whole model in the .h5 format
    misnamed = tmp_path / "model.keras"
    shutil.copy(legacy, misnamed)
    err = _one_line_exit_2(cli(misnamed, "--out", tmp_path / "never", "--quiet"), tmp_path / "never")
    assert "HDF5 (.h5) model file named .keras" in err and "rename it to model.h5" in err
    shutil.move(misnamed, tmp_path / "model.h5")  # the fix works
    res = cli(
        tmp_path / "model.h5", "--sections", "layers", "--format", "json", "--out", tmp_path / "r", "--quiet"
    )
    assert res.status == 0, res.stderr
    weights_only = tmp_path / "w.keras"
    small_cnn().save_weights(tmp_path / "w.weights.h5")
    shutil.copy(tmp_path / "w.weights.h5", weights_only)
    err = _one_line_exit_2(cli(weights_only, "--out", tmp_path / "never", "--quiet"), tmp_path / "never")
    assert "holds weights only" in err and "--weights" in err
    (tmp_path / "empty.keras").write_bytes(b"")
    err = _one_line_exit_2(
        cli(tmp_path / "empty.keras", "--out", tmp_path / "never", "--quiet"), tmp_path / "never"
    )
    assert "is empty (0 bytes)" in err


# --- 2. files skipped for their type in --images folders -------------------------------------


def _png(path: Path, value: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((16, 16, 3), value, np.uint8)).save(path)


def test_files_of_another_type_are_counted_in_the_error_line(tmp_path, saved_small, cli):
    folder = tmp_path / "mixed"
    folder.mkdir()
    for i in range(3):
        (folder / f"broken{i}.png").write_bytes(b"not a png")
        (folder / f"notes{i}.txt").write_text("x")
    err = _one_line_exit_2(
        cli(saved_small, "--images", folder, "--out", tmp_path / "never", "--quiet"), tmp_path / "never"
    )
    assert "none of the 3 files could be read" in err
    assert "3 more files were skipped for their type (notes0.txt, notes1.txt, notes2.txt: not PNG" in err
    only_text = tmp_path / "text"
    only_text.mkdir()
    (only_text / "readme.md").write_text("x")
    err = _one_line_exit_2(
        cli(saved_small, "--images", only_text, "--out", tmp_path / "never", "--quiet"), tmp_path / "never"
    )
    assert "no image files" in err and "1 file was skipped for its type (readme.md" in err


def test_files_of_another_type_are_counted_in_report_json(tmp_path, saved_small, cli):
    import jsonschema

    folder = tmp_path / "data"
    _png(folder / "a" / "1.png", 10)
    _png(folder / "b" / "2.png", 200)
    _png(folder / "top.png", 90)
    skipped = [folder / "a" / "labels.csv", folder / "b" / "deep" / "notes.txt", folder / "readme.md"]
    for p in skipped:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("x")
    (folder / "a" / ".DS_Store").write_text("x")  # hidden files are not counted
    (folder / "a" / "broken.png").write_bytes(b"nope")  # unreadable: `skipped`, not `skipped_by_type`
    res = cli(
        saved_small,
        "--images",
        folder,
        "--sections",
        "dataset",
        "--format",
        "json",
        "--format",
        "html",
        "--out",
        tmp_path / "r",
        "--quiet",
    )
    assert res.status == 0, res.stderr
    report = tmp_path / "r" / "small-model"
    data = json.loads((report / "report.json").read_text())
    ds = data["dataset"]
    assert ds["images"] == 3 and [s["path"] for s in ds["skipped"]] == [str(folder / "a" / "broken.png")]
    assert ds["skipped_by_type"] == 3
    assert sorted(ds["skipped_by_type_examples"]) == sorted(str(p) for p in skipped)
    jsonschema.validate(data, json.loads((ROOT / "docs" / "report.schema.json").read_text()))
    assert "3 other files were not read for their type" in (report / "report.html").read_text()


# --- 3. an error line after a progress bar ---------------------------------------------------

BAR_THEN_ERROR = textwrap.dedent("""
    import sys
    from reportgen import cli
    from reportgen.errors import UserError
    from reportgen.report import progress_factory

    def run(argv):
        bar = progress_factory(False)(total=10, desc="analyses")  # the bars a report draws
        bar.update(3)
        bar.refresh()
        raise UserError("planted problem; the fix")

    cli.cmd_report = run
    sys.exit(cli.main(["model.keras"]))
""")


def test_an_error_after_a_progress_bar_starts_a_clean_line_in_a_log(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", BAR_THEN_ERROR],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert "analyses" in proc.stderr  # the bar was drawn
    before, _, after = proc.stderr.rpartition("reportgen: error: planted problem; the fix")
    assert before.endswith("\n") and after == "\n", repr(proc.stderr)  # a line of its own
    assert "\x1b" not in proc.stderr  # no terminal codes in a log


def test_an_error_after_a_progress_bar_starts_a_clean_line_on_a_terminal(tmp_path):
    pty = pytest.importorskip("pty")
    import fcntl
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a 100-column terminal
    proc = subprocess.Popen(
        [sys.executable, "-c", BAR_THEN_ERROR],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=slave,
        env=ENV,
        cwd=tmp_path,
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the other end closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    assert proc.wait(timeout=120) == 2
    err = b"".join(chunks).decode()
    assert "analyses" in err
    before, _, after = err.rpartition("reportgen: error: planted problem; the fix")
    assert before.endswith("\r\x1b[K"), repr(err)  # the bar's line erased, the cursor at its start
    assert after.strip() == ""


# --- 4. a model file that does not exist: before any backend ---------------------------------

PROBE = (
    "import sys; from reportgen.cli import main; rc = main(sys.argv[1:]); "
    "print(rc, 'keras' in sys.modules, 'tensorflow' in "
    "sys.modules, 'jax' in sys.modules, 'torch' in sys.modules)"
)


@pytest.mark.parametrize(
    "args, needle",
    [
        (["nope.keras"], "model file 'nope.keras' does not exist"),
        (["models/best"], "model file 'models/best' does not exist"),
        (["present.keras", "missing.h5", "--jobs", "2"], "model file 'missing.h5' does not exist"),
        (
            ["present.keras", "gone1.keras", "gone2.hdf5"],
            "2 model files do not exist ('gone1.keras', 'gone2.hdf5')",
        ),
    ],
)
def test_a_missing_model_file_is_rejected_before_keras_is_imported(tmp_path, args, needle):
    (tmp_path / "present.keras").write_bytes(b"never read")
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *args, "--out", "out"],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=60,
        cwd=tmp_path,
    )
    assert proc.stdout.split() == ["2", "False", "False", "False", "False"], proc.stdout + proc.stderr
    assert proc.stderr.count("\n") == 1 and needle in proc.stderr, proc.stderr
    assert not (tmp_path / "out").exists()


def test_which_specs_count_as_missing_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "here.keras").write_bytes(b"")
    assert missing_model("here.keras") is None
    assert missing_model("vgg16") is None and missing_model("mobilenet_v2") is None  # architecture names
    assert missing_model("zoo:small") is None and missing_model("pkg.models:Net.build") is None  # code
    for spec in ("there.keras", "THERE.H5", "x.hdf5", "sub/model", "./vgg16"):
        assert missing_model(spec) == (
            f"model file '{spec}' does not exist; check the path, or give a "
            "keras.applications name such as vgg16 or a module:callable"
        )
    from reportgen import loading  # the same rule as the loader's

    for spec in ("zoo:small", "vgg16", "there.keras", "sub/model"):
        assert loading.is_code_spec(spec) == (spec == "zoo:small")


# --- 5. Ctrl-C in a run of several models ---------------------------------------------------


def test_sweep_removes_temporary_folders_and_puts_an_earlier_report_back(tmp_path):
    (tmp_path / ".m1.tmp-abc").mkdir()
    (tmp_path / ".m1.tmp-abc" / "report.json").write_text("{half")
    (tmp_path / ".m2.old-123").mkdir()  # m2's earlier report, moved aside when the worker stopped
    (tmp_path / ".m2.old-123" / "report.json").write_text('{"earlier": true}')
    (tmp_path / "m3").mkdir()  # m3 in place and its earlier one still aside: the earlier one goes
    (tmp_path / ".m3.old-9").mkdir()
    (tmp_path / ".other.tmp-1").mkdir()  # not one of the names: left alone
    batch._sweep(tmp_path, ["m1", "m2", "m3"])
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.tmp-1", "m2", "m3"]
    assert json.loads((tmp_path / "m2" / "report.json").read_text()) == {"earlier": True}


def test_a_report_written_before_its_row_came_back_counts_as_finished(tmp_path):
    from reportgen.context import Options

    jobs = batch.make_jobs(["a.keras", "b.keras", "c.keras"], tmp_path, ("json",), Options(quiet=True))
    earlier = tmp_path / "c"
    earlier.mkdir()
    (earlier / "report.json").write_text('{"model": {"source": "old"}}')
    os.utime(earlier / "report.json", (1, 1))  # written long before this run
    started = time.time()
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "report.json").write_text(
        json.dumps(
            {
                "model": {"source": "b.keras", "total_params": 7},
                "findings_summary": {"error": 0, "warning": 1, "info": 0},
            }
        )
    )
    row_a = {
        **batch._failed(jobs[0], "x"),
        "status": "written",
        "exit_status": 0,
        "error": None,
        "link": "a/report.json",
        "formats": ["json"],
    }
    exc = batch.interrupted(tmp_path, jobs, [row_a], started)
    assert exc.finished == ["a", "b"] and exc.unfinished == ["c"]
    index = json.loads((tmp_path / "index.json").read_text())
    assert [m["name"] for m in index["models"]] == ["a", "b"] and index["not_finished"] == ["c"]
    assert index["models"][1]["total_params"] == 7 and index["exit_status"] == 130 and index["interrupted"]
    assert json.loads((earlier / "report.json").read_text()) == {"model": {"source": "old"}}  # left as it was
    before = (tmp_path / "index.json").read_text()
    elsewhere = batch.make_jobs(["a.keras", "b.keras"], tmp_path / "other", ("json",), Options(quiet=True))
    none = batch.interrupted(tmp_path / "other", elsewhere, [], started)  # none finished: no index at all
    assert none.finished == [] and none.index is None and not (tmp_path / "other").exists()
    assert (tmp_path / "index.json").read_text() == before


def test_ctrl_c_inside_a_finaliser_is_kept_not_printed(capsys):
    class Dies:
        def __del__(self):
            raise KeyboardInterrupt  # as a Ctrl-C that lands while a finaliser runs

    hook = sys.unraisablehook
    with batch._InterruptKept() as interrupt:
        interrupt.check()  # nothing pending: nothing raised
        Dies()  # Python would print "Exception ignored in ... KeyboardInterrupt" and go on
        with pytest.raises(KeyboardInterrupt):
            interrupt.check()  # ... raised here instead, once the current model is done
        interrupt.check()  # once
    assert capsys.readouterr().err == ""
    assert sys.unraisablehook is hook  # outside, the hook before is back


LINE = re.compile(
    r"^reportgen: interrupted: (\d+) of (\d+) models finished: (.*?)(?:; not finished: .*)?; "
    r"the index of the finished is (.*index\.html)$"
)


def _ctrl_c_as_in_a_terminal() -> None:
    """The child gets Ctrl-C's default action, as a command started from a terminal does. A test runner
    started in the background by a non-interactive shell (``nohup .ci/run &``) ignores SIGINT, every
    child inherits that, and Python then never turns a Ctrl-C into KeyboardInterrupt: the run finished
    all eight models with exit 0."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("jobs", [2, 1])
def test_ctrl_c_in_a_run_of_several_models(tmp_path, jobs):
    models = tmp_path / "models"
    models.mkdir()
    names = [f"m{i}" for i in range(8)]
    for i, name in enumerate(names):
        _tiny(seed=i).save(models / f"{name}.keras")
    out = tmp_path / "out"
    (out / "m7").mkdir(parents=True)  # an earlier report of the last model: kept unless m7 finishes
    (out / "m7" / "report.json").write_text('{"earlier": true}')
    # features too: each model must take longer than this test's reaction to its first report, or on two busy
    # cores all eight can finish before the Ctrl-C lands (it did once with layers and weights alone).
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reportgen",
            *[str(models / f"{n}.keras") for n in names],
            "--jobs",
            str(jobs),
            "--sections",
            "layers,weights,features",
            "--format",
            "json",
            "--out",
            str(out),
            "--quiet",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
        start_new_session=True,
        preexec_fn=_ctrl_c_as_in_a_terminal,
    )
    try:
        deadline = time.monotonic() + 120
        while not any((out / n / "report.json").is_file() for n in names[:-1]):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no report within 120 s"
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the whole process group, workers included
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr and "leaked" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if "interrupted" in line]
    assert len(lines) == 1, stderr
    match = LINE.match(lines[0])
    assert match, lines[0]
    count, total = int(match.group(1)), int(match.group(2))
    assert total == 8 and 1 <= count < 8  # interrupted mid-run
    index = json.loads((out / "index.json").read_text())
    finished = [m["name"] for m in index["models"]]
    assert len(finished) == count and match.group(3).split(", ")[: min(count, 5)] == finished[:5]
    assert Path(match.group(4)) == out / "index.html" and (out / "index.html").is_file()
    assert index["interrupted"] is True and index["exit_status"] == 130
    assert index["not_finished"] == [n for n in names if n not in finished]
    assert index["summary"]["models"] == count
    for name in finished:  # every listed report is complete
        data = json.loads((out / name / "report.json").read_text())
        assert [r["name"] for r in data["layers"]] == ["c1", "c2"] and set(data["weights"]) == {"c1", "c2"}
    time.sleep(1.0)  # no worker is left to write anything after the run said it was over
    entries = sorted(p.name for p in out.iterdir())
    assert not [e for e in entries if e.startswith(".")], entries  # no temporary or moved-aside folder
    expected = sorted(["index.html", "index.json", *finished] + ([] if "m7" in finished else ["m7"]))
    assert entries == expected
    if "m7" not in finished:
        assert json.loads((out / "m7" / "report.json").read_text()) == {"earlier": True}
