"""The house's rules, tested: one definition of the options, no nulls in settings, one exit-status rule,
figures that only the present stage draws, and a JSON-only run that draws nothing and never imports
plotting or PDF code."""

from __future__ import annotations

import reportgen  # noqa: F401

import json
import subprocess
import sys
import textwrap
from dataclasses import fields

import pytest

from conftest import small_cnn
from reportgen import options as O
from reportgen.cli import report_parser
from reportgen.report import EXIT_FINDINGS, EXIT_OK, EXIT_SECTION_FAILED, exit_status


def test_every_command_line_option_is_a_field_of_options():
    parser = report_parser()
    dests = {a.dest for a in parser._actions if a.dest not in ("help", "version", "model")}
    names = {f.name for f in fields(O.Options)}
    assert dests == {f.name for f in O.option_fields()} and dests <= names
    # and each flag's default is the field's default: one definition, not two
    args = parser.parse_args(["m.keras"])
    assert O.from_namespace(args) == O.Options()


def test_report_takes_every_option_as_a_keyword_and_checks_text_with_the_flags_parser():
    from reportgen.errors import UserError

    opts = O.Options(
        top_k="5", cam="gradcam,layercam", sections="weights,findings", preprocess="scale=2,offset=1"
    )
    assert (opts.top_k, opts.cam, opts.sections) == (5, ("gradcam", "layercam"), ("weights", "findings"))
    with pytest.raises(UserError, match="--top-k"):
        O.Options(top_k="zero")
    with pytest.raises(UserError, match="--cam"):
        O.Options(cam="gradcam,nope")


def test_exit_status_is_one_rule():
    warning = {"findings": [{"severity": "warning"}], "section_errors": []}
    assert exit_status(warning, None) == EXIT_OK
    assert exit_status(warning, "warning") == EXIT_FINDINGS
    assert exit_status(warning, "error") == EXIT_OK
    failed = dict(warning, section_errors=[{"section": "kernels"}])
    assert exit_status(failed, "warning") == EXIT_SECTION_FAILED  # a failed section may hide findings


def _nulls(value, where="settings"):
    if value is None:
        return [where]
    if isinstance(value, dict):
        return [w for k, v in value.items() for w in _nulls(v, f"{where}.{k}")]
    if isinstance(value, list):
        return [w for i, v in enumerate(value) for w in _nulls(v, f"{where}[{i}]")]
    return []


@pytest.mark.parametrize("sections", ["all", "weights"])
def test_settings_hold_the_values_used_and_no_nulls(cli, tmp_path, sections):
    model = small_cnn((12, 12, 1), classes=3, name="tiny")
    model.save(tmp_path / "tiny.keras")
    args = ["--pattern-filters", "2", "--pattern-steps", "2"] + (
        [] if sections == "all" else ["--sections", sections]
    )
    res = cli(tmp_path / "tiny.keras", "--format", "json", "--out", tmp_path, "--quiet", *args)
    assert res.status == 0, res.stderr
    data = json.loads((tmp_path / "tiny" / "report.json").read_text())
    settings = data["settings"]
    assert _nulls(settings) == []
    if sections == "all":
        assert settings["gradcam_layer"] == data["gradcam"]["layer"] == "conv_b"
        assert settings["pattern_layers"] == list(data["patterns"]) and settings["pattern_steps"] == 2
        assert settings["pattern_size"] == data["patterns"]["conv_a"]["size"]
        assert settings["kernel_channel"] == {p: k["channel"] for p, k in data["kernels"].items()}
        assert settings["layers"] == data["feature_maps"]["layers"]
        assert settings["output"] == "head" and settings["preprocess"] == "unit"
    else:
        assert settings["gradcam_layer"].startswith("not used")


def test_a_json_only_report_draws_nothing_and_imports_no_plotting_or_pdf_code(tmp_path):
    model = small_cnn((12, 12, 3), classes=2, name="plain")
    model.save(tmp_path / "plain.keras")
    script = textwrap.dedent(f"""
        import sys
        from reportgen import figures
        made, draw, init = [], figures.Figure.draw, figures.Figure.__init__
        def record(self, *a, **k):
            init(self, *a, **k)
            made.append(self)
        figures.Figure.__init__ = record
        figures.Figure.draw = lambda self: sys.exit("a figure was drawn: " + repr(self))
        from reportgen.cli import main
        rc = main([{str(tmp_path / "plain.keras")!r}, "--format", "json", "--out", {str(tmp_path)!r},
                   "--quiet",
                   "--pattern-filters", "2", "--pattern-steps", "2"])
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("matplotlib", "weasyprint", "jinja2")
                       or m.startswith("reportgen.painters"))
        print(rc, heavy[:3], len(made) > 10, any(f.drawn for f in made))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    # The sections described their figures (more than 10 of them), and none was drawn.
    assert out.stdout.strip().splitlines()[-1] == "0 [] True False", out.stdout + out.stderr[-2000:]
    data = json.loads((tmp_path / "plain" / "report.json").read_text())
    assert data["section_errors"] == [] and data["gradcam"]["layer"] and data["patterns"]


def test_a_figure_is_a_spec_drawn_once_when_asked_never_a_string(monkeypatch):
    import numpy as np

    from reportgen import render
    from reportgen.figures import PAINTERS, Figure

    calls = []

    def paint(values, title):
        calls.append(title)
        return "data:image/png;base64,iVBORw0KGgo="

    monkeypatch.setitem(PAINTERS, "test.paint", paint)
    fig = Figure("test.paint", np.arange(3), title="t")
    assert fig and not fig.drawn and fig.painter == "test.paint" and fig.kwargs == {"title": "t"}
    # Nothing that treats it as text draws it, and it is not equal to the text it draws.
    for text in (str(fig), repr(fig), f"{fig}"):
        assert "data:" not in text
    assert fig != "data:image/png;base64,iVBORw0KGgo=" and fig == fig and fig != Figure("test.paint")
    assert hash(fig) == object.__hash__(fig)
    with pytest.raises(TypeError):
        len(fig)
    with pytest.raises(AttributeError):
        fig.startswith  # noqa: B018
    with pytest.raises(TypeError, match="undrawn"):  # a template never draws one itself
        render.environment().from_string("<img src='{{ f }}'>").render(f=fig)
    assert calls == []
    assert fig.draw() == fig.draw() == "data:image/png;base64,iVBORw0KGgo=" and calls == ["t"] and fig.drawn
    page = render.draw_figures({"s": [{"figure": fig, "n": 1}], "other": (1, "a")})
    assert page == {"s": [{"figure": "data:image/png;base64,iVBORw0KGgo=", "n": 1}], "other": (1, "a")}
    with pytest.raises(LookupError, match="no painter 'nope'"):
        Figure("nope").draw()


def test_no_import_cycles_anywhere_and_options_and_report_at_the_top():
    """No module of reportgen imports itself back through others, inside a package too (import-linter's
    layer contracts cover only the listed layers); and ``from reportgen import Options, Report`` works."""
    import grimp

    graph = grimp.build_graph("reportgen")
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph.find_modules_directly_imported_by(v)):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    assert cycles == []
    from reportgen import Options, Report  # noqa: F401
