"""The model under corruptions and attacks (:mod:`reportgen.sections.robustness` describes it;
:mod:`reportgen.analyses.robustness` computes it)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from reportgen.figures import painter
from reportgen.plots import fig_to_uri, heatmap_overlay, pyplot


@painter("robustness.severity")
def robustness_severity_figure(
    curves: dict[str, list[float | None]], clean: float | None, measure: str
) -> str:
    """One small panel per corruption: ``measure`` (accuracy, or agreement with the clean prediction) at
    severities 1-5, the clean level dashed."""
    plt = pyplot()
    names = list(curves)
    cols = min(5, max(1, len(names)))
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(1.45 * cols + 0.4, 1.25 * rows + 0.45), squeeze=False, sharex=True, sharey=True
    )
    for ax in axes.ravel()[len(names) :]:
        ax.set_axis_off()
    for ax, name in zip(axes.ravel(), names):
        ys = [np.nan if v is None else v for v in curves[name]]
        ax.plot(range(1, len(ys) + 1), ys, marker="o", markersize=2.5, linewidth=1.1, color="#1f5fa8")
        if clean is not None:
            ax.axhline(clean, color="#888", linestyle="--", linewidth=0.8)
        ax.set_ylim(-0.03, 1.03)
        ax.set_xticks(range(1, 6))
        ax.set_title(name.replace("_", " "), fontsize=7, pad=2)
        ax.tick_params(labelsize=6)
        ax.grid(alpha=0.25, linewidth=0.5)
    for ax in axes[-1]:
        ax.set_xlabel("severity", fontsize=6.5)
    for ax in axes[:, 0]:
        ax.set_ylabel(measure, fontsize=6.5)
    fig.tight_layout(pad=0.4, h_pad=0.5, w_pad=0.3)
    return fig_to_uri(fig, dpi=110)


@painter("robustness.corruptions")
def corruption_grid_figure(clean: np.ndarray, corrupted: dict[str, np.ndarray], severity: int = 3) -> str:
    """One image, clean and under every corruption at ``severity``."""
    plt = pyplot()
    tiles = [("clean", clean)] + [(n.replace("_", " "), px) for n, px in corrupted.items()]
    cols = min(5, len(tiles))
    rows = -(-len(tiles) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.35 * cols, 1.45 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    for ax, (title, px) in zip(axes.ravel(), tiles):
        px = np.asarray(px)
        ax.imshow(
            px[..., 0] if px.shape[-1] == 1 else px,
            cmap="gray" if px.shape[-1] == 1 else None,
            vmin=0,
            vmax=255,
            interpolation="nearest",
        )
        ax.set_title(title if title == "clean" else f"{title}", fontsize=6.5, pad=2)
    fig.tight_layout(pad=0.3)
    return fig_to_uri(fig, dpi=110, fmt="jpeg")


@painter("robustness.adversarial")
def adversarial_figure(
    epsilons: Sequence[float], series: dict[str, list[float | None]], clean: float | None, measure: str
) -> str:
    """``measure`` against the L-infinity budget (pixel units), one line per attack, the clean level
    dashed."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.2, 2.5))
    styles = {"fgsm": ("#d08c1f", "s"), "pgd": ("#b3261e", "o")}
    for method, ys in series.items():
        colour, marker = styles.get(method, ("#1f5fa8", "^"))
        hollow = (
            method == "fgsm"
        )  # drawn hollow and larger: where PGD finds no more than FGSM the two coincide
        ax.plot(
            list(epsilons),
            [np.nan if v is None else v for v in ys],
            marker=marker,
            markersize=6 if hollow else 3.5,
            markerfacecolor="none" if hollow else colour,
            linestyle="--" if hollow else "-",
            linewidth=1.2,
            color=colour,
            label=method.upper(),
        )
    if clean is not None:
        ax.axhline(clean, color="#888", linestyle="--", linewidth=0.8, label="clean")
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(epsilons))
    ax.set_xticklabels([f"{e:g}" for e in epsilons])
    ax.minorticks_off()
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("ε (L∞ budget, pixel units of 0–255)", fontsize=7.5)
    ax.set_ylabel(measure, fontsize=7.5)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.25, linewidth=0.5)
    ax.legend(fontsize=6.5, frameon=False, loc="lower left")
    fig.tight_layout()
    return fig_to_uri(fig, dpi=110)


@painter("robustness.flipped")
def flipped_figure(examples: Sequence[dict]) -> str:
    """Each flipped image: clean, its CAM, attacked, its CAM, and the perturbation (amplified to the full
    range).

    ``examples``: dicts with ``clean``, ``attacked`` (pixels), ``clean_cam``, ``attacked_cam`` ((h, w) or
    None), ``clean_title``, ``attacked_title``."""
    from scipy import ndimage

    plt = pyplot()
    with_cam = any(e["clean_cam"] is not None for e in examples)
    cols = 5 if with_cam else 3
    fig, axes = plt.subplots(len(examples), cols, figsize=(1.35 * cols, 1.75 * len(examples)), squeeze=False)

    def show(ax: Any, px: np.ndarray, title: str) -> None:
        px = np.clip(np.asarray(px), 0, 255).astype(np.uint8)
        ax.imshow(
            px[..., 0] if px.shape[-1] == 1 else px,
            cmap="gray" if px.shape[-1] == 1 else None,
            vmin=0,
            vmax=255,
            interpolation="nearest",
        )
        ax.set_title(title, fontsize=6, pad=2)
        ax.set_axis_off()

    def cam(px: np.ndarray, heat: np.ndarray | None) -> np.ndarray:
        px = np.clip(np.asarray(px), 0, 255).astype(np.uint8)
        if heat is None:
            return px
        h, w = px.shape[:2]
        up = ndimage.zoom(np.asarray(heat, np.float64), (h / heat.shape[0], w / heat.shape[1]), order=1)
        return heatmap_overlay(px, np.clip(up[:h, :w], 0, 1))

    for row, e in zip(axes, examples):
        delta = np.asarray(e["attacked"], np.float64) - np.asarray(e["clean"], np.float64)
        peak = max(float(np.abs(delta).max()), 1e-9)
        amplified = 127.5 + 127.5 * delta / peak
        panels = [(e["clean"], e["clean_title"])]
        if with_cam:
            panels.append((cam(e["clean"], e["clean_cam"]), "Grad-CAM before"))
        panels.append((e["attacked"], e["attacked_title"]))
        if with_cam:
            panels.append((cam(e["attacked"], e["attacked_cam"]), "Grad-CAM after"))
        panels.append((amplified, f"perturbation\n(±{peak:.3g} px, amplified)"))
        for ax, (px, title) in zip(row, panels):
            show(ax, px, title)
    fig.tight_layout(pad=0.3)
    return fig_to_uri(fig, dpi=110, fmt="jpeg")
