"""Two keras.applications architectures that used to crash, at small settings.

MobileNetV3Small holds graph operations that are not layers (``x + y``,
``x * y``); InceptionV3's last stage needs a 75-pixel input, more than the
default 64-pixel patterns. ``bench/zoo.py`` runs all 40 architectures.
"""

from __future__ import annotations

import reportgen  # noqa: F401

import json

from reportgen import graph
from reportgen.loading import load


def test_operations_architecture_gets_every_section(mobilenet_v3_small_report):
    # the command (every section, --pattern-steps 1) runs once per session; test_browser opens its HTML
    res, folder = mobilenet_v3_small_report
    assert res.status == 0, res.stderr
    data = json.loads((folder / "report.json").read_text())
    assert data["section_errors"] == []
    ops = [r for r in data["layers"] if r["operation"]]
    assert {r["class_name"] for r in ops} >= {"Add", "Multiply"} and all(r["params"] == 0 for r in ops)
    assert sum(r["params"] for r in data["layers"] if r["depth"] == 0) == data["model"]["total_params"]
    assert data["patterns"] and data["weights"]
    # an untrained model: one "untrained" finding over many layers, not one per layer
    untrained = [f for f in data["findings"] if f["kind"] == "untrained_layer"]
    assert len(untrained) == 1 and len(untrained[0]["layers"]) > 20


def test_minimum_input_size_is_found_for_the_patterns(tmp_path, cli):
    model = load("inception_v3", weights="none").model
    last = graph.default_pattern_layers(model)[-1].path
    assert graph.min_input_size(model, last, 64) == 75  # the documented minimum of InceptionV3
    res = cli(
        "inception_v3",
        "--weights",
        "none",
        "--format",
        "json",
        "--out",
        tmp_path,
        "--quiet",
        "--sections",
        "patterns",
        "--pattern-steps",
        "1",
        "--pattern-filters",
        "2",
    )
    assert res.status == 0, res.stderr
    data = json.loads((tmp_path / "inception_v3" / "report.json").read_text())
    assert data["section_errors"] == []
    assert {e["size"] for e in data["patterns"].values()} == {75}
