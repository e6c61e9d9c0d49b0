"""The Python API: ``Report(model, images=..., **options)``, lazy, writing only when asked."""

from __future__ import annotations

import reportgen  # noqa: F401

import json

import keras
import numpy as np
import pytest

from reportgen import Report
from reportgen.graph import forward


def test_nothing_is_computed_or_written_until_asked(small_model, tmp_path, monkeypatch):
    calls = []
    real = forward.run
    monkeypatch.setattr(forward, "run", lambda *a, **k: calls.append(1) or real(*a, **k))
    monkeypatch.chdir(tmp_path)
    r = Report(small_model, sections="overview,layers,weights,findings", top_k=2)
    assert calls == [] and list(tmp_path.iterdir()) == []
    assert "not computed yet" in repr(r)
    findings = r.findings  # computes now, in memory
    assert isinstance(findings, list) and list(tmp_path.iterdir()) == []
    assert r.json["sections"] == ["findings", "overview", "layers", "weights"]
    assert r.json["model"]["total_params"] == small_model.count_params()
    before = len(calls)
    assert r.json is not None and len(calls) == before  # computed once


def test_to_file_by_suffix_and_the_same_numbers_as_the_cli(saved_small, tmp_path, cli):
    r = Report(saved_small, sections=["overview", "weights"])
    out = r.to_file(tmp_path / "one" / "x.json")
    assert out == tmp_path / "one" / "x.json" and [p.name for p in out.parent.iterdir()] == ["x.json"]
    data = json.loads(out.read_text())
    res = cli(
        saved_small,
        "--sections",
        "overview,weights",
        "--format",
        "json",
        "--out",
        tmp_path / "cli",
        "--quiet",
    )
    assert res.status == 0
    cli_data = json.loads((tmp_path / "cli" / "small-model" / "report.json").read_text())
    assert data["weights"] == cli_data["weights"]
    html = r.to_file(tmp_path / "x.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and 'id="weights"' in html
    pdf = r.to_file(tmp_path / "x.pdf")
    assert pdf.read_bytes()[:4] == b"%PDF"
    with pytest.raises(reportgen.errors.UserError, match="give a .html, .pdf or .json"):
        r.to_file(tmp_path / "x.docx")


def test_repr_html_shows_the_report_inline(small_model):
    r = Report(small_model, sections="overview,layers")
    frame = r._repr_html_()
    assert frame.startswith("<iframe srcdoc=") and "&lt;!DOCTYPE html&gt;" in frame
    import html

    page = html.unescape(frame.split('srcdoc="', 1)[1].split('" style=', 1)[0])
    assert page == r.html() and "small_cnn" in page and "conv_<wbr>a" in page


def test_images_as_arrays_and_options_by_keyword(small_model):
    pixels = np.random.default_rng(0).integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    r = Report(small_model, images=pixels, sections="gradcam", top_k=2, cam="gradcam,layercam")
    data = r.json
    assert len(data["images"]) == 2 and {g["method"] for g in data["images"][0]["gradcam"]} == {
        "gradcam",
        "layercam",
    }
    probs = keras.ops.convert_to_numpy(small_model(pixels.astype("float32") / 255.0))
    got = [p["probability"] for p in data["images"][1]["predictions"]]
    np.testing.assert_allclose(got, np.sort(probs[1])[::-1][:2], rtol=1e-5)


def test_unknown_option_names_the_valid_ones(small_model):
    with pytest.raises(TypeError, match="unexpected option.*top_kk.*valid options: .*top_k"):
        Report(small_model, top_kk=3)
    with pytest.raises(reportgen.errors.UserError, match="unknown section 'wieghts'"):
        Report(small_model, sections="wieghts")


def test_a_model_by_name_loads_lazily():
    r = Report("mobilenet_v3_small", weights="none", sections="overview")
    assert r._loaded is None
    assert r.name == "mobilenet_v3_small" and r._loaded is not None


@pytest.mark.parametrize("name, folder", [("..", "model"), ("a\\b\tc", "a_b_c"), ("模型" * 150, None)])
def test_any_model_name_keras_accepts_gets_a_report_folder(name, folder, tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(2, 3, name="c"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(2, activation="softmax"),
        ],
        name=name,
    )
    out = Report(model, sections="overview,layers").to_folder(tmp_path, formats=("json",))
    assert out.parent == tmp_path and (out / "report.json").exists()
    if folder is not None:
        assert out.name == folder
    else:  # a long name is cut to 200 bytes at a character boundary, and a hash of the whole name added
        assert len(out.name.encode()) <= 200 and name.startswith(out.name.rsplit("-", 1)[0])


def test_long_names_alike_at_the_start_get_distinct_folders():
    from reportgen.names import folder_name

    a, b = "m" * 300 + "-epoch-1", "m" * 300 + "-epoch-2"
    assert folder_name(a) != folder_name(b)
    assert all(len(folder_name(n).encode()) <= 200 for n in (a, b))
    assert folder_name("m" * 200) == "m" * 200  # a name that fits is kept as it is


def test_a_file_name_that_is_not_utf8_gets_a_readable_report(saved_small, tmp_path, cli):
    import os

    odd = os.fsdecode(bytes(tmp_path) + b"/model\xff.keras")
    os.rename(saved_small, odd)
    result = cli(
        odd,
        "--sections",
        "overview,layers",
        "--format",
        "json",
        "--format",
        "html",
        "--out",
        tmp_path / "r",
        "--quiet",
    )
    assert result.status == 0, result.err
    folder = next((tmp_path / "r").iterdir())
    data = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    assert data["model"]["name"] == "model\ufffd"
    assert "model\ufffd" in (folder / "report.html").read_text(encoding="utf-8")
