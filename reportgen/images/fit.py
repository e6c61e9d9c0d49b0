"""Fitting pixels to the model's image input: what that input is (:class:`InputSpec`), whether the
model has one, and the aspect-keeping scale + centre crop + channel match (:func:`fit_to_input`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from reportgen.errors import UserError

DEFAULT_SIZE = 224  # for models whose input height/width is not fixed
MIN_SIDE = 8  # smaller images carry no spatial information worth a feature map


@dataclass(frozen=True)
class InputSpec:
    """What an image model expects: height, width, channels (channels last)."""

    height: int
    width: int
    channels: int
    # Where height and width came from: "model" (its declared input), "converter" (a keras-hub task's image
    # converter, for a backbone that takes any size), "default" (DEFAULT_SIZE: nothing said).
    size_from: str = "model"

    def describe_size(self) -> str:
        """Where the size came from, in words (page 1)."""
        size = f"{self.width}x{self.height} px"
        if self.size_from == "converter":
            return (
                f"{size}, the image_size of the model's own keras-hub "
                "image converter (its network takes any size)"
            )
        if self.size_from == "default":
            return (
                f"{size}, reportgen's default: the model takes any size and carries nothing that says which"
            )
        return f"{size}, the model's declared input"


def image_input_spec(model: Any) -> InputSpec | None:
    """The model's image input, or None when no input is an image (1-D features, say).

    A model with one image input beside other inputs (image plus metadata)
    has an image input too; the other inputs are fed by :mod:`reportgen.graph.inputs`.
    """
    from reportgen import graph

    spec = graph.image_input(model)
    if spec is None:
        return None
    _, h, w, c = spec.shape
    if h and w:
        return InputSpec(int(h), int(w), int(c))
    size = converter_size(model)
    if size is not None:
        return InputSpec(int(h or size[0]), int(w or size[1]), int(c), "converter")
    return InputSpec(int(h or DEFAULT_SIZE), int(w or DEFAULT_SIZE), int(c), "default")


def converter_size(model: Any) -> tuple[int, int] | None:
    """The (height, width) a keras-hub task's image converter resizes to, or None (no converter, or no
    size)."""
    from reportgen.preprocessing import hub_converter

    converter = hub_converter(model)
    size = getattr(converter, "image_size", None) if converter is not None else None
    try:
        h, w = (int(v) for v in size)
    except (TypeError, ValueError):
        return None
    return (h, w) if h > 0 and w > 0 else None


def require_image_input(model: Any, what: str) -> InputSpec:
    from reportgen import graph

    spec = image_input_spec(model)
    if spec is None:
        shapes = ", ".join(str(tuple(t.shape)) for t in graph.anatomy(model).inputs)
        raise UserError(
            f"{what}: the model's input {shapes or '(unknown)'} is not an image "
            "(expected an input of height x width x 1 or 3 channels); "
            f"drop {what} for this model"
        )
    return spec


def check_size(pixels: np.ndarray, spec: InputSpec, name: str) -> None:
    h, w = pixels.shape[:2]
    need = min(MIN_SIDE, spec.height, spec.width)
    if h < need or w < need:
        raise UserError(
            f"image '{name}' is {w}x{h} pixels, too small to show what the model sees; "
            f"use an image at least {need}x{need} pixels (the model takes {spec.width}x{spec.height})"
        )


def fit_to_input(pixels: np.ndarray, spec: InputSpec, steps: list[str] | None = None) -> np.ndarray:
    """Scale to cover ``spec`` keeping the aspect ratio, centre-crop, match channels.

    Returns uint8 H x W x C with (H, W, C) = the model's input.
    """
    from PIL import Image

    steps = steps if steps is not None else []
    arr = np.asarray(pixels, dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[..., None]
    channels = arr.shape[-1]
    if spec.channels == 1 and channels == 3:
        arr = np.asarray(Image.fromarray(arr).convert("L"))[..., None]
        steps.append("RGB to grey (ITU-R 601 luma)")
    elif spec.channels == 3 and channels == 1:
        arr = np.repeat(arr, 3, axis=-1)
        steps.append("grey to RGB (channel repeated)")
    h, w = arr.shape[:2]
    th, tw = spec.height, spec.width
    if (h, w) != (th, tw):
        scale = max(th / h, tw / w)
        nh, nw = max(th, round(h * scale)), max(tw, round(w * scale))
        img = Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr)
        img = img.resize((nw, nh), Image.Resampling.BICUBIC)
        top, left = (nh - th) // 2, (nw - tw) // 2
        img = img.crop((left, top, left + tw, top + th))
        out = np.asarray(img, dtype=np.uint8)
        arr = out[..., None] if out.ndim == 2 else out
        if (nh, nw) == (th, tw):
            steps.append(f"resized {w}x{h} to {tw}x{th}")
        else:
            steps.append(f"resized {w}x{h} to {nw}x{nh} (aspect ratio kept), centre-cropped to {tw}x{th}")
    return np.ascontiguousarray(arr)
