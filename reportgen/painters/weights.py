"""Weight histograms and the charts across depth (:mod:`reportgen.sections.weights` describes them)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from reportgen import plots
from reportgen.figures import painter

HISTOGRAM_COLOURS = {"fresh": "#9aa5b1", "trained": "#1f5fa8"}


@painter("weights.histogram")
def histogram_figure(path: str, entry: dict) -> str:
    """Trained and freshly initialised kernel values on the same bins (``entry``: the layer's report.json
    ``weights`` entry), as a PNG data URI.

    Drawn straight to pixels (:mod:`reportgen.raster`), not by Matplotlib: a deep model's report
    draws hundreds of these, and Matplotlib laid out every label of every one again.
    """
    import base64

    from reportgen import raster

    edges = np.asarray(entry["histogram"]["edges"], dtype=np.float64)
    counts = np.asarray(entry["histogram"]["counts"], dtype=np.float64)
    series = [raster.Series(counts, HISTOGRAM_COLOURS["trained"], "trained")]
    tallest = counts
    if entry.get("baseline"):
        fresh = np.asarray(entry["baseline"]["histogram"]["counts"], dtype=np.float64)
        series.insert(0, raster.Series(fresh, HISTOGRAM_COLOURS["fresh"], "untrained (fresh init)"))
        tallest = np.maximum(counts, fresh)
    # Autoscaling's limits: 5% margins in x, from 0 to 5% over the tallest bar (raised where the bars would
    # reach into the legend: a uniform draw's flat top runs from edge to edge).
    lo, hi = float(edges[0]), float(edges[-1])
    pad = 0.05 * (hi - lo) if hi > lo else 0.5
    top = float(tallest.max(initial=0.0))
    png = raster.histogram_png(
        edges,
        series,
        title=path if len(path) <= 48 else "…" + path[-47:],
        xlabel="kernel weight value",
        ylabel="count",
        xlim=(lo - pad, hi + pad),
        ylim=(0.0, 1.05 * top if top > 0 else 1.0),
        legend_at="clear",
    )
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


@painter("weights.depth")
def depth_figure(
    labels: Sequence[str], panels: Sequence[dict], stages: Sequence[tuple[int, str]], title: str
) -> str:
    """Per-layer series against depth (:func:`reportgen.plots.depth_chart`)."""
    return plots.depth_chart(labels, panels, stages, title)
