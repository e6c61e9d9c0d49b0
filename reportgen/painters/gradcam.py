"""Class activation maps, their faithfulness curves and a transformer's attention
(:mod:`reportgen.sections.gradcam` describes them)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from reportgen.figures import painter
from reportgen.plots import HEATMAP_CMAP, fig_to_uri, heatmap_overlay, pyplot


def overlay(pixels: np.ndarray, heatmap: np.ndarray) -> np.ndarray:
    """The heatmap, upsampled to the image, blended over it."""
    from reportgen.analyses.cam import upsample

    h, w = pixels.shape[:2]
    return heatmap_overlay(pixels, upsample(heatmap, h, w))


def _tail(path: str, n: int) -> str:
    """A layer path's last ``n`` characters, cut at a ``/`` where one is near and marked with an ellipsis (a
    nested path's last 20 characters read "sformer_block_2/ln_1")."""
    if len(path) <= n:
        return path
    tail = path[-(n - 1) :]
    cut = tail.find("/")
    return "…" + (tail[cut + 1 :] if 0 <= cut < n // 2 else tail)


def _short(label: str, n: int = 22) -> str:
    return label if len(label) <= n else label[: n - 1] + "…"


def _title(rank: int, label: str, value: float | None, word: str) -> str:
    name, _, detail = label.partition(" (")
    text = f"{rank}. {_short(name, 18)}" + (f"\n({_short(detail, 20)}" if detail else "")
    return text + (f"\n{word} = {value:.3g}" if value is not None else "")


def output_picture(output: np.ndarray, kind: str) -> np.ndarray:
    """A dense output as a picture: the winning class per pixel (a ``pixel-softmax`` head), or the mean
    over channels."""
    import matplotlib

    if kind == "pixel-softmax":
        winner = output.argmax(axis=-1)
        colours = (matplotlib.colormaps["tab20"](np.arange(20))[:, :3] * 255).astype(np.uint8)
        return colours[winner % 20]
    m = output if output.ndim == 2 else output.mean(axis=-1)
    lo, hi = float(np.min(m)), float(np.max(m))
    scaled = (m - lo) / (hi - lo) if hi > lo else np.zeros_like(m)
    return (matplotlib.colormaps["gray"](scaled)[..., :3] * 255).astype(np.uint8)


@painter("gradcam.image")
def image_figure(
    pixels: np.ndarray,
    true_label: str | None,
    labels: list[str],
    values: list[float | None],
    word: str,
    maps: Sequence[dict],
    layer: str,
    output_kind: str,
    output: np.ndarray | None,
) -> str:
    """One picture per image: the input (and output map), each method's overlays in a row, raw maps below.

    ``maps``: one dict per method, ``title``, and this image's ``heatmaps`` (K, h, w), ``peaks`` and
    ``negligible`` (K,)."""
    plt = pyplot()

    k = len(labels)
    rows = len(maps) + (1 if len(maps) == 1 else 0)
    cols = k + 1
    width = 7.0 if cols >= 3 else 2.3 * cols + 0.6
    cell = min(1.55, (width - 0.6) / cols)
    fig, axes = plt.subplots(
        rows,
        cols,
        figsize=(width, rows * cell + 0.75),
        squeeze=False,
        gridspec_kw={"hspace": 0.12, "wspace": 0.08},
    )
    px = pixels
    axes[0, 0].imshow(px[..., 0] if px.shape[-1] == 1 else px, cmap="gray", vmin=0, vmax=255)
    axes[0, 0].set_title(
        "input" + (f"\ntrue: {_short(true_label, 16)}" if true_label is not None else ""), fontsize=7.5
    )
    for r in range(1, rows):  # the first column below the input: the output map, a caption, or nothing
        cell = axes[r, 0]
        if r == 1 and output is not None:
            cell.imshow(output_picture(output, output_kind), interpolation="nearest")
            cell.set_title("model output", fontsize=7)
        elif r == rows - 1 and len(maps) == 1:
            hh, hw = maps[0]["heatmaps"].shape[-2:]
            cell.text(
                0.5,
                0.5,
                f"raw heatmaps\n{_tail(layer, 20)}\n{hh}×{hw}",
                ha="center",
                va="center",
                fontsize=7,
                transform=cell.transAxes,
                wrap=True,
            )
            cell.set_axis_off()
        else:
            cell.set_axis_off()
    grey = px.mean(axis=-1) if px.ndim == 3 else px
    for r, res in enumerate(maps):
        nothing = res["negligible"]
        for j in range(k):
            ax = axes[r, j + 1]
            if nothing[j]:  # drawn as nothing, not stretched to full contrast
                ax.imshow(grey, cmap="gray", vmin=0, vmax=255, alpha=0.35)
                ax.text(
                    0.5,
                    0.5,
                    "no evidence\nat this layer",
                    transform=ax.transAxes,
                    ha="center",
                    va="center",
                    fontsize=6.5,
                    color="black",
                )
            else:
                ax.imshow(overlay(px, res["heatmaps"][j]))
                ax.text(
                    0.03,
                    0.03,
                    f"peak {res['peaks'][j]:.2g}",
                    transform=ax.transAxes,
                    color="white",
                    fontsize=5.5,
                    va="bottom",
                    ha="left",
                    bbox=dict(facecolor="black", alpha=0.55, pad=0.8, linewidth=0),
                )
            if r == 0:
                ax.set_title(_title(j + 1, labels[j], values[j], word), fontsize=7.5)
            if j == 0 and len(maps) > 1:
                ax.text(
                    0.03,
                    0.97,
                    res["title"],
                    transform=ax.transAxes,
                    color="white",
                    fontsize=6.5,
                    va="top",
                    ha="left",
                    bbox=dict(facecolor="black", alpha=0.6, pad=1.0, linewidth=0),
                )
    if len(maps) == 1:
        res = maps[0]
        for j in range(k):
            if res["negligible"][j]:
                axes[1, j + 1].text(
                    0.5,
                    0.5,
                    "no evidence",
                    transform=axes[1, j + 1].transAxes,
                    ha="center",
                    va="center",
                    fontsize=6.5,
                )
                continue
            axes[1, j + 1].imshow(
                res["heatmaps"][j], cmap=HEATMAP_CMAP, vmin=0, vmax=1, interpolation="nearest"
            )
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    sm = plt.cm.ScalarMappable(cmap=HEATMAP_CMAP, norm=plt.Normalize(0, 1))
    cb = fig.colorbar(sm, ax=axes.ravel().tolist(), fraction=0.025, pad=0.02)
    cb.set_label("evidence, a fraction of the map's peak\n(each map's peak on it)", fontsize=6.5)
    cb.ax.tick_params(labelsize=6.5)
    return fig_to_uri(fig, fmt="jpeg" if px.shape[0] * px.shape[1] > 96 * 96 else "png")


@painter("gradcam.faithfulness")
def faithfulness_figure(
    methods: Sequence[tuple[str, dict]],
    random: dict,
    edge: dict,
    label: str,
    word: str,
    replacement: str = "gaussian_blur",
) -> str:
    """One image's deletion and insertion curves of its first explained class: every method and both
    baselines on two small panels, the AUCs in the legend, the replacement in the titles.

    A curve is a dict: ``deletion``, ``insertion`` (the points), ``deletion_auc``, ``insertion_auc``;
    ``methods`` pairs each with its method's title."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(7.0, 1.9), sharey=True, gridspec_kw={"wspace": 0.08})
    frac = np.linspace(0.0, 1.0, len(random["deletion"]))
    colours = plt.get_cmap("tab10").colors
    lines = [
        (title, curve, dict(color=colours[i % 10], linewidth=1.5)) for i, (title, curve) in enumerate(methods)
    ]
    lines += [
        ("random map", random, dict(color="0.55", linestyle="--", linewidth=1.1)),
        ("Sobel edges", edge, dict(color="black", linestyle=":", linewidth=1.2)),
    ]
    for ax, part, what in (
        (axes[0], "deletion", "deleted (lower area = more faithful)"),
        (axes[1], "insertion", "inserted (higher area = more faithful)"),
    ):
        ax.set_title(f"{part}: {what.split(' ', 1)[1][1:-1].replace(' area', '')}", fontsize=7, pad=3)
        for name, curve, style in lines:
            ax.plot(frac, curve[part], **style)
        ax.set_xlim(0, 1)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel(
            f"fraction of pixels {what.split(' ', 1)[0]} ({replacement.replace('_', ' ')})", fontsize=7
        )
        ax.tick_params(labelsize=6.5)
        ax.grid(alpha=0.25, linewidth=0.5)
    axes[0].set_ylabel(f"{word}({_short(label, 18)})", fontsize=7)
    handles = axes[0].get_lines()
    fig.legend(
        handles,
        [f"{name}  {c['deletion_auc']:.2f} / {c['insertion_auc']:.2f}" for name, c, _s in lines],
        loc="center right",
        fontsize=6.3,
        frameon=False,
        title="AUC: deletion / insertion",
        title_fontsize=6.3,
        handlelength=2.0,
        labelspacing=0.35,
    )
    fig.subplots_adjust(left=0.075, right=0.71, bottom=0.22, top=0.88, wspace=0.1)
    return fig_to_uri(fig, dpi=110)


@painter("gradcam.attention")
def attention_figure(pixels: np.ndarray, rolled: np.ndarray, heads: np.ndarray) -> str:
    """The input, its attention rollout overlaid, then each head of the last block (own scale per map)."""
    plt = pyplot()

    n = 2 + heads.shape[0]
    cols = min(n, 8)
    rows = -(-n // cols)
    cell = min(1.3, 6.8 / cols)
    fig, axes = plt.subplots(
        rows,
        cols,
        figsize=(cols * cell + 0.2, rows * (cell + 0.3)),
        squeeze=False,
        gridspec_kw={"hspace": 0.35, "wspace": 0.08},
    )
    px = pixels
    axes[0, 0].imshow(px[..., 0] if px.shape[-1] == 1 else px, cmap="gray", vmin=0, vmax=255)
    axes[0, 0].set_title("input", fontsize=7)
    peak = float(rolled.max()) or 1.0
    low = float(rolled.min()) / peak
    axes[0, 1].imshow(overlay(px, rolled / peak))
    # The span, stated: a rollout of 0.83-1.0 of its maximum is nearly uniform, though all red on a 0-1 scale.
    axes[0, 1].set_title(f"rollout\n{low:.2f}–1.00 of max", fontsize=6.5)
    top = float(heads.max()) if heads.size else 1.0
    for h in range(heads.shape[0]):
        ax = axes.ravel()[2 + h]
        ax.imshow(heads[h], cmap=HEATMAP_CMAP, vmin=0, vmax=top or 1.0, interpolation="nearest")
        ax.set_title(f"head {h}", fontsize=7)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes.ravel()[n:]:
        ax.set_axis_off()
    sm = plt.cm.ScalarMappable(cmap=HEATMAP_CMAP, norm=plt.Normalize(0, top or 1.0))
    cb = fig.colorbar(sm, ax=axes.ravel().tolist(), fraction=0.02, pad=0.02)
    cb.set_label(
        "heads: attention to the patch\n(one scale for all; rollout: overlay\nas a fraction of its max)",
        fontsize=6,
    )
    cb.ax.tick_params(labelsize=6)
    return fig_to_uri(fig, fmt="png")
