"""A section that raises does not sink the report; the command line answers without loading Keras."""

from __future__ import annotations

import reportgen  # noqa: F401

import json
import subprocess
import sys

import pytest

from reportgen.sections import kernels


@pytest.fixture
def broken_kernels(monkeypatch):
    def explode(ctx):
        raise RuntimeError("planted failure\nsecond line of the message")

    monkeypatch.setattr(kernels, "run", explode)


def test_a_failing_section_is_reported_and_the_rest_is_written(saved_small, tmp_path, cli, broken_kernels):
    res = cli(saved_small, "--sections", "overview,weights,kernels,findings", "--out", tmp_path, "--quiet")
    assert res.status == 3, res.stderr
    assert "1 section(s) failed: kernels (RuntimeError)" in res.stderr and res.stderr.count("\n") == 1
    folder = tmp_path / "small-model"
    data = json.loads((folder / "report.json").read_text())
    assert data["section_errors"] == [
        {"section": "kernels", "error": "RuntimeError", "message": "planted failure"}
    ]
    assert data["weights"] and data["findings_summary"]  # the other sections are complete
    log = (folder / "errors.log").read_text()
    assert "Traceback" in log and "planted failure" in log and "explode" in log
    html = (folder / "report.html").read_text()
    assert "1 section failed" in html and 'href="#kernels"' in html
    assert "This section failed: RuntimeError: planted failure" in html
    import pypdfium2

    pdf = pypdfium2.PdfDocument(str(folder / "report.pdf"))
    first = pdf[0].get_textpage().get_text_range()
    assert "section failed" in first  # page 1 says which sections failed
    text = "".join(pdf[i].get_textpage().get_text_range() for i in range(len(pdf)))
    assert "This section failed: RuntimeError: planted failure" in text


def test_bad_input_is_still_exit_2_with_nothing_written(saved_small, tmp_path, cli, broken_kernels):
    res = cli(saved_small, "--layers", "nope", "--out", tmp_path / "never", "--quiet")
    assert res.status == 2 and not (tmp_path / "never").exists()


@pytest.mark.parametrize(
    "args",
    [["--help"], ["--version"], ["model.keras", "--top-k", "0"], ["--bogus"], ["m.keras", "--cam", "nope"]],
)
def test_the_command_line_answers_without_importing_keras(args):
    code = (
        "import sys; from reportgen.cli import main\n"
        "try:\n    status = main(sys.argv[1:])\nexcept SystemExit as e:\n    status = e.code\n"
        "heavy = [m for m in ('keras', 'tensorflow', 'jax', 'torch') if m in sys.modules]\n"
        "print('HEAVY', heavy, 'STATUS', status)"
    )
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60)
    assert "HEAVY [] STATUS" in out.stdout, out.stdout + out.stderr
    if args[0] not in ("--help", "--version"):
        assert "STATUS 2" in out.stdout and out.stderr.count("\n") == 1


def test_unknown_cam_method_lists_the_valid_ones(cli, tmp_path):
    res = cli("m.keras", "--cam", "gradcam,eigencam", "--out", tmp_path)
    assert (
        res.status == 2
        and "unknown method 'eigencam'; choose from gradcam,gradcampp,layercam,scorecam" in res.stderr
    )


def test_unknown_backend_names_the_extra(tmp_path):
    code = "import sys; from reportgen.cli import main; sys.exit(main(sys.argv[1:]))"
    for backend, needle in (("mxnet", "not a backend reportgen supports"),):
        out = subprocess.run(
            [sys.executable, "-c", code, "vgg16", "--out", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=120,
            env={**__import__("os").environ, "KERAS_BACKEND": backend},
        )
        assert out.returncode == 2 and needle in out.stderr and out.stderr.count("\n") == 1


def test_a_backend_that_is_not_installed_names_the_extra(monkeypatch):
    import importlib.util

    from reportgen import backend
    from reportgen.errors import UserError

    real = importlib.util.find_spec
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a)
    )
    with pytest.raises(
        UserError, match=r"KERAS_BACKEND=torch but torch is not installed; pip install 'reportgen\[torch\]'"
    ):
        backend.check_installed()
