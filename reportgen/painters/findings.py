"""The findings' own evidence: BatchNormalization channels and the CAM sanity strips
(:mod:`reportgen.sections.findings` describes them)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from reportgen.figures import painter
from reportgen.plots import HEATMAP_CMAP, fig_to_uri, fixed_figure, heatmap_overlay, plain_log_axis, pyplot


def bn_chart(
    path: str,
    gamma: np.ndarray | None,
    moving_variance: np.ndarray | None,
    gamma_limit: float,
    variance_limit: float,
) -> Any:
    """|gamma| and moving variance per channel, log scale, flagged channels in red (the figure, unsaved)."""
    panels = []
    if gamma is not None:
        panels.append(("|gamma|", np.abs(np.asarray(gamma, dtype=np.float64)), gamma_limit))
    if moving_variance is not None:
        panels.append(("moving variance", np.asarray(moving_variance, dtype=np.float64), variance_limit))
    # Laid out in inches (no tight_layout, which cost most of the chart): a title line is ~0.17 in, the
    # tick labels and axis name ~0.6 in. A title wider than its panel (~38 characters) puts the
    # measure on a line of its own, the path cut from the left.
    titles = []
    for name, values, _limit in panels:
        bad = int((~np.isfinite(values)).sum())
        short = path if len(path) <= 40 else "…" + path[-39:]
        title = f"{path}: {name}" if len(path) + len(name) <= 36 else f"{short}\n{name}"
        titles.append(title + (f"\n{bad} NaN/Inf channel(s) not drawn" if bad else ""))
    extra = 0.17 * (max(t.count("\n") for t in titles))
    fig, axes = fixed_figure(
        (3.4 * len(panels), 2.2 + extra), (0.62, 0.12, 0.45, 0.3 + extra), 1, len(panels), (0.75, 0.0)
    )
    for ax, (name, values, limit), title in zip(axes[0], panels, titles):
        finite = np.isfinite(values)
        shown = np.where(finite, values, np.nan)
        floor = max(limit / 10.0, 1e-12)
        heights = np.clip(np.nan_to_num(shown, nan=floor), floor, None)
        colours = np.where(values <= limit, "#b3261e", "#1f5fa8")
        ax.bar(np.arange(values.size)[finite], heights[finite], width=1.0, color=colours[finite], linewidth=0)
        ax.axhline(limit, color="#b3261e", linestyle="--", linewidth=0.8, label=f"threshold {limit:g}")
        ax.set_yscale("log")
        plain_log_axis(ax.yaxis)
        ax.set_xlim(-0.5, values.size - 0.5)
        ax.set_xlabel("channel", fontsize=8)
        ax.set_ylabel(name, fontsize=8)
        ax.set_title(title, fontsize=8)
        ax.tick_params(which="both", labelsize=7)
        ax.legend(fontsize=6.5, frameon=False, loc="lower right")
    return fig


@painter("findings.bn")
def bn_figure(*args: Any, **kwargs: Any) -> str:
    """:func:`bn_chart` as a PNG data URI."""
    return fig_to_uri(bn_chart(*args, **kwargs), dpi=100, tight=False)


def _step_title(step: str, width: int) -> str:
    """A cascade step ("first…last" layer names) as two short lines that fit above a tile; the caption and
    report.json keep the full names."""

    def short(name: str) -> str:
        return name if len(name) <= width else "…" + name[-(width - 1) :]

    return "\n".join(short(part) for part in step.split("…"))


@painter("findings.sanity")
def sanity_figure(
    original: np.ndarray,
    heatmaps: np.ndarray | None,
    correlations: np.ndarray | None,
    steps: Sequence[str],
    pixels: Sequence[np.ndarray],
    names: Sequence[str],
    layer: str,
    title: str = "Grad-CAM",
) -> str:
    """The cascade as a strip per image: original heatmap (``original`` (N, h, w)), then each randomisation
    step's (``heatmaps`` (S, N, h, w)) with its rank correlation (``correlations`` (S, N)); ``names``: the
    class explained on each image."""
    from reportgen.analyses.cam import upsample

    n = len(original)
    cols = 1 + len(steps)
    fig, axes = pyplot().subplots(
        n, cols, figsize=(min(7.2, 1.25 * cols + 0.4), 1.25 * n + 0.5), squeeze=False
    )
    for i in range(n):
        px = np.asarray(pixels[i])
        h, w = px.shape[:2]
        maps = [original[i]] + [heatmaps[s, i] for s in range(len(steps))]
        for j, heat in enumerate(maps):
            ax = axes[i, j]
            ax.imshow(heatmap_overlay(px, upsample(heat, h, w)), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                step = steps[j - 1] if j else ""
                ax.set_title(
                    "original" if j == 0 else f"{j}. random\n" + _step_title(step, 12 if cols > 5 else 16),
                    fontsize=6 if cols > 5 else 6.5,
                )
            if j > 0:
                rho = correlations[j - 1, i]
                ax.set_xlabel(f"ρ = {rho:.2f}" if np.isfinite(rho) else "ρ undefined", fontsize=7, labelpad=2)
            else:
                ax.set_ylabel(f"image {i + 1}\n{names[i]}", fontsize=7)
    fig.suptitle(
        f"{title} at {layer} as weights are re-initialised from the top down (cumulative)", fontsize=8
    )
    fig.tight_layout()
    plt = pyplot()
    sm = plt.cm.ScalarMappable(cmap=HEATMAP_CMAP, norm=plt.Normalize(0, 1))
    cb = fig.colorbar(sm, ax=axes.ravel().tolist(), fraction=0.02, pad=0.01)
    cb.set_label("each map as a fraction of its own peak", fontsize=6)
    cb.ax.tick_params(labelsize=6)
    return fig_to_uri(fig, dpi=110)
