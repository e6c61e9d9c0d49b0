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
    plots.depth_chart(labels, [{"name": "weight std", "values": list(std), "log": True},
                               {"name": "ratio", "values": [0.5] * 12, "log": True, "lines": [(1.0, "untrained")]}])
    texts = [t.get_text() for ax in captured["fig"].axes
             for t in ax.get_yticklabels(which="both") if t.get_text()]
    assert texts, "the log axes carry no tick labels at all"
    assert not any("$" in t or "mathdefault" in t for t in texts), texts
    # The labels are the tick values, readable as numbers.
    assert any(abs(float(t) - 0.01) < 1e-12 for t in texts if t.replace(".", "", 1).isdigit()), texts
    # Layer names stay literal: the "$" of a name is drawn, not typeset.
    xt = [t.get_text() for t in captured["fig"].axes[-1].get_xticklabels()]
    assert xt[3] == "conv$_{3}", xt[3]
