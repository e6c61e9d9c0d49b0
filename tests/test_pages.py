"""What the pages show: tick labels, figure layout, the kernel channel drawn, charts with nothing to
show, and findings that explain other findings -- each checked against NumPy on the model's own
weights and activations, or against the drawn figure's own geometry."""

from __future__ import annotations

import reportgen  # noqa: F401

import json

import keras
import numpy as np
import pytest

from reportgen import Report, graph
from reportgen.analyses import findings as F
from reportgen.analyses.kernel_grid import kernel_grid
from reportgen.analyses.weights import weight_analysis
from reportgen.config import Thresholds
from reportgen.painters import dataset as dataset_painters
from reportgen.painters import findings as findings_painters
from reportgen.sections import findings as findings_section

T = Thresholds()


def _keep_figure(monkeypatch, module):
    """Replace ``module.fig_to_uri`` so the drawn figure is kept (drawn, not encoded)."""
    captured = {}

    def keep(fig, **_):
        fig.canvas.draw()
        captured["fig"] = fig
        return "data:image/png;base64,"

    monkeypatch.setattr(module, "fig_to_uri", keep)
    return captured


# --- 1. the BatchNormalization chart's log axis ----------------------------------------


def test_bn_chart_ticks_are_plain_numbers_not_mathtext():
    rng = np.random.default_rng(0)
    gamma = rng.uniform(0.5, 1.5, 16)
    gamma[4] = 0.0
    var = rng.uniform(0.01, 2.0, 16)
    var[9] = 1e-9
    fig = findings_painters.bn_chart("bn", gamma, var, T.bn_gamma, T.bn_variance)
    fig.canvas.draw()
    texts = [t.get_text() for ax in fig.axes for t in ax.get_yticklabels(which="both") if t.get_text()]
    assert texts, "the log axes carry no tick labels"
    assert not any("$" in t or "mathdefault" in t for t in texts), texts
    values = [float(t) for t in texts]  # every label reads as a number
    assert any(abs(v - 1e-6) < 1e-18 for v in values) or any(abs(v - 0.001) < 1e-15 for v in values), texts
    # Bars drawn: one per channel, red exactly where the channel is at or below its threshold.
    for ax, values_, limit in zip(fig.axes, (np.abs(gamma), var), (T.bn_gamma, T.bn_variance)):
        bars = ax.patches
        assert len(bars) == 16
        red = [i for i, b in enumerate(bars) if b.get_facecolor()[0] > 0.6 and b.get_facecolor()[2] < 0.3]
        assert red == list(np.flatnonzero(values_ <= limit))


def test_bn_chart_says_when_channels_are_not_finite():
    gamma, var = np.array([1.0, np.nan, 0.5]), np.array([1.0, 2.0, np.inf])
    fig = findings_painters.bn_chart("bn", gamma, var, T.bn_gamma, T.bn_variance)
    titles = [ax.get_title() for ax in fig.axes]
    assert "1 NaN/Inf channel(s) not drawn" in titles[0] and "1 NaN/Inf" in titles[1]
    assert [len(ax.patches) for ax in fig.axes] == [2, 2]


# --- 2. mean Grad-CAM per class: titles clear of the tiles -------------------------------


def _apart(a, b, tol: float = 0.5) -> bool:
    """Two boxes share no area (touching edges allowed, within ``tol`` pixels)."""
    return a.x1 <= b.x0 + tol or b.x1 <= a.x0 + tol or a.y1 <= b.y0 + tol or b.y1 <= a.y0 + tol


@pytest.mark.parametrize(
    "n, name", [(11, "{i}"), (10, "a very long class name number {i}"), (32, "class {i}"), (3, "x" * 40)]
)
def test_mean_cam_titles_sit_clear_of_every_tile(monkeypatch, n, name):
    captured = _keep_figure(monkeypatch, dataset_painters)
    rng = np.random.default_rng(1)
    maps = [("all" if i == 0 else name.format(i=i), rng.random((7, 9)), 20 + i) for i in range(n)]
    dataset_painters.mean_cam_figure(maps, "block5_conv3")
    fig = captured["fig"]
    renderer = fig.canvas.get_renderer()
    colour_bar = fig.axes[-1]  # the scale of every tile (issue 27): one bar, clear of the tiles
    axes = fig.axes[:-1]
    assert len(axes) == n and colour_bar.get_ylabel().startswith("mean of maps")
    boxes = [ax.get_window_extent(renderer) for ax in axes]
    bar = colour_bar.get_window_extent(renderer)
    assert all(not bar.overlaps(b) for b in boxes) and fig.bbox.contains(bar.x1 - 1, bar.y1 - 1)
    page = fig.bbox
    suptitle = fig._suptitle.get_window_extent(renderer)
    for i, ax in enumerate(axes):
        title = ax.title.get_window_extent(renderer)
        assert ax.title.get_text().split("\n")[1] == f"{20 + i} images"
        assert title.y0 >= boxes[i].y1 - 0.5  # above its own tile
        for j, box in enumerate(boxes):
            assert _apart(title, box), (i, j, ax.title.get_text())
        for k, other in enumerate(axes):
            if k != i:
                assert _apart(title, other.title.get_window_extent(renderer)), (i, k)
        assert _apart(title, suptitle)
        assert page.x0 <= title.x0 and title.x1 <= page.x1 and title.y1 <= page.y1, ax.title.get_text()
    # the tiles keep the map's aspect (7 x 9)
    assert boxes[0].height / boxes[0].width == pytest.approx(7 / 9, rel=0.02)


@pytest.mark.parametrize(
    "title", ["conv2d: input channel 0 (largest kernel norm), ±0.248", "x" * 40 + "/" * 60]
)
def test_a_kernel_grid_title_stays_clear_of_its_colour_bar(monkeypatch, title):
    """A ViT's patch embedding has a long path: its grid's title ran under the colour bar (issue 32's PDF
    pages). A long title gets a smaller font, then a second line, inside its tiles' width."""
    from reportgen import plots

    captured = _keep_figure(monkeypatch, plots)
    grid = {"limit": 0.05, "tiles": [np.full((8, 8), 0.01 * (i % 5 - 2)) for i in range(32)], "labels": None}
    long = "vi_t_backbone/vit_patching_and_embedding/patch_embedding: " + title
    from reportgen.painters.kernels import grid_figure

    grid_figure(grid, long)
    fig = captured["fig"]
    renderer = fig.canvas.get_renderer()
    tiles, bar = fig.axes[0], fig.axes[-1]
    box = tiles.title.get_window_extent(renderer)
    assert box.x1 <= bar.get_window_extent(renderer).x0
    assert box.x1 <= tiles.get_window_extent(renderer).x1 + 1 and tiles.title.get_fontsize() >= 8
    assert "".join(tiles.title.get_text().split()) == "".join(long.split())  # all of it, on more lines


# --- 3. the kernel grid's input channel --------------------------------------------------


def _dead_channel_model():
    """conv_a's filter 0 is dead, so conv_b's input channel 0 carries nothing: its taps there are zero."""
    keras.utils.set_random_seed(3)
    model = keras.Sequential(
        [
            keras.Input((12, 12, 3)),
            keras.layers.Conv2D(6, 3, activation="relu", padding="same", name="conv_a"),
            keras.layers.Conv2D(8, 3, activation="relu", padding="same", name="conv_b"),
            keras.layers.Conv2D(5, 3, padding="same", name="conv_c"),
            keras.layers.GlobalAveragePooling2D(name="gap"),
            keras.layers.Dense(3, activation="softmax", name="head"),
        ],
        name="dead_channel",
    )
    k = model.get_layer("conv_b").kernel.numpy()
    k[:, :, 0, :] = 0.0
    k[:, :, 4, :] *= 3.0  # channel 4: the largest norm
    model.get_layer("conv_b").kernel.assign(k)
    return model


def test_kernel_grid_shows_the_channel_with_the_largest_kernel_norm():
    model = _dead_channel_model()
    for name in ("conv_a", "conv_b", "conv_c"):
        kernel = model.get_layer(name).kernel.numpy().astype(np.float64)
        truth = int(np.argmax(np.sqrt((kernel**2).sum(axis=(0, 1, 3)))))  # over all filters
        grid = kernel_grid(model.get_layer(name), max_filters=3)  # fewer filters shown than the norm covers
        assert grid["channel"] == truth and grid["channel_chosen_by"] == "largest kernel norm", name
        np.testing.assert_array_equal(
            grid["tiles"], np.moveaxis(kernel[:, :, truth, :3], -1, 0).astype(np.float32)
        )
    assert kernel_grid(model.get_layer("conv_b"))["channel"] == 4
    # an explicit channel is honoured, and said so; one beyond the layer falls back to its last
    explicit = kernel_grid(model.get_layer("conv_b"), channel=0)
    assert explicit["channel"] == 0 and explicit["channel_chosen_by"] == "--kernel-channel"
    assert not explicit["tiles"].any()  # the blank grid the default now avoids
    clamped = kernel_grid(model.get_layer("conv_b"), channel=99)
    assert clamped["channel"] == 5 and clamped["channel_chosen_by"].startswith("--kernel-channel (beyond")


def test_report_json_and_caption_name_the_channel_and_why(tmp_path, cli):
    model = _dead_channel_model()
    r = Report(model, sections="kernels")
    kernels = r.json["kernels"]
    kb = model.get_layer("conv_b").kernel.numpy().astype(np.float64)
    assert kernels["conv_b"]["channel"] == int(np.argmax(np.sqrt((kb**2).sum(axis=(0, 1, 3))))) == 4
    assert {v["channel_chosen_by"] for v in kernels.values()} == {"largest kernel norm"}
    html = r.html()
    assert "input channel 4 of 6 (the one with the largest kernel norm)" in html
    # settings records the channel each layer used, not null for "the default"
    assert json.loads(json.dumps(r.json["settings"]))["kernel_channel"] == {
        p: k["channel"] for p, k in r.json["kernels"].items()
    }

    forced = Report(model, sections="kernels", kernel_channel=1).json["kernels"]
    assert forced["conv_b"]["channel"] == 1 and forced["conv_b"]["channel_chosen_by"] == "--kernel-channel"

    path = tmp_path / "m.keras"
    model.save(path)
    bad = cli(path, "--kernel-channel", "-1", "--sections", "kernels", "--out", tmp_path / "out", "--quiet")
    assert bad.status == 2 and "kernel-channel" in bad.stderr
    good = cli(
        path,
        "--kernel-channel",
        "2",
        "--sections",
        "kernels",
        "--format",
        "json",
        "--out",
        tmp_path / "out2",
        "--quiet",
    )
    assert good.status in (0, 1), good.stderr
    data = json.loads((tmp_path / "out2" / "m" / "report.json").read_text())
    assert data["kernels"]["conv_c"]["channel"] == 2
    assert data["kernels"]["conv_c"]["channel_chosen_by"] == "--kernel-channel"


# --- 4. the depth chart: no empty panel --------------------------------------------------


def _relu_after_convs(add: bool = False) -> keras.Model:
    """Six linear convs, their activations in separate layers: straight after (some through a
    BatchNormalization), or (``add``) only after an addition that mixes two convs."""
    keras.utils.set_random_seed(5)
    inp = keras.Input((10, 10, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv0")(inp)
    if not add:  # with add, conv0 feeds conv1 and add1: no activation follows it alone
        x = keras.layers.ReLU(name="relu0")(x)
    for i in range(1, 6):
        y = keras.layers.Conv2D(4, 3, padding="same", name=f"conv{i}")(x)
        if add:
            x = keras.layers.ReLU(name=f"relu{i}")(keras.layers.Add(name=f"add{i}")([x, y]))
        else:
            if i % 2:
                y = keras.layers.BatchNormalization(name=f"bn{i}")(y)
            x = keras.layers.Activation("relu", name=f"relu{i}")(y)
    out = keras.layers.Dense(3, activation="softmax", name="head")(keras.layers.GlobalAveragePooling2D()(x))
    return keras.Model(inp, out, name="relu_after")


def _capture_depth_chart(monkeypatch):
    from reportgen import plots

    seen = {}
    chart = plots.depth_chart

    def spy(labels, panels, stages=(), title=None, with_missing=False):
        seen.update(labels=list(labels), panels=[dict(p) for p in panels], title=title)
        return chart(labels, panels, stages, title, with_missing=with_missing)

    monkeypatch.setattr(plots, "depth_chart", spy)
    return seen


def test_activation_zeros_come_from_the_relu_after_each_conv(monkeypatch):
    model = _relu_after_convs()
    pixels = np.random.default_rng(0).integers(0, 256, (5, 10, 10, 3)).astype("uint8")
    seen = _capture_depth_chart(monkeypatch)
    r = Report(model, images=list(pixels), sections="weights,features")
    ctx = r._build()[0]
    html = r.html()  # figures are drawn when a page shows them
    x = np.stack(
        [np.asarray(im.input, dtype=np.float32) for im in ctx.analyses.images]
    )  # what the report fed the model
    assert len(x) == 5
    panel = next(p for p in seen["panels"] if p["name"].startswith("activations = 0"))
    assert seen["labels"][:6] == [f"conv{i}" for i in range(6)]
    for i in range(6):
        relu = model.get_layer(f"relu{i}")
        truth = float((keras.Model(model.inputs, relu.output).predict(x, verbose=0) == 0).mean())
        assert panel["values"][i] == pytest.approx(truth, abs=1e-3), i
    assert panel["open"] == list(range(6))  # every point measured on the layer after
    assert "right after them" in html and "conv1 → relu1" in html


def test_a_panel_without_values_is_left_out_and_the_caption_says_why(monkeypatch):
    model = _relu_after_convs(add=True)
    pixels = np.random.default_rng(0).integers(0, 256, (4, 10, 10, 3)).astype("uint8")
    seen = _capture_depth_chart(monkeypatch)
    r = Report(model, images=list(pixels), sections="weights,features")
    html = r.html()
    assert not any(p["name"].startswith("activations = 0") for p in seen["panels"])
    assert (
        "Activation zeros not charted: no kernel layer has a ReLU, sigmoid or tanh activation of its own"
        in html
    )
    assert "relu1" in html.split("Activation zeros not charted", 1)[1][:400]  # names the measured layers


def test_depth_chart_drops_a_panel_with_no_value(monkeypatch):
    from reportgen import plots

    captured = _keep_figure(monkeypatch, plots)
    labels = [f"l{i}" for i in range(8)]
    uri, missing = plots.depth_chart(
        labels,
        [
            {"name": "weight std", "values": list(np.geomspace(1, 0.1, 8)), "log": True},
            {
                "name": "activations = 0",
                "values": [None] * 8,
                "empty": "activation zeros not charted: none measured",
            },
            {"name": "std / fresh std", "values": [0.0] * 8, "log": True},
        ],
        with_missing=True,
    )
    fig = captured["fig"]
    assert len(fig.axes) == 1 and fig.axes[0].get_ylabel() == "weight std"
    assert missing == [
        "activation zeros not charted: none measured",
        "std / fresh std not charted: no value above 0, which a log scale cannot show",
    ]
    assert "activation zeros not charted" in fig._suptitle.get_text()


# --- 5. a finding caused by another ------------------------------------------------------


def _conv_bn(between=None, seed=0):
    keras.utils.set_random_seed(seed)
    inp = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(6, 3, name="conv")(inp)
    if between is not None:
        x = between(x)
    x = keras.layers.BatchNormalization(name="bn")(x)
    out = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x))
    return keras.Model(inp, out)


def _kill(model, conv="conv", bn="bn", dead=2, collapsed=(2,)):
    layer = model.get_layer(conv)
    k, b = layer.kernel.numpy(), layer.bias.numpy()
    k[..., dead] = 0.0
    b[dead] = 0.0
    layer.kernel.assign(k)
    layer.bias.assign(b)
    v = model.get_layer(bn).moving_variance.numpy()
    for c in collapsed:
        v[c] = 1e-9
    model.get_layer(bn).moving_variance.assign(v)


def _run(model):
    return F.finish(
        F.run_checks(model, {"weights": weight_analysis(model, seed=0)}, T),
        T,
        [r.path for r in graph.walk(model)],
    )


def _of(found, kind):
    return [f for f in found if f["kind"] == kind]


@pytest.mark.parametrize("between", [None, keras.layers.ReLU(name="relu"), keras.layers.Activation("tanh")])
def test_bn_collapse_fed_by_a_dead_filter_is_caused_by_it(between):
    model = _conv_bn(between)
    _kill(model, dead=2, collapsed=(2, 4))
    found = _run(model)
    kernel = model.get_layer("conv").kernel.numpy()
    dead = [int(i) for i in np.flatnonzero(np.linalg.norm(kernel.reshape(-1, kernel.shape[-1]), axis=0) == 0)]
    assert dead == [2] and [f["filter"] for f in _of(found, "dead_filter")] == dead
    var = model.get_layer("bn").moving_variance.numpy()
    collapsed = {f["filter"]: f for f in _of(found, "bn_variance")}
    assert sorted(collapsed) == [int(i) for i in np.flatnonzero(var <= T.bn_variance)] == [2, 4]
    assert collapsed[2]["caused_by"] == {"kind": "dead_filter", "layer": "conv", "filter": 2}
    assert "fed by filter 2 of conv, a dead filter" in collapsed[2]["message"]
    assert "caused_by" not in collapsed[4]  # no dead filter feeds channel 4
    assert "a unit that never fires" in collapsed[4]["message"]


def test_no_cause_where_the_graph_does_not_show_one():
    # A Dropout in between (random in training), and a BN on another conv's output: no link.
    model = _conv_bn(keras.layers.Dropout(0.5))
    _kill(model)
    assert all("caused_by" not in f for f in _run(model))
    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 3))
    a = keras.layers.Conv2D(6, 3, name="conv")(inp)
    b = keras.layers.Conv2D(6, 3, name="other")(inp)
    x = keras.layers.BatchNormalization(name="bn")(b)
    model = keras.Model(inp, [x, a])
    _kill(model)
    found = _run(model)
    assert _of(found, "dead_filter") and _of(found, "bn_variance")
    assert all("caused_by" not in f for f in found)


def test_dense_dead_unit_and_nested_model():
    keras.utils.set_random_seed(0)
    inner_in = keras.Input((8, 8, 3))
    inner = keras.Model(inner_in, keras.layers.Conv2D(5, 3, name="conv")(inner_in), name="backbone")
    inp = keras.Input((8, 8, 3))
    x = keras.layers.BatchNormalization(name="bn")(inner(inp))
    x = keras.layers.Dense(4, name="fc")(keras.layers.GlobalAveragePooling2D()(x))
    x = keras.layers.BatchNormalization(name="bn_fc")(x)
    model = keras.Model(inp, x)
    conv = model.get_layer("backbone").get_layer("conv")
    k = conv.kernel.numpy()
    k[..., 1] = 0.0
    conv.kernel.assign(k)
    v = model.get_layer("bn").moving_variance.numpy()
    v[1] = 0.0
    model.get_layer("bn").moving_variance.assign(v)
    fc = model.get_layer("fc")
    k = fc.kernel.numpy()
    k[:, 3] = 0.0
    fc.kernel.assign(k)
    v = model.get_layer("bn_fc").moving_variance.numpy()
    v[3] = 0.0
    model.get_layer("bn_fc").moving_variance.assign(v)
    found = {(f["layer"], f["filter"]): f for f in _of(_run(model), "bn_variance")}
    assert found[("bn", 1)]["caused_by"] == {"kind": "dead_filter", "layer": "backbone/conv", "filter": 1}
    assert found[("bn_fc", 3)]["caused_by"] == {"kind": "dead_unit", "layer": "fc", "filter": 3}


def test_page_one_shows_the_caused_finding_under_its_cause():
    model = _conv_bn(keras.layers.ReLU(name="relu"))
    _kill(model, dead=2, collapsed=(2, 4))
    r = Report(model, sections="findings,weights,kernels")
    found = r.json["findings"]
    caused = [f for f in found if f.get("caused_by")]
    assert [(f["kind"], f["layer"], f["filter"]) for f in caused] == [("bn_variance", "bn", 2)]
    rows = findings_section.table_rows(found)
    keys = [(row["kind"], row["filter"], bool(row.get("caused"))) for row in rows]
    at = keys.index(("dead_filter", 2, False))
    assert keys[at + 1] == ("bn_variance", 2, True)
    assert ("bn_variance", 4, False) in keys  # the unexplained collapse stays a problem of its own
    html = r.html()
    assert 'class="sev-warning caused"' in html
    assert "Caused by the dead filter 2 of conv (listed above), not a problem of its own." in html
    assert "1 of them explained by another finding" in html
    import jsonschema
    from pathlib import Path

    schema = json.loads((Path(__file__).resolve().parents[1] / "docs" / "report.schema.json").read_text())
    data = json.loads(json.dumps(r.json))
    for key in ("findings", "kernels"):  # the parts this file is about (others have tests of their own)
        jsonschema.validate(data[key], schema["properties"][key])


def test_caused_findings_keep_their_cause_through_caps_and_roll_ups():
    f = {"severity": "warning", "threshold": 1e-6, "anchor": None, "value": 0.0, "message": "m"}
    dead = [{**f, "kind": "dead_filter", "layer": "conv", "filter": i} for i in range(5)]
    bn = [
        {
            **f,
            "kind": "bn_variance",
            "layer": "bn",
            "filter": i,
            "caused_by": {"kind": "dead_filter", "layer": "conv", "filter": i},
        }
        for i in range(5)
    ]
    capped = F.cap(dead + bn, per_layer=2)
    summary = next(x for x in capped if x["kind"] == "bn_variance" and x["filter"] is None)
    assert summary["filters"] == [2, 3, 4]
    assert summary["caused_by"] == {
        "kind": "dead_filter",
        "layer": "conv",
        "filter": None,
        "filters": [2, 3, 4],
    }
    rows = findings_section.table_rows(capped)
    # each caused row right under its cause, the summed-up run under the summed-up run
    assert [(r["kind"], r["filter"], bool(r.get("caused"))) for r in rows] == [
        ("dead_filter", 0, False),
        ("bn_variance", 0, True),
        ("dead_filter", 1, False),
        ("bn_variance", 1, True),
        ("dead_filter", None, False),
        ("bn_variance", None, True),
    ]
    assert rows[-1]["cause_text"] == "caused by the dead filters 2, 3, 4 of conv"
    # more than three of a kind in a layer: one row each, the caused one right under its cause
    rows = findings_section.table_rows(dead + bn)
    assert [(r["kind"], r["filters"], r["caused"]) for r in rows] == [
        ("dead_filter", "0, 1, 2, 3, 4 (5)", False),
        ("bn_variance", "0, 1, 2, 3, 4 (5)", True),
    ]
    assert rows[1]["cause_text"] == "caused by the dead filters 0, 1, 2, 3, 4 of conv"
    # its cause switched off: a row of its own, still saying what caused it
    rows = findings_section.table_rows(bn[:1])
    assert rows[0]["caused"] is False and rows[0]["cause_text"] == "caused by the dead filter 0 of conv"
    rolled = F.rollup(bn[:1] + [{**b, "layer": f"bn{i}"} for i, b in enumerate(bn[1:])], over_layers=3)
    assert [i["caused_by"]["filter"] for i in rolled[0]["items"]] == [0, 1, 2, 3, 4]
