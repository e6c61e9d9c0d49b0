"""The model as the report sees it: every layer by path with its shapes, in call order; inputs and outputs."""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Any, Sequence

import keras

from reportgen.errors import UserError
from reportgen.graph.hooks import recording, zeros
from reportgen.graph.kinds import is_conv, is_pooling, kernel_variables
from reportgen.graph.trace import (
    LayerRef,
    TensorSpec,
    _shape,
    children,
    flat_graph,
    is_traceable,
    layer_tree,
    weights_of,
)


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

    tree = layer_tree(model)
    records: list[tuple[str, Any, tuple | None, tuple | None]] = []
    # Custom layers with sublayers are opaque to the graph: record their insides as they run.
    with recording(model, tree, records, skip_traceable=True):
        graph = flat_graph(model)
    concrete: dict[str, tuple | None] = {}
    records += _concrete_inner_records(model, tree, {p for p, *_rest in records}, graph, concrete)
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
        refs.append(
            LayerRef(
                path,
                op,
                depth,
                _seen_shape(_shape(graph.by_path.get(path)), concrete.get(path)),
                _shape(args),
            )
        )
        add_inner(path, depth + 1)
    refs = with_token_grids(refs)
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
        inputs=[
            TensorSpec(getattr(t, "name", f"input_{i}") or f"input_{i}", _shape(t) or (), str(t.dtype))
            for i, t in enumerate(model.inputs)
        ],
        outputs=[TensorSpec(n, _shape(t) or (), str(t.dtype)) for n, t in zip(names, outputs)],
        subclassed=False,
        by_path=by_path,
        output_layers=producers,
    )


def _seen_shape(declared: tuple | None, seen: tuple | None) -> tuple | None:
    """The shape a layer's output really has: ``declared`` (a symbolic trace, which believes each custom
    layer's ``compute_output_shape``) unless a concrete pass saw another token count or size. SigLIP's
    embedding declares a class token it never makes: 17 tokens declared, 16 seen."""
    if declared is None or seen is None or len(declared) != len(seen):
        return declared
    if all(d is None or d == s for d, s in zip(declared[1:], seen[1:])):
        return declared
    return (declared[0],) + tuple(s if d is not None else None for d, s in zip(declared[1:], seen[1:]))


def _concrete_inner_records(
    model: Any,
    tree: dict[str, Any],
    recorded: set[str],
    graph: Any,
    seen: dict[str, tuple | None] | None = None,
) -> list:
    """The insides of opaque layers that a symbolic trace never ran, from one pass on zeros.

    A custom layer that defines ``compute_output_shape`` (keras-hub's
    ``ViTPatchingAndEmbedding``) is traced symbolically without its ``call``,
    so its sublayers (the patch embedding's Conv2D) are never seen. One
    concrete pass of a single zero image runs them; it is made only when
    such a layer holds weights, so a plain CNN pays nothing. The shapes that
    pass sees for the graph's own layers go in ``seen`` (a custom layer's
    declared shape may be wrong).
    """
    graph_paths = {p for p, _op, _d in graph.order}
    missing = [
        p
        for p, layer in tree.items()
        if p not in recorded
        and p not in graph_paths
        and weights_of(layer)
        and any(p.startswith(g + "/") for g in graph_paths)
    ]
    if not missing:
        return []
    from reportgen import backend
    from reportgen.graph.trace import FlatGraph, _trace

    records: list = []
    shapes: dict[str, tuple | None] = {}
    inputs = [zeros(_shape(t) or ()) for t in model.inputs]
    try:
        with backend.no_grad(), recording(model, tree, records, skip_traceable=True):
            _trace(
                model,
                inputs[0] if len(inputs) == 1 else inputs,
                "",
                0,
                FlatGraph(inputs=[], outputs=None, keep=False, shapes=shapes),
            )
    except Exception:  # a model that refuses zeros at the default size: the table keeps what it has
        return []
    if seen is not None:
        seen.update(shapes)
    return [r for r in records if r[0] not in recorded]


def _is_patch_embedding(ref: LayerRef, parents: dict[str, LayerRef]) -> bool:
    """A 2-D conv that cuts the image into patches: stride equal to its kernel (ViT, DeiT, DINOv2, Swin), or
    any strided conv inside a layer named for patches or embeddings (SegFormer's overlapping patches)."""
    layer = ref.layer
    if not isinstance(layer, keras.layers.Conv2D) or ref.output_shape is None or len(ref.output_shape) != 4:
        return False
    strides = tuple(getattr(layer, "strides", (1, 1)))
    if max(strides) <= 1 or None in ref.output_shape[1:3]:
        return False
    parent = parents.get(ref.path.rsplit("/", 1)[0]) if "/" in ref.path else None
    owner = type(parent.layer).__name__.lower() if parent is not None else ""
    return strides == tuple(getattr(layer, "kernel_size", ())) or "patch" in owner or "embed" in owner


def with_token_grids(refs: list[LayerRef]) -> list[LayerRef]:
    """``refs`` with :attr:`LayerRef.grid` set on every token output that lies on a patch grid.

    The grids come from the patch embeddings seen so far in call order
    (:func:`reportgen.graph.tokens.fit`). Attention layers and what they hold
    are left as they are: their outputs are windows (Swin) or per-head
    tensors, not the token stream.
    """
    from dataclasses import replace

    from reportgen.graph.tokens import fit

    parents = {r.path: r for r in refs}
    grids: list[tuple[int, int]] = []
    attention: list[str] = []
    # Attention over tokens (MultiHeadAttention, Swin's windows): not a CNN's attention gate that returns a
    # map.
    tokens_attended = [
        r
        for r in refs
        if "attention" in r.class_name.lower()
        and (
            isinstance(r.layer, keras.layers.MultiHeadAttention)
            or (r.output_shape is not None and len(r.output_shape) == 3)
        )
    ]
    if not tokens_attended:
        return refs  # no transformer: no token grids (an LSTM over image rows is not a patch sequence)
    out = []
    for ref in refs:
        if any(ref is t for t in tokens_attended):
            attention.append(ref.path + "/")
        if _is_patch_embedding(ref, parents):
            grids.append((int(ref.output_shape[1]), int(ref.output_shape[2])))
        shape = ref.output_shape
        inside = any(ref.path.startswith(a) or ref.path + "/" == a for a in attention)
        if inside:
            ref = replace(ref, in_attention=True)
        if (
            grids
            and not inside
            and not ref.is_op
            and shape is not None
            and len(shape) == 3
            and shape[1] is not None
        ):
            grid = fit(int(shape[1]), grids)
            if grid is not None:
                ref = replace(ref, grid=grid)
        out.append(ref)
    return out


def token_grid(model: Any, path: str) -> Any:
    """The :class:`~reportgen.graph.tokens.TokenGrid` of the layer at ``path``, or None (not a token map)."""
    for ref in anatomy(model).layers:
        if ref.path == path:
            return ref.grid
    return None


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
    from reportgen import backend

    shapes = declared_input_shapes(model)
    if not shapes:
        raise UserError(
            f"model '{model.name}' was never built, so its input shape is unknown; "
            "give it with --input-shape H,W,C"
        )
    tree = layer_tree(model)
    records: list[tuple[str, Any, tuple | None, tuple | None]] = []
    inputs = [zeros(s) for s in shapes]
    produced: dict[int, str] = {}
    with backend.no_grad(), recording(model, tree, records, outputs=produced):
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
    refs = with_token_grids(refs)
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
        inputs=[
            TensorSpec(f"input_{i}" if len(shapes) > 1 else "input", tuple(s)) for i, s in enumerate(shapes)
        ],
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


def kernel_layers(model: keras.Model) -> list[LayerRef]:
    """Layers with a kernel: Conv1D/2D/3D (and transposed), depthwise, separable, Dense."""
    return [r for r in walk(model) if kernel_variables(r.layer)]


def weighted_layers(model: keras.Model) -> list[LayerRef]:
    """Leaf layers that hold weights (BatchNormalization and LayerScale too), nested ones included."""
    return [r for r in walk(model) if not r.is_model and weights_of(r.layer) and not children(r.layer)]


def conv_layers(model: keras.Model) -> list[LayerRef]:
    return [r for r in walk(model) if is_conv(r.layer)]


def feature_map_layers(model: keras.Model) -> list[LayerRef]:
    """Conv and pooling layers, and every layer whose tokens lie on a patch grid: the outputs a grid can
    show."""
    return [
        r
        for r in walk(model)
        if is_conv(r.layer) or is_pooling(r.layer) or (r.grid is not None and not r.is_op)
    ]


def spatial_size(ref: LayerRef) -> tuple | None:
    """The spatial part of a layer's output shape (channels-last; a token output's patch grid)."""
    return spatial_part(ref.map_shape)


def spatial_part(shape: Sequence | None) -> tuple | None:
    """The spatial part of an output shape (channels-last, with its batch): None for a flat or unknown
    shape."""
    if shape is None or len(shape) < 3:
        return None
    return tuple(shape[1:-1])


def one_pixel(size: tuple | None) -> bool:
    """Whether a spatial size is a single pixel (globally pooled features)."""
    return size is not None and all(d == 1 for d in size)


def _single_pixel(ref: LayerRef) -> bool:
    return one_pixel(spatial_size(ref))


def image_input_index(model: Any) -> int | None:
    """Which input is an image (N, H, W, 1|3): the only 4-D input with 1 or 3 channels, else None."""
    found = [
        i for i, spec in enumerate(anatomy(model).inputs) if len(spec.shape) == 4 and spec.shape[-1] in (1, 3)
    ]
    return found[0] if len(found) == 1 else None


def image_input(model: Any) -> TensorSpec | None:
    index = image_input_index(model)
    return None if index is None else anatomy(model).inputs[index]


# --- feature maps and Grad-CAM ------------------------------------------------------


def has_spatial_output(ref: LayerRef) -> bool:
    """A 2-D feature map (batch, height, width, channels), or tokens on a patch grid: what a grid can show."""
    return ref.map_shape is not None and len(ref.map_shape) == 4 and not ref.in_attention


def spatial_layers(model: keras.Model) -> list[LayerRef]:
    """Every layer (nested ones included) whose output is a 2-D feature map."""
    return [
        r
        for r in walk(model)
        if has_spatial_output(r) and not r.is_model and not r.is_op and not children(r.layer)
    ]
