"""A functional model's graph re-traced on fresh symbolic inputs, nested models included; the layer tree by
path."""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Any, Sequence

import keras

from reportgen.errors import UserError
from reportgen.graph.tokens import TokenGrid


DEFAULT_SIZE = 224  # spatial size used where a model's input size is not fixed


@dataclass(frozen=True)
class LayerRef:
    """One layer (or graph operation) of the model, named by its path (``vgg16/block1_conv1``)."""

    path: str
    layer: Any
    depth: int
    output_shape: tuple | None = None
    input_shape: tuple | None = None  # of the first input
    grid: TokenGrid | None = None  # a transformer's token output: how it lies on the patch grid
    in_attention: bool = False  # an attention layer or inside one: windows and per-head tensors, not maps

    @property
    def map_shape(self) -> tuple | None:
        """The output as the report draws it: a token sequence as ``(N, height, width, C)``, else as it is."""
        if self.grid is not None and self.output_shape is not None:
            return self.grid.map_shape(self.output_shape)
        return self.output_shape

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
    # With a dict: each layer path's output shape, kept even when ``keep`` is False (a concrete pass's
    # shapes, which are the ones the model really makes).
    shapes: dict[str, tuple | None] | None = None


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
    """Ends a trace or a pass early, after the layer asked for: the one stop exception of model access
    (a BaseException, so that Keras' error wrappers let it through unchanged)."""


def _trace(
    model: Any,
    x: Any,
    prefix: str,
    depth: int,
    graph: FlatGraph,
    stop_at: str | None = None,
    resume: "Resume | None" = None,
) -> Any:
    """Call the layers of a functional ``model`` on ``x`` one by one, recording every output.

    ``x`` may be symbolic (tracing) or concrete (a forward pass): this is
    what ``Functional.call`` does, except that nested functional models are
    descended into rather than called, so their own input checks (a fixed
    224-px input, say) do not stop a pass at another size. With ``stop_at``
    the trace raises :class:`StopTrace` once that layer has its output.
    ``resume`` (the top level only) keeps or reuses the frozen part's outputs (:class:`Resume`).
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
            out = _call(op, args, kwargs)
        if graph.keep:
            graph.by_path[path] = out
        if graph.shapes is not None:
            graph.shapes[path] = _shape(out)
        if path == stop_at:
            raise StopTrace()
        return out

    if isinstance(model, keras.Sequential):
        layers = _sequence(model)
        start = 0
        if resume is not None and resume.feed is not None:  # from the tensor entering the first changed layer
            start = next(i for i in range(len(layers) + 1) if _entering(model, layers, i) in resume.feed)
            x = resume.feed[_entering(model, layers, start)]
        for i in range(start, len(layers) + 1):
            if resume is not None and _entering(model, layers, i) in resume.keep:
                resume.values[_entering(model, layers, i)] = x
            if i < len(layers):
                x = record(layers[i], (x,), {})
        return x

    def operation_fn(op: Any):
        def call(*args: Any, **kwargs: Any) -> Any:
            return record(op, args, kwargs)

        return call

    return _run_graph(model, x, operation_fn, resume)


def _call(op: Any, args: tuple, kwargs: dict) -> Any:
    """``op(*args, **kwargs)`` in inference mode; a layer whose symbolic ``compute_output_spec`` does not take
    the ``training`` its ``call`` takes (keras-hub's ``DINOV2Embedding``) is called as the graph recorded
    it."""
    chosen = _inference(op, kwargs)
    if chosen is kwargs:
        return op(*args, **kwargs)
    try:
        return op(*args, **chosen)
    except TypeError as exc:
        if "training" not in str(exc):
            raise
        return op(*args, **kwargs)


def _inference(op: Any, kwargs: dict) -> dict:
    """``training=False`` for a layer that takes it, always: what ``model.predict`` passes.

    A graph's nodes record ``training`` as the layer resolved it when the
    model was built (True for Keras' augmentation layers, ``RandomFlip`` and
    the like, whose default is True), and a bare call resolves it the same
    way; ``Functional.call`` overrides it with its own flag. Without this a
    report would explain flipped, rotated and zoomed images.
    """
    takes = getattr(op, "_call_has_training_arg", False) or "training" in getattr(
        op, "_call_context_args", {}
    )
    return dict(kwargs, training=False) if takes and kwargs.get("training") is not False else kwargs


@dataclass
class Resume:
    """Outputs of a graph's frozen part, kept from one pass and fed to later passes in its place.

    A later pass on the same input whose taps change only some layers need not run what lies
    below them: every tensor not downstream of a changed layer is as it was. The sanity cascade
    randomises a model from the top down, so its early steps need only the top of the network.
    ``keep``: ids of the top-level graph's symbolic tensors to record (``values``) in a pass;
    ``feed``: the recorded values a pass starts from instead of the model's inputs (the nodes
    that cannot be computed from them, the frozen ones, are skipped as Keras skips them).
    """

    keep: set[int] = field(default_factory=set)
    values: dict[int, Any] = field(default_factory=dict)
    feed: dict[int, Any] | None = None


def _top_nodes(model: Any) -> list:
    """A functional model's own nodes in the order ``Functional.call`` runs them."""
    depths = sorted(model._nodes_by_depth, reverse=True)
    return [n for d in depths for n in model._nodes_by_depth[d] if n.operation and not n.is_input]


def _sequence(model: Any) -> list:
    return [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]


def _entering(model: Any, layers: list, i: int) -> int:
    """A Sequential model's tensor entering its ``i``-th layer (its output at ``len(layers)``), as a key:
    the id of the layer that made it, or of the model for its input."""
    return id(layers[i - 1]) if i else id(model)


def _holds(name: str, changed: Sequence[str]) -> bool:
    return any(p == name or p.startswith(name + "/") for p in changed)


def frontier(model: Any, changed: Sequence[str]) -> set[int] | None:
    """Keys of the top-level tensors a pass needs when only the layers at ``changed`` paths (and what
    they feed) differ from an earlier pass: the unchanged tensors that changed nodes (or the
    outputs) read (ids of the graph's symbolic tensors; in a Sequential model, see :func:`_entering`).
    None for a subclassed model, which has no graph to start inside.

    A node changes when its layer is at a changed path or holds one (a nested model), or when it
    reads a changed tensor.
    """
    changed = list(changed)
    if isinstance(model, keras.Sequential):
        layers = _sequence(model)
        first = next((i for i, layer in enumerate(layers) if _holds(layer.name, changed)), len(layers))
        return {_entering(model, layers, first)}
    if not hasattr(model, "_run_through_graph"):
        return None
    lookup = getattr(model, "_get_operation_for_node", None)
    dirty: set[int] = set()
    need: set[int] = set()
    for node in _top_nodes(model):
        name = (lookup(node) if lookup is not None else node.operation).name
        if any(id(t) in dirty for t in node.input_tensors) or _holds(name, changed):
            need.update(id(t) for t in node.input_tensors if id(t) not in dirty)
            dirty.update(id(t) for t in node.outputs)
    need.update(id(t) for t in model.outputs if id(t) not in dirty)
    return need


def _run_graph(model: Any, inputs: Any, operation_fn: Any, resume: Resume | None = None) -> Any:
    """``Functional._run_through_graph``, dropping each tensor once its last consumer has run.

    Keras keeps every intermediate tensor of an eager pass until the pass
    ends; that is the whole model's activations at once. Freed as we go, a
    pass holds what is still to be consumed (and what a gradient tape keeps).
    """
    from keras import tree

    flat = tree.flatten(inputs)
    tensors: dict[int, Any] = {id(k): v for k, v in zip(model.inputs, flat)}
    keep = resume.keep if resume is not None else ()
    if resume is not None and resume.feed is not None:
        tensors = dict(resume.feed)
    elif keep:
        resume.values.update({i: v for i, v in tensors.items() if i in keep})
    nodes = _top_nodes(model)
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
        outputs = operation_fn(operation)(*args, **kwargs)  # inference mode: record() -> _call()
        del args, kwargs
        for k, v in zip(node.outputs, tree.flatten(outputs)):
            tensors[id(k)] = v
            if id(k) in keep:
                resume.values[id(k)] = v
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
        keras.Input(
            shape=tuple(shapes[i][1:]) if shapes else tuple(t.shape[1:]),
            dtype=t.dtype,
            name=f"reportgen_input_{i}",
        )
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
