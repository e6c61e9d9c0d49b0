"""Pixel <-> model-input conversion: the one place where preprocessing lives.

Modes (``--preprocess``):

- ``none``: pixels 0-255 reach the model unchanged.
- ``unit``: divide by 255 (the tutorials' ``/ 255.0``) -> 0..1.
- ``tf``: scale to -1..1 (MobileNet, Inception, Xception, ResNetV2).
- ``torch``: 0..1, then per-channel ImageNet mean/std (DenseNet).
- ``caffe``: RGB -> BGR, then subtract the ImageNet channel means (VGG, ResNet50).
- ``auto``: the architecture's own ``preprocess_input`` for ``keras.applications``
  names; else ``none`` when the model scales its own input (its first layer is a
  ``Rescaling`` by at most 1/50, or a ``Normalization`` whose means exceed 2, the
  pattern Keras' guides recommend), so pixels are not divided by 255 twice;
  ``unit`` otherwise.

Every mode has an exact inverse, so filter patterns optimised in the model's
input space can be shown as pixels again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from reportgen.errors import UserError

from reportgen.names import PREPROCESS_MODES as MODES  # noqa: E402

_CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68], dtype=np.float32)
_TORCH_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
_TORCH_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)

# keras.applications family -> the mode its preprocess_input applies.
# EfficientNet, EfficientNetV2, ConvNeXt and RegNet rescale inside the model.
_ARCHITECTURE_MODES = {
    "vgg": "caffe",
    "resnet50": "caffe",
    "resnet101": "caffe",
    "resnet152": "caffe",
    "resnet50v2": "tf",
    "resnet101v2": "tf",
    "resnet152v2": "tf",
    "mobilenet": "tf",
    "mobilenetv3": "none",
    "inception": "tf",
    "xception": "tf",
    "nasnet": "tf",
    "densenet": "torch",
    "efficientnet": "none",
    "convnext": "none",
    "regnet": "none",
}


def mode_for_architecture(architecture: str | None) -> str:
    """What ``auto`` means for a model: its application's mode, else ``unit``."""
    if not architecture:
        return "unit"
    key = architecture.lower().replace("_", "")
    if key in _ARCHITECTURE_MODES:
        return _ARCHITECTURE_MODES[key]
    for prefix in sorted(_ARCHITECTURE_MODES, key=len, reverse=True):
        if key.startswith(prefix):
            return _ARCHITECTURE_MODES[prefix]
    return "unit"


# Layers that may come before a model's own scaling without changing the value range.
_PASS_THROUGH = ("InputLayer", "Resizing", "CenterCrop")


def first_layer(model: Any) -> Any:
    """The first layer that touches pixel values, inside nested models; None when there is none."""
    layers = list(getattr(model, "layers", None) or [])
    for layer in layers:
        name = type(layer).__name__
        if name in _PASS_THROUGH or name.startswith("Random"):  # augmentation: identity at inference
            continue
        if getattr(layer, "layers", None):
            inner = first_layer(layer)
            if inner is not None:
                return inner
            continue
        return layer
    return None


def own_scaling(model: Any) -> str | None:
    """Why a model takes raw pixels 0-255 (it scales them itself), or None when it does not say so."""
    layer = first_layer(model) if model is not None else None
    if layer is None:
        return None
    kind = type(layer).__name__
    try:
        if kind == "Rescaling":
            scale = np.abs(np.asarray(layer.scale, dtype=np.float64))
            if scale.size and 0 < scale.max() <= 1 / 50:
                return f"the model's first layer '{layer.name}' rescales pixels itself (scale {scale.max():.4g})"
        elif kind == "Normalization":
            mean = getattr(layer, "mean", None)
            mean = np.abs(np.asarray(getattr(mean, "numpy", lambda: mean)(), dtype=np.float64))
            if mean.size and mean.max() > 2:
                return (f"the model's first layer '{layer.name}' normalises pixels itself "
                        f"(means up to {mean.max():.4g})")
    except (TypeError, ValueError, AttributeError):  # an unbuilt or unusual layer: no claim
        return None
    return None


@dataclass(frozen=True)
class Preprocessor:
    """Converts pixels (0-255, RGB or grey, channels last) to model input and back."""

    mode: str
    why: str = ""  # how ``auto`` chose the mode, when it looked at the model

    def __post_init__(self) -> None:
        if self.mode not in MODES or self.mode == "auto":
            raise UserError(
                f"--preprocess '{self.mode}' is not known; use one of {', '.join(MODES)}"
            )

    @classmethod
    def resolve(cls, mode: str, architecture: str | None, model: Any = None) -> "Preprocessor":
        """The mode ``--preprocess`` names; for ``auto``, the architecture's, the model's own scaling, or unit."""
        if mode not in MODES:
            raise UserError(f"--preprocess '{mode}' is not known; use one of {', '.join(MODES)}")
        if mode != "auto":
            return cls(mode)
        if architecture and mode_for_architecture(architecture) != "unit":
            return cls(mode_for_architecture(architecture))
        why = own_scaling(model)
        return cls("none", why) if why else cls("unit")

    def describe(self) -> str:
        text = {
            "none": "none (pixels 0-255 as they are)",
            "unit": "unit (pixels / 255)",
            "tf": "tf (pixels / 127.5 - 1)",
            "torch": "torch (pixels / 255, minus ImageNet mean, over ImageNet std)",
            "caffe": "caffe (RGB to BGR, minus ImageNet channel means)",
        }[self.mode]
        return f"{text}: {self.why}" if self.why else text

    def forward(self, pixels: np.ndarray) -> np.ndarray:
        x = np.asarray(pixels, dtype=np.float32)
        rgb = x.shape[-1] == 3
        if self.mode == "none":
            return x.copy()
        if self.mode == "unit":
            return x / 255.0
        if self.mode == "tf":
            return x / 127.5 - 1.0
        if self.mode == "torch":
            x = x / 255.0
            return (x - _TORCH_MEAN) / _TORCH_STD if rgb else (x - _TORCH_MEAN.mean()) / _TORCH_STD.mean()
        # caffe
        if rgb:
            return x[..., ::-1] - _CAFFE_MEAN_BGR
        return x - _CAFFE_MEAN_BGR.mean()

    def inverse(self, x: np.ndarray) -> np.ndarray:
        """Model input back to pixels 0-255 (not clipped)."""
        x = np.asarray(x, dtype=np.float32)
        rgb = x.shape[-1] == 3
        if self.mode == "none":
            return x.copy()
        if self.mode == "unit":
            return x * 255.0
        if self.mode == "tf":
            return (x + 1.0) * 127.5
        if self.mode == "torch":
            if rgb:
                return (x * _TORCH_STD + _TORCH_MEAN) * 255.0
            return (x * _TORCH_STD.mean() + _TORCH_MEAN.mean()) * 255.0
        if rgb:
            return (x + _CAFFE_MEAN_BGR)[..., ::-1]
        return x + _CAFFE_MEAN_BGR.mean()
