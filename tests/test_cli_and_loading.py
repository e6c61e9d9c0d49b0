"""Loading, CLI behaviour and every bad input of the report pipeline issue."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from conftest import nested_cnn, small_cnn
from reportgen.loading import load

SPINE = "overview,layers,weights,kernels"


def assert_bad_input(result, *words):
    assert result.status == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("reportgen: error: ")
    assert "Traceback" not in result.stderr
    for word in words:
        assert word.lower() in lines[0].lower()


def test_report_from_a_keras_file_is_named_after_the_file_stem(cli, saved_small, tmp_path):
    out = tmp_path / "out"
    result = cli(saved_small, "--out", out, "--sections", SPINE, "--quiet")
    assert result.status == 0, result.stderr
    folder = out / "small-model"
    assert sorted(p.name for p in folder.iterdir()) == ["report.html", "report.json", "report.pdf"]
    data = json.loads((folder / "report.json").read_text())
    model = keras.saving.load_model(saved_small)
    assert data["model"]["name"] == "small-model"
    assert data["model"]["total_params"] == model.count_params()
    assert data["model"]["trainable_params"] + data["model"]["non_trainable_params"] == model.count_params()
    assert data["model"]["input_shape"] == [None, 16, 16, 3]
    assert data["model"]["output_shape"] == [None, 4]
    import hashlib

    assert data["model"]["sha256"] == hashlib.sha256(saved_small.read_bytes()).hexdigest()
    assert set(data["versions"]) >= {"tensorflow", "keras", "reportgen"}
    assert [r["name"] for r in data["layers"]] == ["conv_a", "pool_a", "conv_b", "gap", "head"]
    assert data["layers"][0]["kernel_shape"] == [3, 3, 3, 8]
    # only the formats asked for
    result = cli(saved_small, "--out", tmp_path / "j", "--sections", "layers", "--format", "json", "--quiet")
    assert result.status == 0
    assert [p.name for p in (tmp_path / "j" / "small-model").iterdir()] == ["report.json"]


def test_h5_full_model_loads_like_the_tutorials_checkpoint(cli, tmp_path):
    path = tmp_path / "best-cnn-model.h5"
    small_cnn().save(path)
    result = cli(path, "--out", tmp_path, "--sections", "layers", "--format", "json", "--quiet")
    assert result.status == 0, result.stderr
    assert (tmp_path / "best-cnn-model" / "report.json").is_file()


def test_nested_model_layers_appear_with_their_path(cli, tmp_path):
    path = tmp_path / "transfer.keras"
    nested_cnn().save(path)
    result = cli(path, "--out", tmp_path, "--sections", SPINE, "--format", "json", "--quiet")
    assert result.status == 0, result.stderr
    data = json.loads((tmp_path / "transfer" / "report.json").read_text())
    names = [r["name"] for r in data["layers"]]
    assert "backbone/block1_conv1" in names and "backbone/block2_conv1" in names
    assert "backbone/block1_conv1" in data["weights"] and "backbone/block1_conv1" in data["kernels"]


@pytest.fixture(scope="module")
def mobilenet_v2():
    """``keras.applications.MobileNetV2(weights=None)``, built once; the tests below only read it."""
    return keras.applications.MobileNetV2(weights=None)


def test_architecture_by_name_without_weights(cli, tmp_path, mobilenet_v2):
    result = cli(
        "mobilenet_v2",
        "--weights",
        "none",
        "--out",
        tmp_path,
        "--sections",
        "overview,layers",
        "--format",
        "json",
        "--quiet",
    )
    assert result.status == 0, result.stderr
    data = json.loads((tmp_path / "mobilenet_v2" / "report.json").read_text())
    reference = mobilenet_v2
    assert data["model"]["total_params"] == reference.count_params()
    assert "weights=none" in data["model"]["source"]


def test_local_weights_file_for_an_architecture(tmp_path, mobilenet_v2):
    # a model saved with its own weights loads through --weights PATH when the architecture matches
    weights = tmp_path / "mnv2.weights.h5"
    full = mobilenet_v2
    full.save_weights(weights)
    loaded = load("mobilenet_v2", weights=str(weights))
    np.testing.assert_array_equal(loaded.model.weights[0].numpy(), full.weights[0].numpy())
    assert loaded.sha256 is not None


def test_offline_imagenet_download_names_the_alternatives(cli, tmp_path, monkeypatch):
    from keras.src.utils import file_utils

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure: [Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(file_utils, "get_file", offline)
    result = cli("vgg16", "--out", tmp_path)
    assert_bad_input(result, "--weights none", "imagenet")
    assert not (tmp_path / "vgg16").exists()


def _lambda_model_file(tmp_path: Path) -> Path:
    inp = keras.Input((4,))
    out = keras.layers.Lambda(lambda x: x * 2.0, name="doubler")(inp)
    out = keras.layers.Dense(2, name="fc")(out)
    path = tmp_path / "lambda-model.keras"
    keras.Model(inp, out).save(path)
    return path


def test_safe_mode_refuses_lambda_code_and_unsafe_allows_it(cli, tmp_path):
    path = _lambda_model_file(tmp_path)
    result = cli(path, "--out", tmp_path / "out", "--sections", "layers", "--quiet")
    assert_bad_input(result, "--unsafe", "lambda")
    assert not (tmp_path / "out" / "lambda-model").exists()
    result = cli(
        path, "--unsafe", "--out", tmp_path / "out", "--sections", "layers", "--format", "json", "--quiet"
    )
    assert result.status == 0, result.stderr
    data = json.loads((tmp_path / "out" / "lambda-model" / "report.json").read_text())
    assert [r["class_name"] for r in data["layers"]] == ["Lambda", "Dense"]


@pytest.mark.parametrize(
    "case",
    [
        "missing",
        "directory",
        "text",
        "truncated_keras",
        "truncated_h5",
        "unknown_arch",
        "wrong_suffix",
        "bad_section",
        "bad_flag",
    ],
)
def test_bad_input_is_one_line_exit_2_and_no_report(cli, tmp_path, saved_small, case):
    out = tmp_path / "out"
    if case == "missing":
        args, words = [tmp_path / "nope.keras"], ["does not exist"]
    elif case == "directory":
        (tmp_path / "models.keras").mkdir()
        args, words = [tmp_path / "models.keras"], ["directory"]
    elif case == "text":
        p = tmp_path / "notes.keras"
        p.write_text("this is not a model\n")
        args, words = [p], ["notes.keras", "model.save"]
    elif case == "truncated_keras":
        p = tmp_path / "cut.keras"
        p.write_bytes(saved_small.read_bytes()[: saved_small.stat().st_size // 2])
        args, words = [p], ["cut.keras"]
    elif case == "truncated_h5":
        full = tmp_path / "full.h5"
        small_cnn().save(full)
        p = tmp_path / "cut.h5"
        p.write_bytes(full.read_bytes()[: full.stat().st_size // 3])
        args, words = [p], ["cut.h5"]
    elif case == "unknown_arch":
        args, words = ["vgg17"], ["unknown architecture", "vgg16"]
    elif case == "wrong_suffix":
        p = tmp_path / "model.txt"
        p.write_text("x")
        args, words = [p], [".keras"]
    elif case == "bad_section":
        args, words = [saved_small, "--sections", "layers,colour"], ["colour", "overview"]
    else:
        args, words = [saved_small, "--max-filters", "0"], ["--max-filters", "at least 1"]
    result = cli(*args, "--out", out)
    assert_bad_input(result, *words)
    assert not out.exists() or not any(p for p in out.iterdir() if not p.name.startswith("."))


def test_unwritable_out_is_refused_before_any_work(cli, tmp_path, saved_small):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert_bad_input(cli(saved_small, "--out", blocker / "reports"), "--out")
    if os.geteuid() != 0:  # root can write anywhere; the permission case needs a normal user
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        assert_bad_input(cli(saved_small, "--out", locked), "not writable")


def test_failed_run_keeps_the_earlier_good_report(cli, tmp_path, saved_small, monkeypatch):
    out = tmp_path / "out"
    assert cli(saved_small, "--out", out, "--sections", "layers", "--format", "json", "--quiet").status == 0
    good = (out / "small-model" / "report.json").read_bytes()

    import reportgen.render as render

    def broken_pdf(*args, **kwargs):
        raise KeyboardInterrupt  # Ctrl-C in the middle of rendering

    monkeypatch.setattr(render, "render_html", broken_pdf)
    result = cli(saved_small, "--out", out, "--sections", "layers", "--quiet")
    assert result.status == 130
    assert (out / "small-model" / "report.json").read_bytes() == good
    assert sorted(p.name for p in out.iterdir()) == ["small-model"]  # no temp folder left behind


def test_user_named_strings_are_escaped_in_html(cli, tmp_path):
    keras.utils.set_random_seed(0)
    evil = "<img src=x onerror=alert(1)>"
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(2, 3, name=evil),
            keras.layers.Flatten(),
            keras.layers.Dense(2, name="fc"),
        ]
    )
    path = tmp_path / "<b>bold<i>.keras"
    model.save(path)
    result = cli(path, "--out", tmp_path / "out", "--sections", SPINE, "--format", "html", "--quiet")
    assert result.status == 0, result.stderr
    html = (tmp_path / "out" / "<b>bold<i>" / "report.html").read_text()
    assert evil not in html and "<b>bold" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html


def test_html_is_self_contained_and_pdf_has_one_bookmark_per_section(cli, saved_small, tmp_path):
    import pypdfium2 as pdfium

    assert cli(saved_small, "--out", tmp_path, "--sections", SPINE, "--quiet").status == 0
    html = (tmp_path / "small-model" / "report.html").read_text()
    assert "http://" not in html and "https://" not in html
    assert 'src="data:image/png;base64,' in html
    assert 'href="#kernels"' in html  # table of contents
    pdf = pdfium.PdfDocument(str(tmp_path / "small-model" / "report.pdf"))
    titles = [item.get_title() for item in pdf.get_toc()]
    from reportgen import sections

    expected = [sections.module(n).TITLE for n in ("overview", "layers", "weights", "kernels")]
    assert titles == expected
    assert len(pdf) >= 3
    text = pdf[0].get_textpage().get_text_range()
    assert "page 1 of" in text


def test_command_line_entry_points_print_no_traceback(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    proc = subprocess.run(
        [sys.executable, "-m", "reportgen", str(tmp_path / "missing.h5")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "does not exist" in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "reportgen", "--help"], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0 and "--sections" in proc.stdout and "--fail-on" in proc.stdout
