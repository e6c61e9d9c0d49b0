"""The model as a reader of the report sees it: every layer with its path, in call order.

Keras models come in two shapes, and reportgen takes both:

- **Functional and Sequential models** have a graph. :func:`flat_graph`
  re-traces it once on fresh symbolic inputs, descending into nested
  Sequential and functional models, so that every layer -- nested or not --
  has a symbolic output connected to the outer input. Keras 3 graphs also
  hold *operations* that are not layers (``x + y``, ``ops.hard_swish``): they
  are walked and listed like layers, with no weights.
- **Subclassed models** (a ``call`` method written in Python) have no graph to
  cut. Their layers are found in the layer tree (attributes, ``keras.Sequential``
  blocks, nested models) and their call order and output shapes are recorded
  during one forward pass on a zero input, the way forward hooks work in other
  frameworks (:mod:`reportgen.forward`). Custom layers with sublayers inside
  a functional model are recorded the same way.

Either way a layer is named by its path (``vgg16/block1_conv1``,
``block2/conv``): the names of the models and blocks that hold it, then its
own. :func:`walk` gives every layer with its path, depth, input and output
shape; :class:`Anatomy` adds the model's inputs and outputs. Every layer
selection (kernel layers, conv layers, feature-map layers, stages) lives here
and nowhere else.
"""

from __future__ import annotations

import contextlib
import weakref
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Sequence

import keras
import numpy as np

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
DEFAULT_SIZE = 224  # spatial size used where a model's input size is not fixed


@dataclass(frozen=True)
class LayerRef:
    """One layer (or graph operation) of the model, named by its path (``vgg16/block1_conv1``)."""

    path: str
    layer: Any
    depth: int
    output_shape: tuple | None = None
    input_shape: tuple | None = None  # of the first input

    @property
    def class_name(self) -> str:
        return type(self.layer).__name__

    @property
    def is_model(self) -> bool:
        return isinstance(self.layer, keras.Model)

    @property
    def is_op(self) -> bool:
        """A graph operation that is not a layer (``x + y``): no weights, no config."""
        return not isinstance(self.layer, keras.layers.Layer)

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output: its name, shape (batch dimension None) and dtype."""

    name: str
    shape: tuple
    dtype: str = "float32"


@dataclass
class FlatGraph:
    """A functional model re-traced on fresh inputs: one symbolic output per layer path."""

    inputs: list
    outputs: Any
    by_path: dict[str, Any] = field(default_factory=dict)
    order: list[tuple[str, Any, int]] = field(default_factory=list)
    # The symbolic arguments each layer path was called with.
    args_by_path: dict[str, tuple] = field(default_factory=dict)
    # False for a concrete pass: keeping every layer's output would hold all of a model's
    # activations at once (EfficientNetB7 at 600 px: 4.2 GB an image).
    keep: bool = True


def weights_of(layer: Any) -> list:
    """A layer's weights; none for graph operations that are not layers."""
    return list(getattr(layer, "weights", None) or []) if isinstance(layer, keras.layers.Layer) else []


def is_traceable(model: Any) -> bool:
    """Functional and Sequential models have a graph to walk; subclassed ones do not."""
    return isinstance(model, keras.Sequential) or hasattr(model, "_run_through_graph")


def children(layer: Any) -> list:
    """The layers a layer holds directly (attributes, Sequential blocks, a functional model's layers)."""
    if not isinstance(layer, keras.layers.Layer):
        return []
    try:
        found = layer._flatten_layers(include_self=False, recursive=False)
    except Exception:  # a layer type without Keras' tracker
        found = list(getattr(layer, "layers", []) or [])
    return [c for c in found if not isinstance(c, keras.layers.InputLayer)]


def layer_tree(model: Any) -> dict[str, Any]:
    """Every layer below ``model`` by path, found from the structure alone (no forward pass).

    Two children of one parent with the same name (possible in subclassed
    models) get distinct paths: the later one gains ``#2``, ``#3``...
    """
    out: dict[str, Any] = {}
    seen: set[int] = set()

    def visit(layer: Any, prefix: str) -> None:
        names: dict[str, int] = {}
        for child in children(layer):
            if id(child) in seen:
                continue
            seen.add(id(child))
            k = names.get(child.name, 0) + 1
            names[child.name] = k
            path = prefix + child.name + (f"#{k}" if k > 1 else "")
            out[path] = child
            visit(child, path + "/")

    visit(model, "")
    return out


def _shape(x: Any) -> tuple | None:
    """The shape of a tensor, or of the first tensor in a nest, batch dimension as None."""
    while isinstance(x, (list, tuple)) and x:
        x = x[0]
    if isinstance(x, dict) and x:
        x = next(iter(x.values()))
    shape = getattr(x, "shape", None)
    if shape is None:
        return None
    try:
        dims = tuple(None if d is None else int(d) for d in shape)
    except (TypeError, ValueError):
        return None
    return (None,) + dims[1:] if dims else dims


# --- functional models ------------------------------------------------------------------

class StopTrace(BaseException):
    """Ends a trace after the layer named by ``stop_at`` (a BaseException: Keras' wrappers let it through)."""


def _trace(model: Any, x: Any, prefix: str, depth: int, graph: FlatGraph, stop_at: str | None = None) -> Any:
    """Call the layers of a functional ``model`` on ``x`` one by one, recording every output.

    ``x`` may be symbolic (tracing) or concrete (a forward pass): this is
    what ``Functional.call`` does, except that nested functional models are
    descended into rather than called, so their own input checks (a fixed
    224-px input, say) do not stop a pass at another size. With ``stop_at``
    the trace raises :class:`StopTrace` once that layer has its output.
    """

    def record(op: Any, args: tuple, kwargs: dict) -> Any:
        path = prefix + op.name
        if graph.keep:
            graph.args_by_path.setdefault(path, args)
            graph.order.append((path, op, depth))
        if isinstance(op, keras.Model) and is_traceable(op):
            inner = args[0] if len(args) == 1 else list(args)
            out = _trace(op, inner, path + "/", depth + 1, graph, stop_at)
        else:
            out = op(*args, **_inference(op, kwargs))
        if graph.keep:
            graph.by_path[path] = out
        if path == stop_at:
            raise StopTrace()
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

    return _run_graph(model, x, operation_fn)


def _inference(op: Any, kwargs: dict) -> dict:
    """``training=False`` for a layer that takes it, always: what ``model.predict`` passes.

    A graph's nodes record ``training`` as the layer resolved it when the
    model was built (True for Keras' augmentation layers, ``RandomFlip`` and
    the like, whose default is True), and a bare call resolves it the same
    way; ``Functional.call`` overrides it with its own flag. Without this a
    report would explain flipped, rotated and zoomed images.
    """
    takes = getattr(op, "_call_has_training_arg", False) or "training" in getattr(op, "_call_context_args", {})
    return dict(kwargs, training=False) if takes and kwargs.get("training") is not False else kwargs


def _run_graph(model: Any, inputs: Any, operation_fn: Any) -> Any:
    """``Functional._run_through_graph``, dropping each tensor once its last consumer has run.

    Keras keeps every intermediate tensor of an eager pass until the pass
    ends; that is the whole model's activations at once. Freed as we go, a
    pass holds what is still to be consumed (and what a gradient tape keeps).
    """
    from keras import tree

    flat = tree.flatten(inputs)
    tensors: dict[int, Any] = {id(k): v for k, v in zip(model.inputs, flat)}
    depths = sorted(model._nodes_by_depth, reverse=True)
    nodes = [n for d in depths for n in model._nodes_by_depth[d] if n.operation and not n.is_input]
    uses: dict[int, int] = {}
    for node in nodes:
        for t in node.input_tensors:
            uses[id(t)] = uses.get(id(t), 0) + 1
    for t in model.outputs:
        uses[id(t)] = uses.get(id(t), 0) + 1
    lookup = getattr(model, "_get_operation_for_node", None)
    for node in nodes:
        if any(id(t) not in tensors for t in node.input_tensors):
            continue  # not computable from these inputs (Keras skips it too)
        args, kwargs = node.arguments.fill_in(tensors)
        operation = lookup(node) if lookup is not None else node.operation
        outputs = operation_fn(operation)(*args, **_inference(operation, kwargs))
        del args, kwargs
        for k, v in zip(node.outputs, tree.flatten(outputs)):
            tensors[id(k)] = v
        del outputs
        for t in node.input_tensors:
            uses[id(t)] -= 1
            if uses[id(t)] == 0:
                tensors.pop(id(t), None)
    out = []
    for t in model.outputs:
        if id(t) not in tensors:
            raise ValueError(f"output {t.name} of model '{model.name}' is not connected to its inputs")
        out.append(tensors[id(t)])
    return tree.pack_sequence_as(model._outputs_struct, out)


_FLAT_CACHE: "weakref.WeakKeyDictionary[Any, FlatGraph]" = weakref.WeakKeyDictionary()


def _functional_inputs(model: Any, shapes: Sequence[tuple] | None = None) -> list:
    specs = model.inputs
    return [
        keras.Input(shape=tuple(shapes[i][1:]) if shapes else tuple(t.shape[1:]), dtype=t.dtype,
                    name=f"reportgen_input_{i}")
        for i, t in enumerate(specs)
    ]


def flat_graph(model: keras.Model) -> FlatGraph:
    """Trace a functional ``model`` once (cached) so that every nested layer has an output."""
    cached = _FLAT_CACHE.get(model)
    if cached is not None:
        return cached
    if not is_traceable(model):
        raise UserError(f"model '{model.name}' is subclassed: it has no graph to trace")
    inputs = _functional_inputs(model)
    graph = FlatGraph(inputs=inputs, outputs=None)
    x = inputs[0] if len(inputs) == 1 else inputs
    graph.outputs = _trace(model, x, "", 0, graph)
    _FLAT_CACHE[model] = graph
    return graph


# --- the anatomy: layers, inputs, outputs -------------------------------------------------

@dataclass
class Anatomy:
    """What the report needs to know of a model's structure, whatever kind of model it is."""

    layers: list[LayerRef]
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    subclassed: bool
    by_path: dict[str, Any] = field(default_factory=dict)  # path -> layer object (tree + graph ops)
    output_layers: list[str | None] = field(default_factory=list)  # the layer producing each output

    def layer(self, path: str) -> Any:
        return self.by_path[path]

    def ref(self, path: str) -> LayerRef:
        return next(r for r in self.layers if r.path == path)


_ANATOMY_CACHE: "weakref.WeakKeyDictionary[Any, Anatomy]" = weakref.WeakKeyDictionary()


def _output_names(model: Any, outputs: list) -> list[str]:
    struct = getattr(model, "_outputs_struct", None)
    if isinstance(struct, dict):
        return [str(k) for k in struct]
    names = []
    for i, t in enumerate(outputs):
        hist = getattr(t, "_keras_history", None)
        names.append(hist[0].name if hist else f"output_{i}")
    if len(set(names)) != len(names):
        names = [f"{n}_{i}" for i, n in enumerate(names)]
    return names


def _flatten(x: Any) -> list:
    if isinstance(x, dict):
        return [v for k in x for v in _flatten(x[k])]
    if isinstance(x, (list, tuple)):
        return [v for item in x for v in _flatten(item)]
    return [x]


def _functional_anatomy(model: Any) -> Anatomy:
    from reportgen import forward

    tree = layer_tree(model)
    records: list[tuple[str, Any, tuple | None, tuple | None]] = []
    # Custom layers with sublayers are opaque to the graph: record their insides as they run.
    with forward.recording(model, tree, records, skip_traceable=True):
        graph = flat_graph(model)
    inner: dict[str, list] = {}
    for path, layer, in_shape, out_shape in records:
        parent = path.rsplit("/", 1)[0]
        inner.setdefault(parent, []).append((path, layer, in_shape, out_shape))
    refs: list[LayerRef] = []
    seen: set[str] = set()
    by_path = dict(tree)

    def add_inner(parent: str, depth: int) -> None:
        for path, layer, in_shape, out_shape in inner.get(parent, []):
            if path in seen:
                continue
            seen.add(path)
            refs.append(LayerRef(path, layer, depth, out_shape, in_shape))
            add_inner(path, depth + 1)

    for path, op, depth in graph.order:
        if path in seen:  # a shared layer called twice appears once
            continue
        seen.add(path)
        by_path.setdefault(path, op)
        args = graph.args_by_path.get(path)
        refs.append(LayerRef(path, op, depth, _shape(graph.by_path.get(path)), _shape(args)))
        add_inner(path, depth + 1)
    outputs = _flatten(model.outputs)
    names = _output_names(model, outputs)
    final = _flatten(graph.outputs)
    producers: list[str | None] = []
    for tensor in final:
        found = None
        for path, op, _depth in graph.order:
            if graph.by_path.get(path) is tensor and not isinstance(op, keras.Model):
                found = path
        producers.append(found)
    return Anatomy(
        layers=refs,
        inputs=[TensorSpec(getattr(t, "name", f"input_{i}") or f"input_{i}", _shape(t) or (), str(t.dtype))
                for i, t in enumerate(model.inputs)],
        outputs=[TensorSpec(n, _shape(t) or (), str(t.dtype)) for n, t in zip(names, outputs)],
        subclassed=False,
        by_path=by_path,
        output_layers=producers,
    )


_DECLARED: "weakref.WeakKeyDictionary[Any, list[tuple]]" = weakref.WeakKeyDictionary()


def declare_input_shape(model: Any, shape: Sequence[int]) -> None:
    """Record ``--input-shape`` for a model that was built without one (a library's ``build()`` with no
    shape, weights then set by its code): Keras keeps no shape for it, so the report keeps this one."""
    _DECLARED[model] = [(None,) + tuple(int(d) for d in shape)]


def declared_input_shapes(model: Any) -> list[tuple] | None:
    """A subclassed model's input shape(s), from when it was built or called (batch dim None), or as
    declared with ``--input-shape`` (:func:`declare_input_shape`)."""
    if model in _DECLARED:
        return list(_DECLARED[model])
    shapes = getattr(model, "_build_shapes_dict", None) or {}
    if not shapes:
        return None
    value = next(iter(shapes.values()))
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)) and value and isinstance(value[0], (list, tuple)):
        return [(None,) + tuple(v[1:]) for v in value]
    if isinstance(value, (list, tuple)):
        return [(None,) + tuple(value[1:])]
    return None


def _subclassed_anatomy(model: Any) -> Anatomy:
    from reportgen import backend, forward

    shapes = declared_input_shapes(model)
    if not shapes:
        raise UserError(
            f"model '{model.name}' was never built, so its input shape is unknown; "
            "give it with --input-shape H,W,C"
        )
    tree = layer_tree(model)
    records: list[tuple[str, Any, tuple | None, tuple | None]] = []
    inputs = [forward.zeros(s) for s in shapes]
    produced: dict[int, str] = {}
    with backend.no_grad(), forward.recording(model, tree, records, outputs=produced):
        out = model(inputs[0] if len(inputs) == 1 else inputs, training=False)
    refs, seen = [], set()
    for path, layer, in_shape, out_shape in records:
        if path in seen:
            continue
        seen.add(path)
        refs.append(LayerRef(path, layer, path.count("/"), out_shape, in_shape))
    # Layers the forward pass never reached still belong to the table (after the others).
    for path, layer in tree.items():
        if path not in seen:
            refs.append(LayerRef(path, layer, path.count("/"), None, None))
    if isinstance(out, dict):
        names, flat = [str(k) for k in out], list(out.values())
    else:
        flat = _flatten(out)
        names = ["output"] if len(flat) == 1 else [f"output_{i}" for i in range(len(flat))]
        # Several outputs are named after the layers that produce them (a detector's 'bbox_reg' and
        # 'face_prob' say more than output_0 and output_1, which --output still accepts).
        leaves = [produced.get(id(t), "").rsplit("/", 1)[-1] for t in flat]
        if len(flat) > 1 and all(leaves) and len(set(leaves)) == len(leaves):
            names = leaves
    return Anatomy(
        layers=refs,
        inputs=[TensorSpec(f"input_{i}" if len(shapes) > 1 else "input", tuple(s)) for i, s in enumerate(shapes)],
        outputs=[TensorSpec(n, _shape(t) or ()) for n, t in zip(names, flat)],
        subclassed=True,
        by_path=dict(tree),
        output_layers=[produced.get(id(t)) for t in flat],
    )


def anatomy(model: Any) -> Anatomy:
    """The model's :class:`Anatomy` (cached per model object)."""
    cached = _ANATOMY_CACHE.get(model)
    if cached is None:
        cached = _functional_anatomy(model) if is_traceable(model) else _subclassed_anatomy(model)
        _ANATOMY_CACHE[model] = cached
    return cached


def walk(model: keras.Model) -> list[LayerRef]:
    """Every layer and graph operation in call order, nested ones after their container."""
    return anatomy(model).layers


# --- layer kinds --------------------------------------------------------------------------

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


def weighted_layers(model: keras.Model) -> list[LayerRef]:
    """Leaf layers that hold weights (BatchNormalization and LayerScale too), nested ones included."""
    return [r for r in walk(model) if not r.is_model and weights_of(r.layer) and not children(r.layer)]


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
        matches = [r for r in refs if r.name == name]
        if len(matches) == 1:
            chosen.append(matches[0])
            continue
        valid = ", ".join(r.path for r in refs) or "(none)"
        if len(valid) > 600:
            valid = valid[:600].rsplit(", ", 1)[0] + ", ..."
        why = "is ambiguous" if matches else "is not a valid layer"
        raise UserError(f"{option}: '{name}' {why}; valid names: {valid}")
    return chosen


# --- the model's image input --------------------------------------------------------------

def image_input_index(model: Any) -> int | None:
    """Which input is an image (N, H, W, 1|3): the only 4-D input with 1 or 3 channels, else None."""
    found = [i for i, spec in enumerate(anatomy(model).inputs)
             if len(spec.shape) == 4 and spec.shape[-1] in (1, 3)]
    return found[0] if len(found) == 1 else None


def image_input(model: Any) -> TensorSpec | None:
    index = image_input_index(model)
    return None if index is None else anatomy(model).inputs[index]


# --- feature maps and Grad-CAM ------------------------------------------------------

MAX_DEFAULT_FEATURE_LAYERS = 20


def has_spatial_output(ref: LayerRef) -> bool:
    """A 2-D feature map (batch, height, width, channels): what a grid can show."""
    return ref.output_shape is not None and len(ref.output_shape) == 4


def activation_name(layer: Any) -> str | None:
    """The elementwise activation a layer applies to its output (``relu``, ``softmax``, ``tanh``...), or None."""
    if isinstance(layer, keras.layers.ReLU):
        return "relu"
    if isinstance(layer, keras.layers.Softmax):
        return "softmax"
    fn = getattr(layer, "activation", None)
    if fn is None:
        return None
    if isinstance(fn, str):
        return fn
    return getattr(fn, "__name__", None)


def spatial_layers(model: keras.Model) -> list[LayerRef]:
    """Every layer (nested ones included) whose output is a 2-D feature map."""
    return [r for r in walk(model) if has_spatial_output(r) and not r.is_model and not r.is_op
            and not children(r.layer)]


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


def shapes_at(model: keras.Model, size: int, upto: str | None = None) -> dict[str, tuple[tuple | None, tuple | None]]:
    """``{path: (input shape, output shape)}`` with the image input at ``size`` x ``size`` px.

    Functional models are traced symbolically (no computation); subclassed
    ones run one forward pass on a zero image, up to ``upto`` when given.
    Raises whatever the model raises when it cannot take that size.
    """
    from reportgen import forward

    index = image_input_index(model)
    specs = anatomy(model).inputs
    shapes = [tuple(s.shape) for s in specs]
    if index is not None:
        shapes[index] = (None, size, size, specs[index].shape[-1])
    if is_traceable(model):
        probe = FlatGraph(inputs=[], outputs=None)
        tree = layer_tree(model)
        records: list = []
        with _nodes_kept(model), forward.recording(model, tree, records, skip_traceable=True):
            x = _functional_inputs(model, shapes)
            try:
                _trace(model, x[0] if len(x) == 1 else x, "", 0, probe, stop_at=upto)
            except StopTrace:
                pass
        out = {p: (_shape(probe.args_by_path.get(p)), _shape(t)) for p, t in probe.by_path.items()}
        out.update({p: (i, o) for p, _l, i, o in records})
        return out
    return forward.shapes(model, shapes, upto)


@contextlib.contextmanager
def _nodes_kept(model: keras.Model) -> Iterator[None]:
    """Drop the graph nodes a symbolic trace adds to each layer: the user's model is left as it was.

    Each symbolic call appends a node to a layer's inbound and outbound
    lists; :func:`min_input_size` traces a model a dozen times.
    """
    layers = [model, *_all_sublayers(model)]
    sizes = [(len(getattr(x, "_inbound_nodes", [])), len(getattr(x, "_outbound_nodes", []))) for x in layers]
    try:
        yield
    finally:
        for layer, (n_in, n_out) in zip(layers, sizes):
            if hasattr(layer, "_inbound_nodes"):
                del layer._inbound_nodes[n_in:]
            if hasattr(layer, "_outbound_nodes"):
                del layer._outbound_nodes[n_out:]


def _all_sublayers(model: Any) -> list:
    out, stack, seen = [], [model], {id(model)}
    while stack:
        node = stack.pop()
        for child in getattr(node, "operations", None) or getattr(node, "layers", None) or ():
            if id(child) not in seen:
                seen.add(id(child))
                out.append(child)
                stack.append(child)
    return out


def _with_concrete_sizes(model: keras.Model, refs: Sequence[LayerRef], size: int = DEFAULT_SIZE) -> list[LayerRef]:
    """``refs`` with output shapes traced at ``size`` px when the model's are unknown.

    A model built with ``input_shape=(None, None, 3)`` reports no spatial sizes,
    so stages cannot be told apart; re-tracing it on a concrete input can.
    """
    if image_input_index(model) is None:
        return list(refs)
    try:
        probe = shapes_at(model, size)
    except Exception:  # a head that needs the original size: keep what we know
        return list(refs)
    return [LayerRef(r.path, r.layer, r.depth, (probe.get(r.path) or (None, None))[1] or r.output_shape,
                     r.input_shape) for r in refs]


def map_elements(model: keras.Model) -> list[int]:
    """Elements of each layer's output for ONE image, at the size images are fitted to when the model leaves
    it open (a ``(None, None, 3)`` input is fed 224 x 224 images: its maps are sized at that)."""
    refs = [r for r in walk(model) if r.output_shape is not None and len(r.output_shape) > 1 and not r.is_model]
    if any(d is None for r in refs for d in r.output_shape[1:]):
        refs = _with_concrete_sizes(model, refs)
    return [int(np.prod([d or 1 for d in r.output_shape[1:]])) for r in refs]


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


def ancestors(model: keras.Model, output: int = 0) -> set[str] | None:
    """Paths of the layers that output ``output`` depends on (functional models); None when unknown."""
    if not is_traceable(model):
        return None
    fg = flat_graph(model)
    outs = _flatten(fg.outputs)
    if output >= len(outs):
        return None
    path_of: dict[int, str] = {}
    for path, tensor in fg.by_path.items():
        for t in _flatten(tensor):
            path_of.setdefault(id(t), path)
    seen: set[str] = set()
    stack = [outs[output]]
    visited: set[int] = set()
    while stack:
        t = stack.pop()
        if id(t) in visited:
            continue
        visited.add(id(t))
        path = path_of.get(id(t))
        if path is not None:
            seen.add(path)
            parts = path.split("/")
            seen.update("/".join(parts[:i]) for i in range(1, len(parts)))
            for arg in _flatten(list(fg.args_by_path.get(path, ()))):
                if hasattr(arg, "shape"):
                    stack.append(arg)
        else:
            hist = getattr(t, "_keras_history", None)
            if hist is not None:
                op, node_index, _ = hist
                try:
                    stack.extend(op._inbound_nodes[node_index].input_tensors)
                except (AttributeError, IndexError):
                    pass
    return seen


def last_map_conv(model: keras.Model, output: int = 0, exclude: Iterable[str] = ()) -> LayerRef | None:
    """The last conv layer whose output is still a map (more than one pixel), on the way to ``output``.

    The Grad-CAM target (``block5_conv3`` for VGG16). Convs on a single pixel,
    such as MobileNetV3's 1x1 ``logits`` head, have no "where" to show; in a
    model with several outputs, only the layers the chosen output depends on
    count. The conv that produces a dense output (a segmentation head) and
    single-channel convs (HED's side outputs) are passed over while another
    candidate exists: a map weighted by one channel is that channel.
    ``exclude``: paths found not to lead to the output (a subclassed model's other heads).
    """
    skip = set(exclude)
    convs = [r for r in conv_layers(model) if has_spatial_output(r) and r.path not in skip]
    needed = ancestors(model, output) if len(anatomy(model).outputs) > 1 else None
    if needed is not None:
        convs = [r for r in convs if r.path in needed]
    outputs = set(anatomy(model).output_layers)
    better = [r for r in convs if r.path not in outputs and (r.output_shape or (None,))[-1] not in (1,)]
    if better:
        convs = better
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


def min_input_size(model: keras.Model, path: str, start: int, limit: int = 1024) -> int:
    """The smallest image side from ``start`` up whose pass reaches ``path`` with a map of at least 1 px.

    Valid convolutions and pooling shrink the image (InceptionV3 needs 75 px
    to reach its last stage). Sizes are tried upward from ``start`` in
    growing steps until one works, then bisected down to the smallest.
    Raises :class:`UserError` when no size up to ``limit`` works.
    """

    def works(size: int) -> bool:
        try:
            shapes = shapes_at(model, size, upto=path)
        except Exception:
            return False
        out = (shapes.get(path) or (None, None))[1]
        return out is not None and all(d is None or d >= 1 for d in out[1:])

    if works(start):
        return start
    low, high = start, None
    step = max(4, start // 4)
    size = start + step
    while size <= limit:
        if works(size):
            high = size
            break
        low = size
        step *= 2
        size += step
    if high is None:
        raise UserError(f"layer '{path}' cannot be reached with any input from {start} to {limit} px")
    while high - low > 1:
        mid = (low + high) // 2
        if works(mid):
            high = mid
        else:
            low = mid
    return high


# --- which layers get full figures in a big model -------------------------------------------

FULL_DETAIL_LAYERS = 30


def detail_layers(refs: Sequence[LayerRef], named: Iterable[str] = (), flagged: Iterable[str] = (),
                  limit: int = FULL_DETAIL_LAYERS) -> tuple[list[LayerRef], str]:
    """The layers among ``refs`` that get full per-layer figures, and why (for the report).

    All of them up to ``limit``; beyond that (an 800-layer EfficientNetB7),
    the layers findings point at, the layers the user named, and one sample
    per stage (the first layer of each run at one spatial size), in model order.
    """
    refs = list(refs)
    if len(refs) <= limit:
        return refs, f"all {len(refs)} layers"
    named, flagged = set(named), set(flagged)
    starts = {r.path for r in stage_starts(refs)}
    keep = [r for r in refs if r.path in starts or r.path in flagged or r.path in named or r.name in named]
    parts = [f"{len(starts & {r.path for r in keep})} stage samples"]
    if flagged:
        parts.append(f"{len(flagged & {r.path for r in keep})} with findings")
    if named:
        parts.append("the layers named with --layers")
    return keep, f"{len(keep)} of {len(refs)} layers: " + ", ".join(parts)
