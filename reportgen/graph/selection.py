"""Which layers each section shows: stages, the default feature-map, pattern and CAM layers, detail layers."""

from __future__ import annotations

from typing import Any, Callable, Iterable, Sequence, TypeVar

import keras

from reportgen.errors import UserError
from reportgen.graph.anatomy import (
    _is_patch_embedding,
    _single_pixel,
    anatomy,
    conv_layers,
    feature_map_layers,
    has_spatial_output,
    one_pixel,
    spatial_part,
    spatial_size,
    walk,
)
from reportgen.graph.axes import ALIGNED, BROKEN, UNKNOWN, probe, statuses
from reportgen.graph.kinds import is_conv, is_pooling
from reportgen.graph.probe import _with_concrete_sizes, ancestors
from reportgen.graph.trace import LayerRef, children


T = TypeVar("T")


def _output_shape(ref: LayerRef) -> Sequence | None:
    return ref.output_shape


def stages(items: Sequence[T], shape: Callable[[T], Sequence | None] = _output_shape) -> list[list[T]]:
    """``items`` (layers in model order) cut into stages: a stage is a run of layers at one spatial size.

    The one stage grouping: :func:`stage_starts`, the weights chart's marks and
    the layer table's stage summary read it. ``shape`` gives an item's output
    shape (channels-last; a :class:`LayerRef`'s own by default).

    Only a layer with a map (more than one pixel) starts a stage. A layer whose
    output is a single pixel (the squeeze-and-excitation convs of EfficientNet
    and MobileNetV3, which act on globally pooled features) or flat inside the
    network (EfficientNet's squeeze) joins the current stage: it would
    otherwise split every block in two. The flat layers after the last map --
    the dense head -- are a stage of their own. Layers before the first map
    make a stage without a start.
    """
    return [run for _start, run in _stage_runs(items, shape)]


def _stage_runs(items: Sequence[T], shape: Callable[[T], Sequence | None]) -> list[tuple[T | None, list[T]]]:
    """:func:`stages` with the layer that started each (None for the layers before the first map)."""
    items = list(items)
    sizes = [spatial_part(shape(item)) for item in items]
    maps = [k for k, size in enumerate(sizes) if size is not None and not one_pixel(size)]
    head = maps[-1] + 1 if maps else 0  # the first layer after the last map
    runs: list[tuple[T | None, list[T]]] = []
    last: Any = object()
    for k, (item, size) in enumerate(zip(items, sizes)):
        if size is not None and not one_pixel(size):
            if size != last:
                runs.append((item, []))
                last = size
        elif size is None and k >= head and last is not None:
            runs.append((item, []))  # the dense head
            last = None
        elif not runs:
            runs.append((None, []))
        runs[-1][1].append(item)
    return runs


def stage_starts(refs: Sequence[LayerRef]) -> list[LayerRef]:
    """The first layer of each stage (:func:`stages`).

    For VGG16's conv layers this gives ``block1_conv1`` ... ``block5_conv1``.
    """
    return [start for start, _run in _stage_runs(refs, _output_shape) if start is not None]


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

MAX_DEFAULT_FEATURE_LAYERS = 20


def default_feature_layers(model: keras.Model) -> list[LayerRef]:
    """The layers whose feature maps the report shows by default.

    Every conv and pooling layer with a 2-D output when there are at most
    :data:`MAX_DEFAULT_FEATURE_LAYERS` of them (VGG16: 13 conv + 5 pooling).
    Larger models (ResNet, DenseNet, ...) would give hundreds of grids, so they
    get the first conv layer of each stage (a run of layers at one spatial
    resolution: a ResNet stage, a VGG block) and the last conv layer -- the one
    Grad-CAM uses -- in model order.
    """
    blocks = token_blocks(model)
    if blocks:
        # A transformer: the patch embedding, then each block's patch tokens as maps on the grid.
        patches = [r for r in conv_layers(model) if has_spatial_output(r)][:1]
        return patches + evenly(blocks, MAX_DEFAULT_FEATURE_LAYERS - len(patches))
    known = statuses(model)
    refs = [r for r in feature_map_layers(model) if has_spatial_output(r) and known.get(r.path) != BROKEN]
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
MAX_TRANSFORMER_PATTERN_BLOCKS = 3


def pattern_candidates(model: keras.Model) -> list[LayerRef]:
    """Conv layers with a 2-D output, and a transformer's blocks (a channel's mean over the patch tokens):
    the layers whose units can be visualised as images."""
    return [r for r in conv_layers(model) if has_spatial_output(r)] + token_blocks(model)


def default_pattern_layers(model: keras.Model) -> list[LayerRef]:
    """The conv layers whose filter patterns the report shows by default.

    Every conv layer (with a 2-D output) for models with up to
    :data:`MAX_ALL_PATTERN_LAYERS` of them; otherwise the first conv layer of
    each stage (a run of conv layers at one spatial resolution), which for
    VGG16 is ``block1_conv1`` ... ``block5_conv1``, the tutorial's choice.
    """
    blocks = token_blocks(model)
    if blocks:  # the first, middle and last block: each step runs the encoder up to the block
        return evenly(blocks, MAX_TRANSFORMER_PATTERN_BLOCKS)
    convs = pattern_candidates(model)
    if len(convs) <= MAX_ALL_PATTERN_LAYERS:
        return convs
    chosen = {r.path for r in model_stage_starts(model, convs)}
    return [r for r in convs if r.path in chosen]


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
    return _last_map(
        model, [r for r in conv_layers(model) if has_spatial_output(r) and r.path not in skip], output
    )


def _last_map(model: keras.Model, refs: list[LayerRef], output: int) -> LayerRef | None:
    """The last of ``refs`` on the way to ``output`` whose map has more than one pixel, passing over the
    layer that produces an output and single-channel maps while another candidate exists."""
    if len(anatomy(model).outputs) > 1:
        needed = ancestors(model, output)
        if needed is not None:  # a layer inside a custom layer counts with its container
            refs = [r for r in refs if r.path in needed or r.path.rsplit("/", 1)[0] in needed]
    outputs = set(anatomy(model).output_layers)
    better = [r for r in refs if r.path not in outputs and (r.map_shape or (None,))[-1] not in (1,)]
    if better:
        refs = better
    if any(s is None or None in s for s in (spatial_size(r) for r in refs)):
        refs = _with_concrete_sizes(model, refs)
    maps = [r for r in refs if not _single_pixel(r)]
    chosen = _last_on_axes(model, maps)
    if chosen is None:
        return None
    return next(r for r in walk(model) if r.path == chosen.path)


PROBE_GROUP = 4  # unknown layers probed in one pass, from the last back


def _last_on_axes(model: keras.Model, refs: list[LayerRef]) -> LayerRef | None:
    """The last of ``refs`` whose output lies on the image's axes (:mod:`reportgen.graph.axes`): a
    ``Permute`` before a dense head, and everything after it, is passed over; a layer the graph cannot
    judge is probed, a few at a time from the last back, and kept unless the probe shows it moves the axes."""
    known = statuses(model)
    left = [r for r in refs if r.grid is not None or known.get(r.path, UNKNOWN) != BROKEN]
    while left:
        last = left[-1]
        if last.grid is not None or known.get(last.path) == ALIGNED:
            return last
        group = []
        for r in reversed(left):
            if r.grid is not None or known.get(r.path) == ALIGNED or len(group) == PROBE_GROUP:
                break
            group.append(r)
        seen = probe(model, group)
        for r in group:  # last first
            if seen.get(r.path) is not False:
                return r
        left = left[: len(left) - len(group)]
    return None


def token_blocks(model: keras.Model) -> list[LayerRef]:
    """A transformer's blocks, in call order: the innermost layers on a patch grid that hold an attention
    layer (ViT's ``transformer_block_N``, DINOv2's ``layers_N``, each Swin block, and ViTDet's
    ``windowed_transformer_encoder_N``, whose tokens stay an (H, W, C) map: :func:`_token_maps`). Empty for a
    CNN."""
    refs = walk(model)
    attention = [r.path for r in refs if "attention" in r.class_name.lower()]
    as_maps = _token_maps(refs)
    found = [
        r
        for r in refs
        if (r.grid is not None or r.path in as_maps)
        and not r.is_model
        and children(r.layer)
        and any(a.startswith(r.path + "/") for a in attention)
    ]
    return [r for r in found if not any(o.path.startswith(r.path + "/") for o in found)]


def _token_maps(refs: Sequence[LayerRef]) -> set[str]:
    """The layers whose output is patch tokens kept as an (H, W, C) map, as ViTDet (SAM's image encoder) keeps
    them between its blocks: a map at the grid of a patch embedding before it, in a model whose attention
    projects each token of a map with a Dense (its queries, keys and values). A CNN's attention gate is not
    that: it pools before its Dense layers (squeeze-and-excitation, CBAM's channel gate) or convolves."""
    attention = [r.path + "/" for r in refs if "attention" in r.class_name.lower()]
    if not any(
        isinstance(r.layer, keras.layers.Dense)
        and any(r.path.startswith(a) for a in attention)
        and r.output_shape is not None
        and len(r.output_shape) == 4
        and not one_pixel(spatial_part(r.output_shape))
        for r in refs
    ):
        return set()
    parents = {r.path: r for r in refs}
    grids: set[tuple] = set()
    found = set()
    for r in refs:
        shape = r.output_shape
        if _is_patch_embedding(r, parents):
            grids.add(tuple(shape[1:3]))
        elif shape is not None and len(shape) == 4 and tuple(shape[1:3]) in grids:
            found.add(r.path)
    return found


def model_kind(model: keras.Model) -> str:
    """What a report calls the model in its title: "vision transformer" (blocks of attention over patch
    tokens: ViT, DeiT, DINOv2, Swin, MiT, ViTDet), "CNN" (convolutions), else "model"."""
    if token_blocks(model):
        return "vision transformer"
    if any(is_conv(r.layer) for r in walk(model)):
        return "CNN"
    return "model"


def evenly(refs: Sequence[LayerRef], limit: int) -> list[LayerRef]:
    """At most ``limit`` of ``refs``, evenly spaced, the last one always kept (the one nearest the output)."""
    refs = list(refs)
    if len(refs) <= limit:
        return refs
    if limit <= 1:
        return refs[-1:]
    step = (len(refs) - 1) / (limit - 1)
    keep = sorted({round(i * step) for i in range(limit)})
    return [refs[i] for i in keep]


def cam_layer(model: keras.Model, output: int = 0, exclude: Iterable[str] = ()) -> LayerRef | None:
    """The layer a CAM explains by default, on the way to ``output``.

    - A transformer: the last block's first normalisation (pytorch-grad-cam's
      ``blocks[-1].norm1``), before that block's attention. Later, only the
      class token reaches the head, so the patch tokens' gradient is zero.
      A transformer that keeps its tokens as a map (ViTDet) gets a CNN's
      choice: its map of tokens, every one of them, goes on to the head.
    - A CNN: the last spatial output before the head -- the last block's
      output after its add or activation (ResNet's ``conv5_block3_out``,
      EfficientNet's ``top_activation``, VGG16's ``block5_conv3``) --, never a
      shortcut projection that happens to be declared last. Pooling layers
      only subsample what they are given, so their input is taken instead.
      Where a task model declares a backbone (keras-hub's ``model.backbone``),
      the backbone's last spatial output, not a conv of the head.
    """
    skip = set(exclude)
    blocks = [b for b in token_blocks(model) if b.path not in skip and b.grid is not None]
    if blocks:
        last = blocks[-1]
        inner = [
            r
            for r in walk(model)
            if r.path.startswith(last.path + "/")
            and r.grid is not None
            and isinstance(r.layer, keras.layers.LayerNormalization)
        ]
        return inner[0] if inner else last
    walked = walk(model)
    first_conv = next((i for i, r in enumerate(walked) if is_conv(r.layer) and has_spatial_output(r)), None)
    if first_conv is None:
        return None  # no convolution: a map of the input's preprocessing explains nothing
    refs = [
        r
        for r in walked[first_conv:]
        if has_spatial_output(r)
        and not r.is_model
        and not r.is_op
        and not children(r.layer)
        and not is_pooling(r.layer)
        and r.path not in skip
        and type(r.layer).__name__ not in _NOT_A_MAP
    ]
    inside = _in_backbone(model, walked, refs)
    if inside:
        found = _last_map(model, inside, output)
        if found is not None:
            return found
    return _last_map(model, refs, output)


def _in_backbone(model: keras.Model, walked: Sequence[LayerRef], refs: Sequence[LayerRef]) -> list[LayerRef]:
    """``refs`` inside the backbone a task model declares (keras-hub's ``model.backbone``); [] without one.

    A task's head may hold convolutions of its own -- keras-hub's VGG head is a 7x7 ``fc1`` conv and a 1x1
    ``fc2`` conv, which leave a 64-px image's 8x8 map at 2x2 --: the map to explain is the backbone's last."""
    backbone = getattr(model, "backbone", None)
    if not isinstance(backbone, keras.layers.Layer):
        return []
    at = next((r for r in walked if r.layer is backbone), None)
    if at is None:
        return []
    return [r for r in refs if r.path.startswith(at.path + "/")]


# Layers whose 4-D output is not a feature map of the image: inputs, and noise or masking added for training.
_NOT_A_MAP = {
    "InputLayer",
    "Dropout",
    "SpatialDropout2D",
    "GaussianNoise",
    "GaussianDropout",
    "AlphaDropout",
    "ActivityRegularization",
}


def model_stage_starts(model: keras.Model, refs: Sequence[LayerRef]) -> list[LayerRef]:
    """:func:`stage_starts` of ``refs``, tracing at 224 px first when sizes are unknown."""
    return stage_starts(_sized(model, refs))


def model_stages(model: keras.Model, refs: Sequence[LayerRef]) -> list[list[LayerRef]]:
    """:func:`stages` of ``refs``, tracing at 224 px first when sizes are unknown."""
    return stages(_sized(model, refs))


def _sized(model: keras.Model, refs: Sequence[LayerRef]) -> Sequence[LayerRef]:
    """``refs``, with shapes traced at 224 px when one is unknown or leaves its spatial size open."""
    if any(r.output_shape is None or None in (spatial_size(r) or ()) for r in refs):
        return _with_concrete_sizes(model, refs)
    return refs


FULL_DETAIL_LAYERS = 30


def detail_layers(
    refs: Sequence[LayerRef],
    named: Iterable[str] = (),
    flagged: Iterable[str] = (),
    limit: int = FULL_DETAIL_LAYERS,
) -> tuple[list[LayerRef], str]:
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
