"""Feature maps: each selected conv / pooling layer's output for each input image.

One forward pass gives every selected layer (:mod:`reportgen.analyses.feature_maps`);
each layer's channels are composited into ONE image per (image, layer), 8
channels a row, each channel on its own colour scale, the input image beside.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from reportgen import graph, images as imgs
from reportgen.analyses import feature_maps
from reportgen.anchors import anchor_id
from reportgen.context import Context, SectionResult
from reportgen.errors import UserError
from reportgen.plots import (
    ACTIVATION_CMAP,
    Later,
    channel_range,
    colorize,
    fig_to_small_uri,
    mosaic,
    normalise,
    pyplot,
)

TITLE = "Feature maps"
NEEDS = ("images",)
COLUMNS = 8
MARGIN = 2
TILE_PX = 64  # channels are resampled to about this many pixels a side
MAX_GRID_IN = 4.0  # the tallest channel grid, inches
JPEG_ABOVE = 350_000  # bytes: larger PNG grids (noisy early layers) are stored as JPEG


def validate(ctx: Context) -> None:
    opts = ctx.options
    if opts.feature_channels < 1:
        raise UserError(f"--feature-channels must be at least 1 (got {opts.feature_channels})")
    if opts.layers:
        imgs.require_image_input(ctx.model, "--layers")
        feature_maps.select_layers(ctx.model, opts.layers)
    ctx.images  # noqa: B018  (loads and checks every --image before any analysis runs)


def _selection_text(model: Any, chosen: Sequence[graph.LayerRef], user: bool) -> str:
    if user:
        return f"{len(chosen)} layer(s) chosen with --layers"
    blocks = graph.token_blocks(model)
    if blocks:
        shown = sum(1 for r in chosen if r.grid is not None)
        prefix = blocks[-1].grid.prefix
        left_out = {0: "", 1: " (the class token left out)"}.get(
            prefix,
            f" (the {prefix} tokens before the patches left out: class, distillation or register tokens)",
        )
        return (
            f"the patch embedding and {shown} of {len(blocks)} transformer blocks, each block's patch tokens "
            f"as maps on the {blocks[-1].grid.height}x{blocks[-1].grid.width} patch grid{left_out}; "
            "choose others with --layers"
        )
    total = [r for r in graph.feature_map_layers(model) if graph.has_spatial_output(r)]
    if len(total) <= graph.MAX_DEFAULT_FEATURE_LAYERS:
        return f"all {len(total)} conv and pooling layers"
    return (
        f"{len(chosen)} of {len(total)} conv and pooling layers: the first conv layer of each "
        f"resolution stage and the last conv layer (models with more than "
        f"{graph.MAX_DEFAULT_FEATURE_LAYERS} such layers; choose others with --layers)"
    )


def _resample(channel: np.ndarray, size: int) -> np.ndarray:
    """A channel at about ``size`` px: area-averaged down, or nearest-neighbour up (crisp cells)."""
    from PIL import Image

    h, w = channel.shape
    if max(h, w) > size:
        scale = size / max(h, w)
        nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
        return np.asarray(Image.fromarray(channel.astype(np.float32)).resize((nw, nh), Image.Resampling.BOX))
    k = max(1, size // max(h, w))
    return np.repeat(np.repeat(channel, k, axis=0), k, axis=1) if k > 1 else channel


def channel_tiles(maps: np.ndarray, count: int) -> tuple[list[np.ndarray], list[str]]:
    """Coloured tiles for the first ``count`` channels of one image's (h, w, C) maps.

    Each channel is scaled to its own min..max (the tutorials' ``matshow`` per
    channel); a constant channel (e.g. all zero after ReLU) is labelled ``flat``.
    """
    tiles, labels = [], []
    for c in range(min(count, maps.shape[-1])):
        ch = maps[..., c]
        lo, hi = channel_range(ch)
        flat = float(np.nanmax(ch) - np.nanmin(ch)) < 1e-12 if ch.size else True
        tiles.append(colorize(normalise(_resample(ch, TILE_PX), lo, hi), ACTIVATION_CMAP))
        labels.append(f"{c} flat" if flat else str(c))
    return tiles, labels


def _draw(image: imgs.PreparedImage, layer: feature_maps.LayerMaps, index: int, count: int) -> Any:
    """The input image on the left, the layer's channel grid on the right, one figure."""
    plt = pyplot()

    maps = layer.maps[index]
    tiles, labels = channel_tiles(maps, count)
    th, tw = tiles[0].shape[:2]
    band = max(6, th // 4)  # the index labels sit above each tile, never on a cell of a small map
    grid = mosaic(tiles, columns=COLUMNS, margin=MARGIN, fill=255, label_band=band)
    gh, gw = grid.shape[:2]
    width_in = 7.0
    grid_w = 5.2 if len(tiles) >= COLUMNS else min(5.2, 0.75 * len(tiles) + 0.4)
    if (
        max(layer.shape[:2]) <= 8
    ):  # a few cells a side (a small ViT's token grid): smaller tiles show them all
        grid_w *= 0.7
    grid_w = min(
        grid_w, MAX_GRID_IN * gw / gh
    )  # 64 channels: two figures a page, not one on a half-empty page
    grid_h = grid_w * gh / gw
    height_in = max(1.9, grid_h + 0.55)
    fig = plt.figure(figsize=(width_in, height_in))
    top = 1 - 0.45 / height_in
    inp = fig.add_axes((0.0, top - 1.25 / height_in, 1.25 / width_in, 1.25 / height_in))
    pixels = image.pixels
    inp.imshow(pixels[..., 0] if pixels.shape[-1] == 1 else pixels, cmap="gray", vmin=0, vmax=255)
    inp.set_axis_off()
    inp.text(0.5, -0.04, "input", transform=inp.transAxes, ha="center", va="top", fontsize=8)
    ax = fig.add_axes((1.4 / width_in, top - grid_h / height_in, grid_w / width_in, grid_h / height_in))
    ax.imshow(grid, interpolation="antialiased")
    ax.set_axis_off()
    h, w, c = layer.shape
    shown = len(tiles)
    fig.suptitle(
        f"{layer.path} ({layer.class_name}) output {h}×{w}×{c}: channels 0–{shown - 1}"
        + (f" of {c}" if shown < c else ""),
        fontsize=9,
        x=0.02,
        ha="left",
        y=1 - 0.12 / height_in,
    )
    fontsize = 5.5 if tw < 48 else 6.5
    for i, label in enumerate(labels):
        r, col = divmod(i, COLUMNS)
        y, x = MARGIN + band + r * (th + band + MARGIN), MARGIN + col * (tw + MARGIN)
        ax.text(x + 1, y - band / 2, label, color="#222", fontsize=fontsize, va="center", ha="left")
    cax = fig.add_axes(
        ((1.4 + grid_w + 0.12) / width_in, top - grid_h / height_in, 0.1 / width_in, grid_h / height_in)
    )
    sm = plt.cm.ScalarMappable(cmap=ACTIVATION_CMAP, norm=plt.Normalize(0, 1))
    cb = fig.colorbar(sm, cax=cax, ticks=[0, 1])
    cb.ax.set_yticklabels(["channel\nmin", "channel\nmax"], fontsize=6.5)
    return fig


def grid_figure(image: imgs.PreparedImage, layer: feature_maps.LayerMaps, index: int, count: int) -> str:
    """ONE picture per (image, layer): PNG, or JPEG when the PNG would be large (noisy maps)."""
    return fig_to_small_uri(_draw(image, layer, index, count), JPEG_ABOVE)


def image_entry(image: imgs.PreparedImage) -> dict:
    """The ``images[i]`` fields both image sections write (path, preprocessing)."""
    entry = {"path": image.path, "stand_in": image.stand_in, "preprocess": image.describe()}
    if image.label is not None:
        entry["true_label"] = image.label
    return entry


def image_view(image: imgs.PreparedImage, index: int) -> dict:
    from reportgen.plots import Later, array_to_uri

    return {
        "index": index,
        "name": image.name,
        "path": image.path,
        "label": image.label,
        "preprocess": image.preprocess,
        "steps": image.steps,
        "value_range": image.value_range,
        "size": image.original_size,
        "shape": tuple(image.input.shape),
        "thumb": Later(array_to_uri, image.pixels),
        "stand_in": image.stand_in,
        "guessed": image.guessed,
        "option": image.option,
    }


def _round(values: np.ndarray, digits: int = 6) -> list:
    return [float(f"{v:.{digits}g}") for v in np.asarray(values, dtype=np.float64)]


def run(ctx: Context) -> SectionResult:
    opts = ctx.options
    images = ctx.images
    view: dict = {"images": [], "note": None, "selection": "", "channels": opts.feature_channels}
    if not images:
        view["note"] = "The model's input is not an image, so it has no feature maps to show."
        return SectionResult(json={"feature_maps": {"note": view["note"]}}, view=view)
    refs = feature_maps.select_layers(ctx.model, opts.layers)
    view["selection"] = _selection_text(ctx.model, refs, bool(opts.layers))
    if not refs:
        view["note"] = (
            "The model has no conv or pooling layer with a 2-D output; choose layers with --layers."
        )
    batch = np.stack([im.input for im in images])
    layers = feature_maps.compute(ctx.model, refs, batch, ctx.feeds)
    json_images = []
    jobs = [(i, L) for i in range(len(images)) for L in layers]
    figures = {(i, L.path): Later(grid_figure, images[i], L, i, opts.feature_channels) for i, L in jobs}
    for i, image in enumerate(images):
        entry = image_entry(image)
        entry["features"] = {
            L.path: {
                "shape": list(L.shape),
                "channel_mean": _round(L.channel_mean[i]),
                "zero_fraction": _round(L.zero_fraction[i]),
            }
            for L in layers
        }
        json_images.append(entry)
        iv = image_view(image, i)
        iv["layers"] = [
            {
                "path": L.path,
                "class_name": L.class_name,
                "shape": L.shape,
                "shown": min(opts.feature_channels, L.shape[-1]),
                "channels": L.shape[-1],
                "mean": float(L.channel_mean[i].mean()),
                "zero_fraction": float(L.zero_fraction[i].mean()),
                "dead": int((L.zero_fraction[i] >= 1.0).sum()),
                "figure": figures[(i, L.path)],
                "anchor": anchor_id("features", L.path)
                if i == 0
                else anchor_id(f"features-image{i}", L.path),
            }
            for L in layers
        ]
        view["images"].append(iv)
    view["figure_ids"] = {L["anchor"] for iv in view["images"] for L in iv["layers"]}
    info = {
        "layers": [L.path for L in layers],
        "selection": view["selection"],
        "channels_shown": opts.feature_channels,
    }
    return SectionResult(json={"images": json_images, "feature_maps": info}, view=view)
