"""Weight statistics and histograms per kernel layer, trained beside untrained."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from reportgen.analyses.weights import NEAR_ZERO, weight_statistics
from reportgen.context import Context, SectionResult
from reportgen.plots import fig_to_uri

TITLE = "Weights: trained vs. untrained"


def histogram_figure(path: str, entry: dict) -> str:
    """Trained and freshly initialised kernel values on the same bins."""
    edges = np.asarray(entry["histogram"]["edges"])
    fig, ax = plt.subplots(figsize=(4.2, 2.3))
    for counts, label, colour in (
        (entry["baseline"]["histogram"]["counts"], "untrained (fresh init)", "#9aa5b1"),
        (entry["histogram"]["counts"], "trained", "#1f5fa8"),
    ):
        ax.stairs(counts, edges, fill=True, alpha=0.55, color=colour, label=label)
    ax.set_title(path, fontsize=9)
    ax.set_xlabel("kernel weight value", fontsize=8)
    ax.set_ylabel("count", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return fig_to_uri(fig, dpi=100)


def run(ctx: Context) -> SectionResult:
    stats = weight_statistics(ctx.model, ctx.baseline)
    items = ctx.progress(stats.items(), desc="weight histograms", total=len(stats)) if ctx.progress else stats.items()
    figures = {path: histogram_figure(path, entry) for path, entry in items}
    return SectionResult(
        json={"weights": stats},
        view={"stats": stats, "figures": figures, "near_zero": NEAR_ZERO, "seed": ctx.options.seed},
    )
