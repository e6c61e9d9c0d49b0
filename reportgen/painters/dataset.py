"""The data set's figures: confusion, mean CAM per class, mistakes, galleries, reliability
(:mod:`reportgen.sections.dataset` describes them). The few images shown are read from their files here,
when drawn, so a JSON-only run reads none."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from reportgen.figures import painter
from reportgen.plots import HEATMAP_CMAP, fig_to_uri, heatmap_overlay, pyplot


def _load(path: str, spec: Any) -> np.ndarray:
    """A file's pixels as the model's input saw them (fitted to ``spec``, an ``InputSpec``)."""
    from reportgen.images import fit_to_input, load_pixels

    return fit_to_input(load_pixels(path), spec)


@painter("dataset.confusion")
def confusion_figure(confusion: np.ndarray, names: list[str]) -> str:
    plt = pyplot()

    k = confusion.shape[0]
    rows = confusion.sum(axis=1, keepdims=True)
    share = np.divide(confusion, rows, out=np.zeros_like(confusion, dtype=np.float64), where=rows > 0)
    size = min(6.5, 1.6 + 0.32 * k)
    fig, ax = plt.subplots(figsize=(size, size * 0.9))
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    if k <= 20:
        for i in range(k):
            for j in range(k):
                if confusion[i, j]:
                    ax.text(
                        j,
                        i,
                        str(confusion[i, j]),
                        ha="center",
                        va="center",
                        fontsize=6.5,
                        color="white" if share[i, j] > 0.5 else "#222",
                    )
        ax.set_xticks(range(k))
        ax.set_yticks(range(k))
        ax.set_xticklabels([n[:12] for n in names], rotation=90, fontsize=6.5)
        ax.set_yticklabels([n[:12] for n in names], fontsize=6.5)
    ax.set_xlabel("predicted", fontsize=8)
    ax.set_ylabel("true", fontsize=8)
    cb = fig.colorbar(im, ax=ax, fraction=0.046)
    cb.set_label("share of the true class", fontsize=7)
    cb.ax.tick_params(labelsize=6.5)
    fig.tight_layout()
    return fig_to_uri(fig, dpi=100)


@painter("dataset.mean_cam")
def mean_cam_figure(maps: list[tuple[str, np.ndarray, int]], layer: str) -> str:
    plt = pyplot()

    # Laid out in inches, not by tight_layout: each row is a band for the two-line title, then the
    # tile, so a title never reaches into the row above (tight_layout put row 2's titles on row 1's tiles).
    cols = min(8, len(maps))
    rows = -(-len(maps) // cols)
    h0, w0 = np.asarray(maps[0][1]).shape[:2]
    tile_w = 0.85
    tile_h = tile_w * float(np.clip(h0 / max(w0, 1), 0.25, 4.0))
    gap, band, top, side = 0.12, 0.30, 0.32, 0.3
    bar = 0.75  # room for the colour bar and its label at the right
    width = side * 2 + cols * tile_w + (cols - 1) * gap + bar
    height = top + rows * (band + tile_h) + (rows - 1) * gap + 0.08
    fig = plt.figure(figsize=(width, height))
    for i, (name, m, n) in enumerate(maps):
        r, c = divmod(i, cols)
        left = side + c * (tile_w + gap)
        bottom = height - top - (r + 1) * (band + tile_h) - r * gap
        ax = fig.add_axes((left / width, bottom / height, tile_w / width, tile_h / height))
        ax.imshow(m, cmap=HEATMAP_CMAP, vmin=0, vmax=1, interpolation="nearest", aspect="auto")
        ax.set_axis_off()
        label = name if len(name) <= 16 else name[:15] + "…"
        ax.set_title(f"{label}\n{n} image{'s' if n != 1 else ''}", fontsize=6.5, pad=2)
    fig.suptitle(
        f"Mean Grad-CAM per class at {layer[-40:]} (each image's map normalised first)",
        fontsize=8,
        y=1 - 0.06 / height,
        va="top",
    )
    grid_h = rows * (band + tile_h) + (rows - 1) * gap
    cax = fig.add_axes(
        (
            (width - bar + 0.1) / width,
            (height - top - grid_h) / height,
            0.1 / width,
            min(grid_h, 1.6) / height,
        )
    )
    cb = fig.colorbar(plt.cm.ScalarMappable(cmap=HEATMAP_CMAP, norm=plt.Normalize(0, 1)), cax=cax)
    cb.set_label("mean of maps, each\na fraction of its peak", fontsize=5.5)
    cb.ax.tick_params(labelsize=5.5)
    return fig_to_uri(fig, dpi=100)


@painter("dataset.mistakes")
def mistakes_figure(items: Sequence[tuple[str, str, np.ndarray | None]], spec: Any) -> str:
    """The most confident mistakes (``items``: file, title, CAM of the predicted class or None)."""
    plt = pyplot()

    from reportgen.analyses.cam import upsample

    cols = min(4, len(items))
    rows = -(-len(items) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.7 * cols, 1.95 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    for ax, (path, title, cam) in zip(axes.ravel(), items):
        pixels = _load(path, spec)
        shown = pixels if pixels.shape[-1] == 3 else np.repeat(pixels, 3, axis=-1)
        if cam is not None:
            shown = heatmap_overlay(shown, upsample(cam, shown.shape[0], shown.shape[1]))
        ax.imshow(shown)
        ax.set_title(title, fontsize=6.5)
    fig.tight_layout()
    return fig_to_uri(fig, dpi=100, fmt="jpeg")


@painter("dataset.reliability")
def reliability_figure(panels: Sequence[tuple[str, Sequence[dict], float]]) -> str:
    """Reliability diagrams side by side: per confidence bin, the accuracy (bars) against the diagonal of
    perfect calibration, the gap shaded, the bin's count under it. ``panels``: (title, bins, ECE) with bins as
    report.json's ``dataset.calibration.reliability``."""
    plt = pyplot()

    fig, axes = plt.subplots(1, len(panels), figsize=(3.0 * len(panels), 3.0), squeeze=False)
    for ax, (title, bins, ece) in zip(axes[0], panels):
        width = bins[0]["upper"] - bins[0]["lower"]
        for b in bins:
            if not b["count"]:
                continue
            ax.bar(
                b["lower"],
                b["accuracy"],
                width=width,
                align="edge",
                color="#4c72b0",
                edgecolor="white",
                linewidth=0.5,
            )
            lo, hi = sorted((b["accuracy"], b["confidence"]))
            ax.bar(
                b["lower"],
                hi - lo,
                bottom=lo,
                width=width,
                align="edge",
                color="#dd8452",
                alpha=0.45,
                linewidth=0,
            )
        ax.plot([0, 1], [0, 1], color="#333", linewidth=0.8, linestyle="--")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_aspect("equal")
        ax.set_xlabel("confidence (top label)", fontsize=7)
        ax.set_ylabel("accuracy", fontsize=7)
        ax.tick_params(labelsize=6.5)
        ax.set_title(f"{title}\nECE {ece:.3f}", fontsize=7.5)
        counts = [b for b in bins if b["count"]]
        for b in counts:
            ax.text(
                b["lower"] + width / 2,
                0.02,
                str(b["count"]),
                ha="center",
                va="bottom",
                fontsize=4.5,
                rotation=90,
                color="white" if (b["accuracy"] or 0) > 0.12 else "#333",
            )
    fig.tight_layout()
    return fig_to_uri(fig, dpi=100)


def gallery_figure(tiles: Sequence[tuple[np.ndarray, str, np.ndarray | None]], columns: int = 4) -> str:
    """Images with a caption each and, where given, a heatmap in [0, 1] overlaid (``tiles``: uint8 pixels
    H x W x 1|3, caption, heatmap at any size or None). Laid out in inches: each row is a band for the
    caption, then the tile, so a caption never reaches into the row above."""
    plt = pyplot()
    from PIL import Image

    cols = min(columns, len(tiles))
    rows = -(-len(tiles) // cols)
    lines = max(caption.count("\n") + 1 for _p, caption, _h in tiles)
    tile, gap, side = 1.45, 0.25, 0.1
    band = 0.13 * lines + 0.08
    width = 2 * side + cols * tile + (cols - 1) * gap
    height = rows * (band + tile) + (rows - 1) * 0.12 + 0.1
    fig = plt.figure(figsize=(width, height))
    for k, (pixels, caption, heat) in enumerate(tiles):
        r, c = divmod(k, cols)
        left = side + c * (tile + gap)
        bottom = height - (r + 1) * (band + tile) - r * 0.12
        ax = fig.add_axes((left / width, bottom / height, tile / width, tile / height))
        ax.set_axis_off()
        shown = pixels if pixels.shape[-1] == 3 else np.repeat(pixels, 3, axis=-1)
        if heat is not None:
            h, w = shown.shape[:2]
            up = np.asarray(
                Image.fromarray(np.asarray(heat, dtype=np.float32)).resize((w, h), Image.Resampling.BILINEAR)
            )
            shown = heatmap_overlay(shown, np.clip(up, 0, 1))
        ax.imshow(shown, interpolation="nearest", aspect="auto")
        ax.set_title(caption, fontsize=6.5, pad=2)
    return fig_to_uri(fig, dpi=100, fmt="jpeg")


@painter("dataset.gallery")
def files_gallery(items: Sequence[tuple[str, str, np.ndarray | None]], spec: Any) -> str:
    """:func:`gallery_figure` of a few files (``items``: file, caption, heatmap or None)."""
    return gallery_figure([(_load(path, spec), caption, cam) for path, caption, cam in items])
