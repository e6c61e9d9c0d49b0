"""The model as a reader of the report sees it: every layer with its path.

Keras nests models (a transfer-learning model holds VGG16 as one layer), and a
nested layer's own ``.output`` lives in the inner model's graph, not the outer
one. :func:`flat_graph` therefore re-traces the whole model once on fresh
symbolic inputs, descending into nested Sequential and functional models, so
that every layer -- nested or not -- has an output tensor connected to the
outer model's input. :func:`submodel` turns any set of those into ONE
multi-output ``keras.Model``: one forward pass for all selected activations.

The layer selections (kernel layers, conv layers, feature-map layers, stages)
live here and nowhere else.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import keras

from reportgen.errors import UserError

CONV_TYPES: tuple[type, ...] = (
    keras.layers.Conv1D,
    keras.layers.Conv2D,
    keras.layers.Conv3D,
    keras.layers.Conv1DTranspose,
    keras.layers.Conv2DTranspose,
    keras.layers.Conv3DTranspose,
    keras.layers.DepthwiseConv1D,
    keras.layers.DepthwiseConv2D,
    keras.layers.SeparableConv1D,
    keras.layers.SeparableConv2D,
)
POOLING_TYPES: tuple[type, ...] = (
    keras.layers.MaxPooling1D,
    keras.layers.MaxPooling2D,
    keras.layers.MaxPooling3D,
    keras.layers.AveragePooling1D,
    keras.layers.AveragePooling2D,
    keras.layers.AveragePooling3D,
)
KERNEL_TYPES: tuple[type, ...] = CONV_TYPES + (keras.layers.Dense,)


@dataclass(frozen=True)
class LayerRef:
    """One layer of the model, named by its path (``vgg16/block1_conv1``)."""

    path: str
    layer: Any
    depth: int
    output_shape: tuple | None = None

    @property
    def class_name(self) -> str:
        return type(self.layer).__name__

    @property
    def is_model(self) -> bool:
        return isinstance(self.layer, keras.Model)


@dataclass
class FlatGraph:
    """The model re-traced on fresh inputs: one symbolic output per layer path."""

    inputs: list
    outputs: Any
    by_path: dict[str, Any] = field(default_factory=dict)
    order: list[tuple[str, Any, int]] = field(default_factory=list)
    # The symbolic arguments each layer path was called with (Grad-CAM reads the
    # input of the classifier layer to score classes before the softmax).
    args_by_path: dict[str, tuple] = field(default_factory=dict)


def _is_traceable(model: Any) -> bool:
    return isinstance(model, keras.Sequential) or hasattr(model, "_run_through_graph")


def _trace(model: Any, x: Any, prefix: str, depth: int, graph: FlatGraph) -> Any:
    """Call the layers of ``model`` on ``x`` one by one, recording every output."""

    def record(op: Any, args: tuple, kwargs: dict) -> Any:
        path = prefix + op.name
        graph.args_by_path.setdefault(path, args)
        if isinstance(op, keras.Model) and _is_traceable(op):
            graph.order.append((path, op, depth))
            inner = args[0] if len(args) == 1 else list(args)
            out = _trace(op, inner, path + "/", depth + 1, graph)
        else:
            graph.order.append((path, op, depth))
            out = op(*args, **kwargs)
        graph.by_path[path] = out
        return out

    if isinstance(model, keras.Sequential):
        for layer in model.layers:
            if isinstance(layer, keras.layers.InputLayer):
                continue
            x = record(layer, (x,), {})
        return x

    def operation_fn(op: Any):
        def call(*args: Any, **kwargs: Any) -> Any:
            return record(op, args, kwargs)

        return call

    return model._run_through_graph(x, operation_fn=operation_fn)


_FLAT_CACHE: "weakref.WeakKeyDictionary[Any, FlatGraph]" = weakref.WeakKeyDictionary()


def flat_graph(model: keras.Model) -> FlatGraph:
    """Trace ``model`` once (cached) so that every nested layer has an output."""
    cached = _FLAT_CACHE.get(model)
    if cached is not None:
        return cached
    if not _is_traceable(model):
        raise UserError(
            f"model '{model.name}' is a subclassed Keras model whose layers cannot be traced; "
            "save it as a Sequential or functional model"
        )
    inputs = [
        keras.Input(shape=tuple(t.shape[1:]), dtype=t.dtype, name=f"reportgen_input_{i}")
        for i, t in enumerate(model.inputs)
    ]
    graph = FlatGraph(inputs=inputs, outputs=None)
    x = inputs[0] if len(inputs) == 1 else inputs
    graph.outputs = _trace(model, x, "", 0, graph)
    _FLAT_CACHE[model] = graph
    return graph


def _shape(tensor: Any) -> tuple | None:
    shape = getattr(tensor, "shape", None)
    return tuple(shape) if shape is not None else None


def walk(model: keras.Model) -> list[LayerRef]:
    """Every layer in call order, nested models followed by their own layers."""
    graph = flat_graph(model)
    seen: set[str] = set()
    refs = []
    for path, layer, depth in graph.order:
        if path in seen:  # a shared layer called twice appears once
            continue
        seen.add(path)
        refs.append(LayerRef(path, layer, depth, _shape(graph.by_path.get(path))))
    return refs


def is_conv(layer: Any) -> bool:
    return isinstance(layer, CONV_TYPES)


def is_pooling(layer: Any) -> bool:
    return isinstance(layer, POOLING_TYPES)


def kernel_variables(layer: Any) -> dict[str, Any]:
    """The kernel weights of a layer by role; empty for layers without one.

    Separable convolutions hold two kernels (depthwise and pointwise); the
    depthwise one is the spatial filter bank the report draws.
    """
    if not isinstance(layer, KERNEL_TYPES):
        return {}
    found = {}
    for attr in ("kernel", "depthwise_kernel", "pointwise_kernel"):
        var = getattr(layer, attr, None)
        if var is not None:
            found[attr] = var
    return found


def main_kernel(layer: Any) -> Any | None:
    """The filter bank shown in kernel grids: ``kernel``, else ``depthwise_kernel``."""
    kernels = kernel_variables(layer)
    return kernels.get("kernel", kernels.get("depthwise_kernel"))


def kernel_layers(model: keras.Model) -> list[LayerRef]:
    """Layers with a kernel: Conv1D/2D/3D (and transposed), depthwise, separable, Dense."""
    return [r for r in walk(model) if kernel_variables(r.layer)]


def conv_layers(model: keras.Model) -> list[LayerRef]:
    return [r for r in walk(model) if is_conv(r.layer)]


def feature_map_layers(model: keras.Model) -> list[LayerRef]:
    """Conv and pooling layers: the ones whose outputs are spatial feature maps."""
    return [r for r in walk(model) if is_conv(r.layer) or is_pooling(r.layer)]


def spatial_size(ref: LayerRef) -> tuple | None:
    """The spatial part of a layer's output shape (channels-last)."""
    if ref.output_shape is None or len(ref.output_shape) < 3:
        return None
    return tuple(ref.output_shape[1:-1])


def _single_pixel(ref: LayerRef) -> bool:
    size = spatial_size(ref)
    return size is not None and all(d == 1 for d in size)


def stage_starts(refs: Sequence[LayerRef]) -> list[LayerRef]:
    """The first layer of each stage: a stage is a run of layers at one spatial size.

    For VGG16's conv layers this gives ``block1_conv1`` ... ``block5_conv1``.
    Layers whose output is a single pixel (the squeeze-and-excitation convs of
    EfficientNet and MobileNetV3, which act on globally pooled features) neither
    start nor end a stage: they would otherwise split every block in two.
    """
    starts: list[LayerRef] = []
    last = object()
    for ref in refs:
        if _single_pixel(ref):
            continue
        size = spatial_size(ref)
        if size != last:
            starts.append(ref)
            last = size
    return starts


def find_layers(refs: Sequence[LayerRef], names: Iterable[str], option: str) -> list[LayerRef]:
    """Look user-given names up among ``refs``: a full path, or a plain name if unique."""
    by_path = {r.path: r for r in refs}
    chosen = []
    for name in names:
        if name in by_path:
            chosen.append(by_path[name])
            continue
        matches = [r for r in refs if r.path.rsplit("/", 1)[-1] == name]
        if len(matches) == 1:
            chosen.append(matches[0])
            continue
        valid = ", ".join(r.path for r in refs) or "(none)"
        why = "is ambiguous" if matches else "is not a valid layer"
        raise UserError(f"{option}: '{name}' {why}; valid names: {valid}")
    return chosen


def submodel(model: keras.Model, paths: Sequence[str], with_output: bool = False) -> keras.Model:
    """ONE multi-output model from the model's input to the layers at ``paths``.

    With ``with_output`` the model's own output(s) come last, so a single
    forward pass gives activations and predictions together.
    """
    graph = flat_graph(model)
    outputs = [graph.by_path[p] for p in paths]
    if with_output:
        outputs.append(graph.outputs)
    return keras.Model(graph.inputs, outputs)


# --- feature maps and Grad-CAM ------------------------------------------------------

MAX_DEFAULT_FEATURE_LAYERS = 20


def has_spatial_output(ref: LayerRef) -> bool:
    """A 2-D feature map (batch, height, width, channels): what a grid can show."""
    return ref.output_shape is not None and len(ref.output_shape) == 4


def spatial_layers(model: keras.Model) -> list[LayerRef]:
    """Every layer (nested ones included) whose output is a 2-D feature map."""
    return [r for r in walk(model) if has_spatial_output(r) and not r.is_model]


def default_feature_layers(model: keras.Model) -> list[LayerRef]:
    """The layers whose feature maps the report shows by default.

    Every conv and pooling layer with a 2-D output when there are at most
    :data:`MAX_DEFAULT_FEATURE_LAYERS` of them (VGG16: 13 conv + 5 pooling).
    Larger models (ResNet, DenseNet, ...) would give hundreds of grids, so they
    get the first conv layer of each stage (a run of layers at one spatial
    resolution: a ResNet stage, a VGG block) and the last conv layer -- the one
    Grad-CAM uses -- in model order.
    """
    refs = [r for r in feature_map_layers(model) if has_spatial_output(r)]
    if len(refs) <= MAX_DEFAULT_FEATURE_LAYERS:
        return refs
    convs = [r for r in refs if is_conv(r.layer)]
    chosen = {r.path for r in model_stage_starts(model, convs)}
    last = last_map_conv(model)
    if last is not None:
        chosen.add(last.path)
    return [r for r in convs if r.path in chosen]


# --- filter patterns ------------------------------------------------------------------

MAX_ALL_PATTERN_LAYERS = 6


def pattern_candidates(model: keras.Model) -> list[LayerRef]:
    """Conv layers with a 2-D output: the layers whose filters can be visualised as images."""
    return [r for r in conv_layers(model) if has_spatial_output(r)]


def _with_concrete_sizes(model: keras.Model, refs: Sequence[LayerRef], size: int = 224) -> list[LayerRef]:
    """``refs`` with output shapes traced at ``size`` px when the model's are unknown.

    A model built with ``input_shape=(None, None, 3)`` reports no spatial sizes,
    so stages cannot be told apart; re-tracing it on a concrete input can.
    """
    inputs = flat_graph(model).inputs
    if len(inputs) != 1 or len(inputs[0].shape) != 4:
        return list(refs)
    try:
        probe = FlatGraph(inputs=[], outputs=None)
        x = keras.Input((size, size, int(inputs[0].shape[-1])))
        _trace(model, x, "", 0, probe)
    except Exception:  # a head that needs the original size: keep what we know
        return list(refs)
    return [LayerRef(r.path, r.layer, r.depth, _shape(probe.by_path.get(r.path)) or r.output_shape) for r in refs]


def default_pattern_layers(model: keras.Model) -> list[LayerRef]:
    """The conv layers whose filter patterns the report shows by default.

    Every conv layer (with a 2-D output) for models with up to
    :data:`MAX_ALL_PATTERN_LAYERS` of them; otherwise the first conv layer of
    each stage (a run of conv layers at one spatial resolution), which for
    VGG16 is ``block1_conv1`` ... ``block5_conv1``, the tutorial's choice.
    """
    convs = pattern_candidates(model)
    if len(convs) <= MAX_ALL_PATTERN_LAYERS:
        return convs
    chosen = {r.path for r in model_stage_starts(model, convs)}
    return [r for r in convs if r.path in chosen]


def last_map_conv(model: keras.Model) -> LayerRef | None:
    """The last conv layer whose output is still a map (more than one pixel).

    The Grad-CAM target (``block5_conv3`` for VGG16). Convs on a single pixel,
    such as MobileNetV3's 1x1 ``logits`` head, have no "where" to show.
    """
    convs = [r for r in conv_layers(model) if has_spatial_output(r)]
    if any(s is None or None in s for s in (spatial_size(r) for r in convs)):
        convs = _with_concrete_sizes(model, convs)
    maps = [r for r in convs if not _single_pixel(r)]
    if not maps:
        return None
    return next(r for r in walk(model) if r.path == maps[-1].path)


def model_stage_starts(model: keras.Model, refs: Sequence[LayerRef]) -> list[LayerRef]:
    """:func:`stage_starts` of ``refs``, tracing at 224 px first when sizes are unknown."""
    if any(s is None or None in s for s in (spatial_size(r) for r in refs)):
        refs = _with_concrete_sizes(model, refs)
    return stage_starts(refs)
