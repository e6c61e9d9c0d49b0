"""Sizes found by running the model: every layer's shapes at an input size, the minimum input size."""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, Sequence

import keras
import numpy as np

from reportgen.errors import UserError
from reportgen.graph.anatomy import _flatten, anatomy, image_input_index, walk
from reportgen.graph.hooks import recording
from reportgen.graph.trace import (
    DEFAULT_SIZE,
    FlatGraph,
    LayerRef,
    StopTrace,
    _functional_inputs,
    _shape,
    _trace,
    flat_graph,
    is_traceable,
    layer_tree,
)


def shapes_at(
    model: keras.Model, size: int, upto: str | None = None, concrete: bool = False
) -> dict[str, tuple[tuple | None, tuple | None]]:
    """``{path: (input shape, output shape)}`` with the image input at ``size`` x ``size`` px.

    Functional models are traced symbolically (no computation); subclassed
    ones, and any with ``concrete`` (the shapes seen at run time, where a
    custom layer declares another: SigLIP's embedding), run one forward pass
    on a zero image, up to ``upto`` when given.
    Raises whatever the model raises when it cannot take that size.
    """

    index = image_input_index(model)
    specs = anatomy(model).inputs
    shapes = [tuple(s.shape) for s in specs]
    if index is not None:
        shapes[index] = (None, size, size, specs[index].shape[-1])
    if is_traceable(model) and not concrete:
        probe = FlatGraph(inputs=[], outputs=None)
        tree = layer_tree(model)
        records: list = []
        with _nodes_kept(model), recording(model, tree, records, skip_traceable=True):
            x = _functional_inputs(model, shapes)
            try:
                _trace(model, x[0] if len(x) == 1 else x, "", 0, probe, stop_at=upto)
            except StopTrace:
                pass
        out = {p: (_shape(probe.args_by_path.get(p)), _shape(t)) for p, t in probe.by_path.items()}
        out.update({p: (i, o) for p, _l, i, o in records})
        if upto is None or upto in out:
            return out
        # A layer inside a custom layer that is traced without running its call (one that defines
        # compute_output_shape, as keras-hub's encoders do): one concrete pass on zeros reaches it.
    from reportgen.graph import forward

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


def _with_concrete_sizes(
    model: keras.Model, refs: Sequence[LayerRef], size: int = DEFAULT_SIZE
) -> list[LayerRef]:
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
    return [
        LayerRef(
            r.path, r.layer, r.depth, (probe.get(r.path) or (None, None))[1] or r.output_shape, r.input_shape
        )
        for r in refs
    ]


def map_elements(model: keras.Model) -> list[int]:
    """Elements of each layer's output for ONE image, at the size images are fitted to when the model leaves
    it open (a ``(None, None, 3)`` input is fed 224 x 224 images: its maps are sized at that)."""
    refs = [
        r for r in walk(model) if r.output_shape is not None and len(r.output_shape) > 1 and not r.is_model
    ]
    if any(d is None for r in refs for d in r.output_shape[1:]):
        refs = _with_concrete_sizes(model, refs)
    return [int(np.prod([d or 1 for d in r.output_shape[1:]])) for r in refs]


def images_within(bytes_per_image: int, budget: int, most: int = 64) -> int:
    """Images per batch: as many as fit ``budget`` bytes at ``bytes_per_image`` each, at least 1, at most
    ``most``.

    The one batch-size rule: the data-set pass, the unit-activity pass (both
    through :func:`images_per_batch`) and the pattern ascent's chunks.
    """
    return int(max(1, min(most, budget // max(1, int(bytes_per_image)))))


def even_batches(items: int, most: int) -> int:
    """Items per batch for ``items`` at most ``most`` at a time, the batches as even as they can be: as
    many batches as ``most`` needs, none smaller than the rest by more than one item (the pattern
    ascent's chunks; the faithfulness passes, whose last one is padded to that size)."""
    batches = -(-int(items) // max(1, int(most)))
    return max(1, -(-int(items) // max(1, batches)))


def images_per_batch(model: keras.Model, budget: int, backward: bool = False, most: int = 64) -> int:
    """Images per batch of ``model`` within ``budget`` bytes of float32 activations (:func:`map_elements`).

    Forward only: the largest map of ANY layer (tapped or not), ~4 alive at
    once (a layer's input, its output, a skip connection, a temporary) -- maps
    are freed once consumed. With a ``backward`` pass every layer's output is
    kept for it, ~3 copies.
    """
    sizes = map_elements(model)
    elements = sum(sizes) * 3 if backward else max(sizes, default=1) * 4
    return images_within(elements * 4, budget, most)


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
