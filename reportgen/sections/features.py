"""Feature maps: each selected conv / pooling layer's output for each input image.

One forward pass gives every selected layer (:mod:`reportgen.analyses.feature_maps`);
each layer's channels are composited into ONE image per (image, layer), 8
channels a row, each channel on its own colour scale, the input image beside
(:mod:`reportgen.painters.features` draws it).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from reportgen import graph, images as imgs
from reportgen.analyses import feature_maps
from reportgen.anchors import anchor_id
from reportgen.context import Context, SectionResult
from reportgen.errors import UserError
from reportgen.figures import Figure

TITLE = "Feature maps"
NEEDS = ("images", "feature_maps")


def validate(ctx: Context) -> None:
    opts = ctx.options
    if opts.feature_channels < 1:
        raise UserError(f"--feature-channels must be at least 1 (got {opts.feature_channels})")
    if opts.layers:
        imgs.require_image_input(ctx.model, "--layers")
        feature_maps.select_layers(ctx.model, opts.layers)


def _selection_text(model: Any, chosen: Sequence[graph.LayerRef], user: bool) -> str:
    if user:
        return f"{len(chosen)} layer(s) chosen with --layers"
    blocks = graph.token_blocks(model)
    if blocks and blocks[-1].grid is None:  # ViTDet: the blocks keep their tokens as a map
        shown = len({r.path for r in chosen} & {b.path for b in blocks})
        height, width = graph.spatial_size(blocks[-1])
        return (
            f"the patch embedding and {shown} of {len(blocks)} transformer blocks, each block's patch tokens "
            f"as the {height}x{width} map on the patch grid it keeps them in; choose others with --layers"
        )
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


def image_entry(image: imgs.PreparedImage) -> dict:
    """The ``images[i]`` fields both image sections write (path, preprocessing)."""
    entry = {"path": image.path, "stand_in": image.stand_in, "preprocess": image.describe()}
    if image.label is not None:
        entry["true_label"] = image.label
    return entry


def image_view(image: imgs.PreparedImage, index: int) -> dict:
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
        "stand_in": image.stand_in,
        "guessed": image.guessed,
        "option": image.option,
    }


def _round(values: np.ndarray, digits: int = 6) -> list:
    return [float(f"{v:.{digits}g}") for v in np.asarray(values, dtype=np.float64)]


def run(ctx: Context) -> SectionResult:
    opts = ctx.options
    images = ctx.analyses.images
    view: dict = {"images": [], "note": None, "selection": "", "channels": opts.feature_channels}
    if not images:
        view["note"] = "The model's input is not an image, so it has no feature maps to show."
        return SectionResult(json={"feature_maps": {"note": view["note"]}}, view=view)
    found = ctx.analyses.feature_maps
    refs, layers = found.refs, found.layers
    view["selection"] = _selection_text(ctx.model, refs, found.user)
    if not refs:
        view["note"] = (
            "The model has no conv or pooling layer with a 2-D output; choose layers with --layers."
        )
    json_images = []
    jobs = [(i, L) for i in range(len(images)) for L in layers]
    figures = {
        (i, L.path): Figure(
            "features.grid", images[i].pixels, L.maps[i], L.path, L.class_name, L.shape, opts.feature_channels
        )
        for i, L in jobs
    }
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
