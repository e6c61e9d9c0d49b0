"""Which layer outputs lie on the image's own axes: a map of the image, or something that only looks like one.

A CAM or a feature map is drawn over the image, row for row and column for column. That is true of a
layer's output only if its two spatial axes are the image's, in order: a ``Permute((2, 1, 3))`` before a
dense head (a face detector's), a transpose, or a reshape that changes the grid gives a 4-D tensor
whose "rows" are the image's columns, and a heat map drawn from it is the transpose of the truth. So is
anything computed after it.

The graph says so where it can (:func:`statuses`): the image input is aligned; a layer known to keep
the axes (convolutions, pooling, normalisation, activations, element-wise merges, padding, resizing)
keeps its inputs' status; one known to move them (``Permute``, ``Flatten``, a reshape or transpose that
changes the grid, a concatenation along a spatial axis) breaks it; and anything else -- a custom layer,
a ``Lambda``, a subclassed model's layers -- is ``unknown``. An unknown layer is confirmed by a probe
(:func:`probe`): a bright patch moved across the image must move the layer's response the same way.
"""

from __future__ import annotations

import weakref
from typing import Any, Sequence

import keras
import numpy as np

from reportgen.graph.anatomy import anatomy
from reportgen.graph.kinds import is_conv, is_pooling
from reportgen.graph.trace import LayerRef, flat_graph, is_traceable

ALIGNED, BROKEN, UNKNOWN = "aligned", "broken", "unknown"

# Keras layers that keep the spatial axes of what they are given (act per pixel, per channel, or locally).
_KEEPING_LAYERS = {
    "BatchNormalization",
    "LayerNormalization",
    "GroupNormalization",
    "UnitNormalization",
    "Normalization",
    "Activation",
    "ReLU",
    "LeakyReLU",
    "PReLU",
    "ELU",
    "Softmax",
    "Add",
    "Subtract",
    "Multiply",
    "Average",
    "Maximum",
    "Minimum",
    "Dropout",
    "SpatialDropout2D",
    "GaussianNoise",
    "GaussianDropout",
    "AlphaDropout",
    "ActivityRegularization",
    "Rescaling",
    "ZeroPadding2D",
    "Cropping2D",
    "UpSampling2D",
    "Resizing",
    "CenterCrop",
    "Identity",
    "Dense",
    "InputLayer",
    "RandomFlip",
    "RandomRotation",
    "RandomZoom",
    "RandomTranslation",
    "RandomContrast",
    "RandomBrightness",
    "RandomCrop",
    "Masking",
    "GlobalAveragePooling2D",
    "GlobalMaxPooling2D",
}
# Keras operations (``x + y``, ``ops.relu(x)``) that act element by element.
_KEEPING_OPS = {
    "Add",
    "Subtract",
    "Multiply",
    "Divide",
    "TrueDivide",
    "Maximum",
    "Minimum",
    "Power",
    "Negative",
    "Abs",
    "Absolute",
    "Square",
    "Sqrt",
    "Exp",
    "Log",
    "Relu",
    "Relu6",
    "Sigmoid",
    "HardSigmoid",
    "HardSilu",
    "Tanh",
    "Gelu",
    "Silu",
    "Swish",
    "Elu",
    "Selu",
    "LeakyRelu",
    "Softplus",
    "Clip",
    "Cast",
    "Where",
    "Erf",
    "Sign",
    "Reciprocal",
    "Rsqrt",
    "Mish",
}


def _keras_layer(op: Any) -> bool:
    return type(op).__module__.startswith("keras.")


def _spatial(shape: Any) -> tuple | None:
    return tuple(shape[1:3]) if shape is not None and len(shape) == 4 else None


def _rule(
    op: Any, in_shape: tuple | None, out_shape: tuple | None, grid: tuple | None
) -> tuple[str, tuple | None]:
    """(status, grid) of ``op``'s output given aligned input of ``in_shape`` on the image grid ``grid``
    (a token sequence carries the grid it was flattened from)."""
    name = type(op).__name__
    out_grid = _spatial(out_shape)
    if not _keras_layer(op):
        return UNKNOWN, out_grid
    if isinstance(op, keras.layers.Layer) and (is_conv(op) or is_pooling(op)):
        return ALIGNED, out_grid
    if name == "Permute":
        dims = tuple(getattr(op, "dims", ()))
        return (ALIGNED, out_grid) if len(dims) != 3 or dims[:2] == (1, 2) else (BROKEN, None)
    if name == "Transpose":  # ops.transpose
        axes = getattr(op, "axes", None)
        return (ALIGNED, out_grid) if axes is not None and tuple(axes)[:3] == (0, 1, 2) else (BROKEN, None)
    if name in ("Reshape",):  # the layer and ops.reshape
        if out_shape is None or grid is None:
            return UNKNOWN, out_grid
        if len(out_shape) == 4:
            return (ALIGNED, out_grid) if _spatial(out_shape) == grid else (BROKEN, None)
        if len(out_shape) == 3 and None not in grid and out_shape[1] == grid[0] * grid[1]:
            return ALIGNED, grid  # tokens in row-major order, the grid remembered
        return BROKEN, None
    if name == "Flatten":
        return BROKEN, None
    if name in ("Concatenate",):
        axis = getattr(op, "axis", -1)
        rank = len(out_shape) if out_shape is not None else 4
        return (ALIGNED, out_grid) if axis % rank == rank - 1 else (BROKEN, None)
    if name in _KEEPING_LAYERS or (not isinstance(op, keras.layers.Layer) and name in _KEEPING_OPS):
        return ALIGNED, out_grid if out_grid is not None else grid
    return UNKNOWN, out_grid


def statuses(model: Any) -> dict[str, str]:
    """``{path: aligned | broken | unknown}`` for every layer path of a functional or Sequential model, from
    the graph alone; every layer ``unknown`` for a subclassed model (it has no graph to read)."""
    return _read(model)[0]


def cause(model: Any, path: str) -> str | None:
    """The layer that moved the image's axes on the way to ``path`` (None where the graph shows none)."""
    return _read(model)[1].get(path)


def _read(model: Any) -> tuple[dict[str, str], dict[str, str]]:
    """(statuses, the path of the layer that broke each broken one), cached per model."""
    cached = _CACHE.get(model)
    if cached is None:
        cached = _CACHE[model] = _walk(model)
    return cached


_CACHE: "weakref.WeakKeyDictionary[Any, tuple[dict[str, str], dict[str, str]]]" = weakref.WeakKeyDictionary()


def _walk(model: Any) -> tuple[dict[str, str], dict[str, str]]:
    from keras import tree

    if not is_traceable(model):
        return {r.path: UNKNOWN for r in anatomy(model).layers}, {}
    flat = flat_graph(model)
    image = _image_input(model)
    by_tensor: dict[int, tuple[str, tuple | None]] = {}
    broke: dict[int, str] = {}  # tensor id -> the path that moved the axes
    for i, t in enumerate(flat.inputs):
        if i == image:
            by_tensor[id(t)] = (ALIGNED, _spatial(tuple(t.shape)))
    out: dict[str, str] = {}
    causes: dict[str, str] = {}
    models = []
    for path, op, _depth in flat.order:
        if isinstance(op, keras.Model) and is_traceable(op):
            models.append(path)  # its output is its last layer's: filled in below
            continue
        args = [a for a in tree.flatten(flat.args_by_path.get(path, ())) if hasattr(a, "shape")]
        seen = [by_tensor[id(a)] for a in args if id(a) in by_tensor]
        outputs = [o for o in tree.flatten(flat.by_path.get(path)) if hasattr(o, "shape")]
        if not seen:
            status, grid = ALIGNED, None  # reads no image-derived tensor (a constant, a side input)
        elif any(s == BROKEN for s, _g in seen):
            status, grid = BROKEN, None  # computed after the axes were moved
            causes[path] = next(broke[id(a)] for a in args if id(a) in broke)
        else:
            grid = next((g for _s, g in seen if g is not None), None)
            in_shape = tuple(args[0].shape) if args else None
            out_shape = tuple(outputs[0].shape) if outputs else None
            status, grid = _rule(op, in_shape, out_shape, grid)
            if status == ALIGNED and any(s == UNKNOWN for s, _g in seen):
                status = UNKNOWN
            if status == BROKEN:
                causes[path] = path
        out[path] = status
        for o in outputs:
            by_tensor[id(o)] = (status, grid)
            if path in causes:
                broke[id(o)] = causes[path]
    for path in models:
        outputs = [o for o in tree.flatten(flat.by_path.get(path)) if hasattr(o, "shape")]
        out[path] = by_tensor.get(id(outputs[0]), (UNKNOWN, None))[0] if outputs else UNKNOWN
        if outputs and id(outputs[0]) in broke:
            causes[path] = broke[id(outputs[0])]
    return out, causes


def _image_input(model: Any) -> int:
    from reportgen.graph.anatomy import image_input_index

    index = image_input_index(model)
    return 0 if index is None else index


# --- the probe --------------------------------------------------------------------------------

PATCHES = ((0.25, 0.25), (0.25, 0.75), (0.75, 0.25))  # top left, top right, bottom left (fractions of H, W)


def _centroid(diff: np.ndarray) -> tuple[float, float] | None:
    """The (row, column) centre of mass of a response map, as fractions of its height and width."""
    w = np.nan_to_num(np.abs(diff).astype(np.float64)) ** 2
    total = w.sum()
    if not np.isfinite(total) or total <= 0:
        return None
    h, wd = w.shape
    rows = (np.arange(h) + 0.5) / h
    cols = (np.arange(wd) + 0.5) / wd
    return float((w.sum(axis=1) * rows).sum() / total), float((w.sum(axis=0) * cols).sum() / total)


def verdict_from_centroids(c: Sequence[tuple[float, float] | None], tolerance: float = 0.05) -> bool | None:
    """Whether responses at :data:`PATCHES`' centroids ``c`` lie on the image's axes: True when moving the
    patch right moves the response right (not down) and moving it down moves it down (not right), False
    when they clearly move another way (a transpose, a flip), None when the probe saw too little."""
    if any(p is None for p in c):
        return None
    (r0, c0), (r1, c1), (r2, c2) = c  # top left, top right, bottom left
    right = (r1 - r0, c1 - c0)  # the response's move when the patch moves right
    down = (r2 - r0, c2 - c0)  # ... and down
    if right[1] > tolerance and down[0] > tolerance and abs(right[0]) < right[1] and abs(down[1]) < down[0]:
        return True
    if max(abs(right[0]), abs(right[1]), abs(down[0]), abs(down[1])) <= tolerance:
        return None  # the response hardly moved: a layer that sees the whole image at once
    return False


def probe(model: Any, refs: Sequence[LayerRef], feeds: Any = None) -> dict[str, bool | None]:
    """``{path: True | False | None}``: for each of ``refs`` (4-D outputs), whether a bright patch moved
    across the image moves its response the same way (one pass of four images: a grey image and the
    patch at three places; the response is the change against the grey image, summed over channels).
    None where the layer did not respond, or the pass failed."""
    from reportgen import backend
    from reportgen.graph import forward
    from reportgen.graph.hooks import zeros
    from reportgen.graph.inputs import model_inputs

    if not refs:
        return {}
    seen = _PROBED.setdefault(model, {})
    if all(r.path in seen for r in refs):  # the default CAM and feature layers ask about the same layers
        return {r.path: seen[r.path] for r in refs}
    an = anatomy(model)
    spec = an.inputs[_image_input(model)]
    shape = tuple(zeros(spec.shape).shape)[1:]
    height, width = int(shape[0]), int(shape[1])
    size = max(2, min(height, width) // 6)
    batch = np.full((len(PATCHES) + 1,) + shape, 0.5, dtype=np.float32)
    for k, (fr, fc) in enumerate(PATCHES, start=1):
        r, c = int(fr * height) - size // 2, int(fc * width) - size // 2
        batch[k, r : r + size, c : c + size] = 4.0
    taps = {r.path: forward.Tap() for r in refs}
    try:
        with backend.no_grad():
            trace = forward.run(model, model_inputs(feeds, backend.tensor(batch)), taps)
    except Exception:  # noqa: BLE001  (a model the made-up input does not suit: the probe says nothing)
        return {r.path: None for r in refs}
    found: dict[str, bool | None] = {}
    for ref in refs:
        acts = trace.captured.get(ref.path)
        if acts is None:
            found[ref.path] = None
            continue
        a = backend.numpy(acts).astype(np.float64)
        if a.ndim != 4 or a.shape[1] < 2 or a.shape[2] < 2:
            found[ref.path] = None
            continue
        diffs = [np.abs(a[k] - a[0]).sum(axis=-1) for k in range(1, len(PATCHES) + 1)]
        found[ref.path] = verdict_from_centroids([_centroid(d) for d in diffs])
    seen.update(found)
    return found


_PROBED: "weakref.WeakKeyDictionary[Any, dict[str, bool | None]]" = weakref.WeakKeyDictionary()


def on_image_axes(model: Any, refs: Sequence[LayerRef], feeds: Any = None) -> dict[str, bool]:
    """``{path: whether the layer's output is a map of the image}`` for ``refs``: the graph's word where it
    has one, the probe's where it has not (a probe that cannot tell keeps the layer: it is not shown to
    move the axes). Token outputs laid on a patch grid (:attr:`LayerRef.grid`) are maps of the image."""
    known = statuses(model)
    out: dict[str, bool] = {}
    unsure = []
    for ref in refs:
        if ref.grid is not None:
            out[ref.path] = True
            continue
        status = known.get(ref.path, UNKNOWN)
        if status == UNKNOWN:
            unsure.append(ref)
        else:
            out[ref.path] = status == ALIGNED
    for path, seen in probe(model, unsure, feeds).items():
        out[path] = seen is not False
    return out


def off_axes_message(model: Any, ref: LayerRef, option: str, candidates: Sequence[LayerRef]) -> str:
    """One line for a named layer whose output is not a map of the image: why, and the nearest layer before
    it (among ``candidates``, in model order) that is."""
    moved = cause(model, ref.path)
    why = (
        f"'{moved}' ({type(anatomy(model).by_path[moved]).__name__}) moves the image's axes"
        if moved and moved in anatomy(model).by_path
        else "a probe moved a bright patch across the image and its response moved another way"
    )
    paths = [r.path for r in candidates]
    before = list(reversed(candidates[: paths.index(ref.path)])) if ref.path in paths else list(candidates)
    near = None
    for k in range(0, len(before), 4):
        group = before[k : k + 4]
        ok = on_image_axes(model, group)
        near = next((r.path for r in group if ok.get(r.path)), None)
        if near:
            break
    hint = (
        f"; the nearest layer before it that is: '{near}' ({option} {near})"
        if near
        else "; no layer before it is, so drop the option"
    )
    return (
        f"{option}: '{ref.path}' is not a map of the image: {why}, so its rows are not the image's rows and "
        f"a heat map drawn from it would be wrong{hint}"
    )


def passed_over(model: Any) -> str | None:
    """One sentence naming the layers a default choice passed over because their output is not a map of the
    image (the graph's causes, and layers a probe rejected); None where there were none."""
    from reportgen.graph.anatomy import spatial_layers

    known, causes = _read(model)
    spatial = {r.path for r in spatial_layers(model) if r.grid is None}
    causes_seen = sorted({causes[p] for p in spatial if known.get(p) == BROKEN and p in causes})
    after = sum(1 for p in spatial if known.get(p) == BROKEN and causes.get(p) not in (None, p))
    probed = sorted(p for p, ok in _PROBED.get(model, {}).items() if ok is False)
    if not causes_seen and not probed:
        return None
    by = anatomy(model).by_path
    parts = [
        f"'{c}' ({type(by[c]).__name__ if c in by else 'a layer'}) moves the image's axes"
        for c in causes_seen
    ]
    if after:
        parts.append(f"{after} layer(s) with a 2-D output after it")
    if probed:
        parts.append(
            "a probe (a bright patch moved across the image) rejected " + ", ".join(f"'{p}'" for p in probed)
        )
    return (
        "Layers whose output is not a map of the image were passed over: "
        + "; ".join(parts)
        + " (docs/findings.md, Maps on the image's axes)."
    )
