"""--junit FILE: a JUnit XML file CI systems read, failing when and only when the exit status is 1."""

from __future__ import annotations

import reportgen  # noqa: F401

import xml.etree.ElementTree as ET

import pytest

from conftest import small_cnn


def _with_dead_filter(path):
    """A small CNN whose conv_b filter 5 is all zeros (a dead filter: a warning)."""
    model = small_cnn((12, 12, 3), classes=3, name="deadish")
    kernel, bias = model.get_layer("conv_b").get_weights()
    kernel[..., 5] = 0.0
    bias[5] = 0.0
    model.get_layer("conv_b").set_weights([kernel, bias])
    model.save(path)
    return path


def _parse(path):
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites"
    return root


FAST = ("--sections", "weights,kernels,findings", "--format", "json", "--quiet")


@pytest.mark.parametrize("fail_on, status", [(None, 0), ("warning", 1), ("error", 0)])
def test_one_model_fails_exactly_when_the_gate_does(cli, tmp_path, fail_on, status):
    model = _with_dead_filter(tmp_path / "deadish.keras")
    gate = ("--fail-on", fail_on) if fail_on else ()
    res = cli(model, "--out", tmp_path, "--junit", tmp_path / "junit.xml", *FAST, *gate)
    assert res.status == status, res.stderr
    root = _parse(tmp_path / "junit.xml")
    [suite] = root.findall("testsuite")
    cases = {c.get("name").split(" ")[0]: c for c in suite.findall("testcase")}
    assert "dead_filter" in cases and "untrained_layer" in cases  # every kind that was checked, passed or not
    assert "inactive_unit" not in cases  # the activation checks need images and did not run
    failures = root.findall(".//failure")
    assert (len(failures) > 0) == (status == 1) and int(root.get("failures")) == len(failures)
    if status == 1:
        failing = {
            c.get("name").split(" ")[0]: c for c in suite.findall("testcase") if c.find("failure") is not None
        }
        assert "filter 5" in failing["dead_filter"].find("failure").text
        assert set(failing) <= {
            "dead_filter",
            "untrained_layer",
        }  # this fresh model's layers look untrained too
    else:  # the finding is still there, as output, not as a failure
        assert "filter 5" in cases["dead_filter"].find("system-out").text


def test_a_failed_section_is_an_error(cli, tmp_path, monkeypatch):
    from reportgen.sections import kernels

    def broken(ctx):
        raise RuntimeError("kernel grid exploded")

    monkeypatch.setattr(kernels, "run", broken)
    model = _with_dead_filter(tmp_path / "deadish.keras")
    res = cli(model, "--out", tmp_path, "--junit", tmp_path / "junit.xml", *FAST)
    assert res.status == 3
    root = _parse(tmp_path / "junit.xml")
    errors = root.findall(".//testcase/error")
    assert len(errors) == 1 and errors[0].get("type") == "RuntimeError" and root.get("errors") == "1"
    assert not root.findall(".//failure")


def test_several_models_and_the_index_write_one_suite_each(cli, tmp_path):
    (tmp_path / "m").mkdir()
    _with_dead_filter(tmp_path / "m" / "a.keras")
    small_cnn((12, 12, 3), classes=3, name="clean").save(tmp_path / "m" / "b.keras")
    (tmp_path / "m" / "c.keras").write_bytes(b"not a model")
    out = tmp_path / "out"
    res = cli(tmp_path / "m", "--out", out, "--junit", tmp_path / "run.xml", "--fail-on", "warning", *FAST)
    assert res.status == 2  # one model could not be read
    root = _parse(tmp_path / "run.xml")
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert set(suites) == {"reportgen a", "reportgen b", "reportgen c"}

    def failing(suite):
        return {
            c.get("name").split(" ")[0] for c in suite.findall("testcase") if c.find("failure") is not None
        }

    assert "dead_filter" in failing(suites["reportgen a"]) and "dead_filter" not in failing(
        suites["reportgen b"]
    )
    assert suites["reportgen c"].find(".//error") is not None
    res = cli(
        "index", out, "--junit", tmp_path / "index.xml", "--fail-on", "warning", "--no-drift", "--quiet"
    )
    assert res.status == 0, res.stderr
    again = _parse(tmp_path / "index.xml")
    assert {s.get("name") for s in again.findall("testsuite")} == {"reportgen a", "reportgen b"}
    indexed = {s.get("name"): s for s in again.findall("testsuite")}
    for name in ("reportgen a", "reportgen b"):  # the same file as the run wrote, read back from report.json
        assert ET.canonicalize(ET.tostring(indexed[name]), strip_text=True) == ET.canonicalize(
            ET.tostring(suites[name]), strip_text=True
        )
