"""The filter-pattern mosaic: one picture per layer (:mod:`reportgen.sections.patterns` describes it)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from reportgen.figures import painter
from reportgen.plots import DPI, fig_to_small_uri, mosaic, pyplot

COLUMNS = 8
TILE_MIN_PX = 56  # small patterns (28 px for MNIST-sized models) are enlarged, nearest-neighbour
JPEG_ABOVE = 350_000  # bytes: noisy classic patterns compress badly as PNG


def _tiles(images: np.ndarray, size: int) -> list[np.ndarray]:
    k = max(1, int(np.ceil(TILE_MIN_PX / size)))
    tiles = []
    for img in images:
        t = img[..., 0] if img.shape[-1] == 1 else img
        tiles.append(np.repeat(np.repeat(t, k, axis=0), k, axis=1) if k > 1 else t)
    return tiles


def mosaic_chart(
    images: np.ndarray,
    size: int,
    title: str,
    filters: Sequence[int],
    flat: Sequence[bool],
    rose: Sequence[bool],
) -> Any:
    """The 8-wide mosaic on black margins, filter indices, ``title`` above, flat filters in red, filters that
    barely moved (neither flat nor ``rose``) marked "barely" (the figure, unsaved)."""
    from matplotlib.patches import Rectangle

    plt = pyplot()

    tiles = _tiles(images, size)
    th, tw = tiles[0].shape[:2]
    margin = max(2, th // 20)
    grid = mosaic(tiles, columns=COLUMNS, margin=margin, fill=0)
    gh, gw = grid.shape[:2]
    width_in = max(3.0, gw / DPI)
    title_in = 0.3
    height_in = width_in * gh / gw + title_in
    fig = plt.figure(figsize=(width_in, height_in))
    ax = fig.add_axes((0, 0, 1, (height_in - title_in) / height_in))
    ax.imshow(grid, cmap="gray" if grid.ndim == 2 else None, vmin=0, vmax=255, interpolation="nearest")
    ax.set_axis_off()
    fig.suptitle(title, fontsize=8, x=0.01, ha="left", y=1 - 0.06 / height_in, va="top")
    dead = {f for f, is_flat in zip(filters, flat) if is_flat}
    fontsize = 6 if tw >= 60 else 5
    for i, f in enumerate(filters):
        r, c = divmod(i, COLUMNS)
        y, x = margin + r * (th + margin), margin + c * (tw + margin)
        is_dead = f in dead
        barely = not is_dead and not rose[i]
        label = f"{f} flat" if is_dead else f"{f} barely" if barely else str(f)
        ax.text(
            x + 1,
            y + 1,
            label,
            color="white",
            fontsize=fontsize,
            va="top",
            ha="left",
            bbox=dict(
                facecolor="#c0392b" if is_dead else "#666666" if barely else "black",
                alpha=0.7,
                pad=0.5,
                linewidth=0,
            ),
        )
        if is_dead:
            ax.add_patch(
                Rectangle((x - 0.5, y - 0.5), tw, th, fill=False, edgecolor="#e74c3c", linewidth=1.2)
            )
    return fig


@painter("patterns.mosaic")
def mosaic_figure(*args: Any, **kwargs: Any) -> str:
    """ONE picture per layer (:func:`mosaic_chart`): PNG, or JPEG when the PNG would be large (noisy classic
    patterns)."""
    return fig_to_small_uri(mosaic_chart(*args, **kwargs), JPEG_ABOVE, dpi=DPI)
