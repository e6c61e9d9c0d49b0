"""Figure text: what a reader sees on the axes is plain text, never raw mathtext markup."""

from __future__ import annotations

import numpy as np

from reportgen import plots


def _drawn_figure(monkeypatch):
    captured = {}

    def keep(fig, **_):
        fig.canvas.draw()
        captured["fig"] = fig
        return "data:image/png;base64,"

    monkeypatch.setattr(plots, "fig_to_uri", keep)
    return captured


def test_log_axes_label_ticks_as_numbers_not_markup(monkeypatch):
    # Mathtext is off (layer names may hold "$"), so Matplotlib's default log labels would print
    # "$\mathdefault{10^{-2}}$" literally; this is what the VGG16 depth chart showed.
    captured = _drawn_figure(monkeypatch)
    labels = [f"conv$_{{{i}}}" for i in range(12)]
    std = np.geomspace(0.04, 0.006, 12)
    plots.depth_chart(
        labels,
        [
            {"name": "weight std", "values": list(std), "log": True},
            {"name": "ratio", "values": [0.5] * 12, "log": True, "lines": [(1.0, "untrained")]},
        ],
    )
    texts = [
        t.get_text() for ax in captured["fig"].axes for t in ax.get_yticklabels(which="both") if t.get_text()
    ]
    assert texts, "the log axes carry no tick labels at all"
    assert not any("$" in t or "mathdefault" in t for t in texts), texts
    # The labels are the tick values, readable as numbers.
    assert any(abs(float(t) - 0.01) < 1e-12 for t in texts if t.replace(".", "", 1).isdigit()), texts
    # Layer names stay literal: the "$" of a name is drawn, not typeset.
    xt = [t.get_text() for t in captured["fig"].axes[-1].get_xticklabels()]
    assert xt[3] == "conv$_{3}", xt[3]


def test_a_large_png_becomes_a_jpeg_of_the_same_pixels_and_a_small_one_stays_png():
    import base64
    import io

    from PIL import Image

    def figure(noisy: bool):
        fig, axes = plots.fixed_figure((3.0, 2.0), (0.1, 0.1, 0.1, 0.1))
        pixels = np.random.default_rng(0).random((120, 180)) if noisy else np.zeros((120, 180))
        axes[0, 0].imshow(pixels, cmap="viridis")
        return fig

    def decode(uri):
        return np.asarray(
            Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("RGB"), float
        )

    png = plots.fig_to_uri(figure(True))
    size = len(base64.b64decode(png.split(",", 1)[1]))
    small = plots.fig_to_small_uri(figure(True), limit=size)
    assert small == png
    jpeg = plots.fig_to_small_uri(figure(True), limit=size - 1)
    assert jpeg.startswith("data:image/jpeg;base64,")
    a, b = decode(png), decode(jpeg)
    assert a.shape == b.shape

    def blocks(x):  # 5 x 5 means: what JPEG keeps of noise
        h, w = (x.shape[0] // 5) * 5, (x.shape[1] // 5) * 5
        return x[:h, :w].reshape(h // 5, 5, w // 5, 5, 3).mean(axis=(1, 3))

    assert np.abs(blocks(a) - blocks(b)).mean() < 3  # the same picture, JPEG-compressed
    assert plots.fig_to_small_uri(figure(False), limit=size).startswith("data:image/png;base64,")
