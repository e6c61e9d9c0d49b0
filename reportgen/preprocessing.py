"""Pixel <-> model-input conversion: the one place where preprocessing lives.

Modes (``--preprocess``):

- ``none``: pixels 0-255 reach the model unchanged.
- ``unit``: divide by 255 (the tutorials' ``/ 255.0``) -> 0..1.
- ``tf``: scale to -1..1 (MobileNet, Inception, Xception, ResNetV2).
- ``torch``: 0..1, then per-channel ImageNet mean/std (DenseNet).
- ``caffe``: RGB -> BGR, then subtract the ImageNet channel means (VGG, ResNet50).
- ``scale=S,offset=O``: pixels x S + O (``scale=0.0078125,offset=-0.99609375``
  is ``(x - 127.5) / 128``).
- ``mean=R,G,B,std=R,G,B``: ``(pixels - mean) / std`` on 0-255 pixels (one
  value each for a grey model, or three that are averaged for it).
- ``auto``: a keras-hub task's own image converter when the model carries one
  (:meth:`Preprocessor.from_converter`: its scale and offset, exactly); else
  the architecture's own ``preprocess_input`` for ``keras.applications``
  names; else ``none`` when the model scales its own input, measured by
  :func:`own_scaling` (Keras' guides put ``Rescaling(1/255)`` inside the model;
  dividing by 255 before it would feed it values below 1/255); else, with
  labelled ``--images`` folders, the candidate with the best accuracy on a few
  batches (:mod:`reportgen.analyses.convention`); ``unit`` otherwise, as a guess.

Every choice carries its ``source`` -- ``option`` (the user's ``--preprocess``),
``model`` (read from the model: its keras-hub image converter, its architecture, its own scaling),
``measured`` (chosen on labelled images) or ``default`` (a guess) -- and the
report says which: a page never presents a guess as a fact.

Every mode has an exact inverse, so filter patterns optimised in the model's
input space can be shown as pixels again.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np

from reportgen.errors import UserError

from reportgen.names import PREPROCESS_MODES as MODES, parse_preprocess  # noqa: E402

CANDIDATES = ("unit", "tf", "caffe", "torch", "none")  # what ``auto`` measures on labelled images
SOURCES = ("option", "model", "measured", "default")

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


_PROBED: "weakref.WeakKeyDictionary[Any, str | None]" = weakref.WeakKeyDictionary()
_DIVIDES = 255 / 50  # a 0 -> 255 pixel step moving the first conv's input by at most this: scaled by >= 50
_MEANS = 50  # ... or by about 255 from a level this far from zero: channel means subtracted


def own_scaling(model: Any) -> str | None:
    """Why a model takes raw pixels 0-255 (it scales them itself), or None when it does not.

    Measured, not read from layer types: an all-0 and an all-255 image go
    through the model (other inputs at zeros) up to the input of its first
    convolution, or of its first layer with a kernel. When the 0 -> 255 step
    moves that input by at most 255/50, the model divides pixels itself
    (``Rescaling(1/255)``, ``x / 127.5 - 1``, ``preprocess_input`` inside the
    model, a ``Normalization`` adapted on pixels, in any order with padding
    or augmentation layers, subclassed or not); when it moves it by about 255
    from a level far from zero, the model subtracts channel means itself
    (caffe style). Cached per model.
    """
    if model is None:
        return None
    try:
        return _PROBED[model]
    except (KeyError, TypeError):
        pass
    try:
        why = _probe(model)
    except Exception:  # noqa: BLE001  (a model that cannot run on a probe makes no claim; its sections say why)
        why = None
    try:
        _PROBED[model] = why
    except TypeError:
        pass
    return why


def _probe(model: Any) -> str | None:
    from reportgen import backend, graph
    from reportgen.graph import forward, inputs

    spec = graph.image_input(model)
    if spec is None:
        return None
    refs = [
        r
        for r in graph.walk(model)
        if not r.is_op and not r.is_model and graph.kernel_variables(r.layer) and not graph.children(r.layer)
    ]
    first = next((r for r in refs if graph.is_conv(r.layer)), refs[0] if refs else None)
    if first is None:
        return None
    _, h, w, c = spec.shape
    size = (int(h or graph.DEFAULT_SIZE), int(w or graph.DEFAULT_SIZE), int(c))
    seen: list = []

    def keep_input(layer: Any, call: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(args[0])
        return call(*args, **kwargs)

    x = np.stack([np.zeros(size, np.float32), np.full(size, 255.0, np.float32)])
    feeds = inputs.feeds_for(model)
    with backend.no_grad():
        forward.run(
            model,
            inputs.model_inputs(feeds, backend.tensor(x)),
            {first.path: forward.Tap(capture=False, replace=keep_input, stop=True)},
        )
    if not seen:
        return None
    at = backend.numpy(seen[0]).astype(np.float64)
    low, step = float(np.mean(at[0])), float(np.max(np.abs(at[1] - at[0])))
    if 0 < step <= _DIVIDES:
        return f"the model scales pixels itself (0 -> 255 moves the input of '{first.path}' by {step:.3g})"
    if 0.5 * 255 <= step <= 2 * 255 and abs(low) >= _MEANS:
        return (
            f"the model subtracts channel means from pixels itself (the input of '{first.path}' "
            f"is {low:.4g} for black)"
        )
    return None


def hub_converter(model: Any) -> Any | None:
    """The keras-hub ``ImageConverter`` a task model carries (``model.preprocessor.image_converter``), or
    None.

    keras-hub applies it in ``predict``/``fit`` only, never in ``model(x)``,
    which the report calls: the report has to apply it. Found by duck typing
    (a class named ``ImageConverter`` from keras_hub among the converter's
    bases), so that a model without keras-hub imports nothing.
    """
    pre = getattr(model, "preprocessor", None) if model is not None else None
    converter = getattr(pre, "image_converter", None) if pre is not None else None
    if converter is None:
        return None
    hub = any(
        c.__name__ == "ImageConverter" and c.__module__.startswith("keras_hub")
        for c in type(converter).__mro__
    )
    return converter if hub else None


def _parse(text: str) -> tuple[str, dict]:
    try:
        return parse_preprocess(text)
    except ValueError as exc:
        raise UserError(str(exc)) from None


def _number(value: float) -> str:
    """A number as short as it reads (``%g``), with more digits where six would change it: read from a
    model (1/127.5), the value typed back must give the same input."""
    short = f"{value:g}"
    return short if float(short) == value else f"{value:.10g}"


@dataclass(frozen=True)
class Preprocessor:
    """Converts pixels (0-255, RGB or grey, channels last) to model input and back.

    ``mode`` is a named convention, ``scale`` (pixels x scale + offset) or
    ``meanstd`` ((pixels - mean) / std); ``source`` says where the choice came
    from (:data:`SOURCES`) and ``why`` how ``auto`` reached it.
    """

    mode: str
    why: str = ""  # how ``auto`` chose the mode, when it looked at the model
    source: str = "option"
    scale: float = 1.0
    offset: float = 0.0
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    converter: str = ""  # the keras-hub image converter read from the model (its class name), if any

    def __post_init__(self) -> None:
        if (self.mode not in MODES and self.mode not in ("scale", "meanstd")) or self.mode == "auto":
            raise UserError(
                f"--preprocess '{self.mode}' is not known; use one of {', '.join(MODES)}, "
                "scale=S,offset=O or mean=R,G,B,std=R,G,B"
            )

    @classmethod
    def from_text(cls, text: str, source: str = "option", why: str = "") -> "Preprocessor":
        """A ``--preprocess`` value other than ``auto``: a mode name or one of the two numeric forms."""
        kind, values = _parse(text)
        if kind == "scale":
            return cls("scale", why, source, scale=values["scale"], offset=values["offset"])
        if kind == "meanstd":
            return cls("meanstd", why, source, mean=tuple(values["mean"]), std=tuple(values["std"]))
        return cls(kind, why, source)

    @classmethod
    def resolve(cls, mode: str, architecture: str | None, model: Any = None) -> "Preprocessor":
        """What ``--preprocess`` names (source ``option``); for ``auto``, the architecture's convention or the
        model's own scaling (source ``model``), else ``unit`` as a guess (source ``default``).

        Measuring on labelled images (source ``measured``) needs the images and
        is done by the caller (:func:`reportgen.analyses.convention.choose`).
        """
        kind, _values = _parse(mode)  # a bad value is a UserError naming the forms
        if kind != "auto":
            return cls.from_text(mode, "option")
        converted = cls.from_converter(model)
        if converted is not None:
            return converted
        if architecture and mode_for_architecture(architecture) != "unit":
            return cls(
                mode_for_architecture(architecture),
                f"the preprocess_input of keras.applications' {architecture}",
                "model",
            )
        why = own_scaling(model)
        if why:
            return cls("none", why, "model")
        return cls("unit", "", "default")

    @classmethod
    def from_converter(cls, model: Any) -> "Preprocessor | None":
        """The preprocessing a keras-hub task's image converter applies, exactly (source ``model``); None
        when the model carries no converter, or one whose numbers cannot be read.

        The converter computes ``pixels x scale + offset`` on 0-255 pixels, each
        a number, a per-channel tuple or None (skipped). One number each is the
        ``scale`` form (the same float32 operations as the converter); per-channel
        values are the ``mean/std`` form with ``mean = -offset / scale`` and
        ``std = 1 / scale`` (``x * s + o == (x - mean) / std``), which reads as
        the familiar ImageNet statistics on 0-255 pixels. Its resizing is not
        taken: the report fits images to the model's input itself.
        """
        converter = hub_converter(model)
        if converter is None:
            return None
        name = type(converter).__name__
        raw_scale, raw_offset = getattr(converter, "scale", None), getattr(converter, "offset", None)
        try:
            scale = np.ravel(np.asarray(1.0 if raw_scale is None else raw_scale, np.float64))
            offset = np.ravel(np.asarray(0.0 if raw_offset is None else raw_offset, np.float64))
        except (TypeError, ValueError):
            return None
        if (
            scale.size not in (1, 3)
            or offset.size not in (1, 3)
            or not np.all(np.isfinite(scale))
            or not np.all(np.isfinite(offset))
            or np.any(scale == 0)
        ):
            return None
        why = f"the model's keras-hub {name}, saved with it"
        if scale.size == 1 and offset.size == 1:
            if scale[0] == 1 and offset[0] == 0:
                return cls("none", why, "model", converter=name)
            return cls("scale", why, "model", scale=float(scale[0]), offset=float(offset[0]), converter=name)
        scale, offset = np.broadcast_to(scale, (3,)), np.broadcast_to(offset, (3,))
        return cls(
            "meanstd",
            why,
            "model",
            mean=tuple(float(v) for v in -offset / scale),
            std=tuple(float(v) for v in 1.0 / scale),
            converter=name,
        )

    @property
    def guessed(self) -> bool:
        return self.source == "default"

    def with_source(self, source: str, why: str = "") -> "Preprocessor":
        from dataclasses import replace

        return replace(self, source=source, why=why)

    def option_text(self) -> str:
        """This preprocessing as a ``--preprocess`` value (what a user types to get it again)."""
        if self.mode == "scale":
            return f"scale={_number(self.scale)},offset={_number(self.offset)}"
        if self.mode == "meanstd":
            return f"mean={','.join(map(_number, self.mean))},std={','.join(map(_number, self.std))}"
        return self.mode

    def describe(self) -> str:
        if self.mode == "scale":
            sign = "-" if self.offset < 0 else "+"
            text = f"scale (pixels × {self.scale:g} {sign} {abs(self.offset):g})"
        elif self.mode == "meanstd":
            text = (
                f"mean/std ((pixels - ({', '.join(f'{v:g}' for v in self.mean)})) / "
                f"({', '.join(f'{v:g}' for v in self.std)}))"
            )
        else:
            text = {
                "none": "none (pixels 0-255 as they are)",
                "unit": "unit (pixels / 255)",
                "tf": "tf (pixels / 127.5 - 1)",
                "torch": "torch (pixels / 255, minus ImageNet mean, over ImageNet std)",
                "caffe": "caffe (RGB to BGR, minus ImageNet channel means)",
            }[self.mode]
        return f"{text}: {self.why}" if self.why else text

    def _mean_std(self, channels: int) -> tuple[np.ndarray, np.ndarray]:
        mean, std = np.asarray(self.mean, np.float32), np.asarray(self.std, np.float32)
        if channels == 1 and mean.size == 3:
            mean = mean.mean(keepdims=True)
        if channels == 1 and std.size == 3:
            std = std.mean(keepdims=True)
        return mean, std

    def forward(self, pixels: np.ndarray) -> np.ndarray:
        x = np.asarray(pixels, dtype=np.float32)
        rgb = x.shape[-1] == 3
        if self.mode == "none":
            return x.copy()
        if self.mode == "scale":
            return (x * np.float32(self.scale) + np.float32(self.offset)).astype(np.float32)
        if self.mode == "meanstd":
            mean, std = self._mean_std(x.shape[-1])
            return ((x - mean) / std).astype(np.float32)
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
        if self.mode == "scale":
            return ((x - np.float32(self.offset)) / np.float32(self.scale)).astype(np.float32)
        if self.mode == "meanstd":
            mean, std = self._mean_std(x.shape[-1])
            return (x * std + mean).astype(np.float32)
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
