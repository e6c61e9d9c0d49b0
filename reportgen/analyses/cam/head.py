"""What a model outputs, and so what a CAM can explain.

A model's (chosen) output is one of:

- a **vector of class scores** ending in a softmax or sigmoid: the CAM
  explains the class *logit*, before the activation, when that activation can
  be separated from the model (as in the Grad-CAM paper and the keras-io
  example); after a softmax the gradient of one probability also carries every
  other class' score;
- a **vector of raw outputs** (logits, a regression head): the largest outputs;
- a **map** (segmentation, edges, depth: height x width x channels):
  Seg-Grad-CAM (Vinogradova et al. 2020) explains a scalar made from the map.
  A per-pixel classifier (a softmax over channels) explains each of its top
  classes by area, as the mean logit over the pixels it wins; any other map
  explains its mean.

``--output NAME`` picks one output of a multi-output model.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np

from reportgen import graph
from reportgen.errors import UserError

_SEPARABLE = ("softmax", "sigmoid")


@dataclass(frozen=True)
class Head:
    """How the model turns its last features into the chosen output.

    ``kind``: ``softmax`` / ``sigmoid`` (class probabilities), ``none`` (raw
    vector outputs), ``map`` (a dense output) or ``pixel-softmax`` (a per-pixel
    classifier). ``score``: what the CAM differentiates, ``logit`` (before the
    activation) or ``output``. ``output``: the index of the chosen output.
    """

    kind: str
    score: str
    final_path: str | None
    units: int | None
    note: str | None = None
    output: int = 0
    output_name: str = "output"
    output_shape: tuple = ()

    @property
    def is_classifier(self) -> bool:
        return self.kind in _SEPARABLE

    @property
    def is_map(self) -> bool:
        return self.kind in ("map", "pixel-softmax")

    @property
    def is_binary(self) -> bool:
        """ONE sigmoid unit: a two-class classifier. Class 1 is the unit (its logit), class 0 its negative."""
        return self.kind == "sigmoid" and self.units == 1

    @property
    def classes(self) -> int | None:
        """How many classes the output scores (two for one sigmoid unit); None for maps and unknown sizes."""
        return 2 if self.is_binary else self.units

    def class_scores(self, y: Any, xp: Any = np) -> Any:
        """The explained output ``y`` as one score per class: :func:`two_classes` for one sigmoid unit, else
        ``y``.

        ``xp``: ``numpy`` or ``keras.ops`` (tensors, inside a compiled function).
        """
        return two_classes(y, self.score == "logit", xp) if self.is_binary else y


def pick(output: Any, index: int) -> Any:
    """Output ``index`` of a model's output (a tensor, a list or a dict of them)."""
    if isinstance(output, dict):
        output = [output[k] for k in output]
    if isinstance(output, (list, tuple)):
        flat = []
        for item in output:
            flat.extend(item if isinstance(item, (list, tuple)) else [item])
        return flat[index]
    return output


def two_classes(y: Any, logit: bool, xp: Any = np) -> Any:
    """One sigmoid unit's output (N, 1) read as two classes (N, 2): (-z, z) for its logit z, (1 - p, p) for
    its probability p. The one two-class reading: class 0's score is minus class 1's up to a constant, so
    its gradient is minus class 1's (:class:`~reportgen.analyses.cam.targets.BinaryClasses`); class 1 is
    the last column either way. ``xp``: ``numpy`` or ``keras.ops``."""
    return xp.concatenate([-y, y] if logit else [1.0 - y, y], axis=-1)


def output_index(model: Any, name: str | None) -> int:
    """The output ``--output NAME`` picks (a name, or a position), else :func:`default_output`."""
    outputs = graph.anatomy(model).outputs
    if name is None:
        return default_output(model)
    names = [o.name for o in outputs]
    if name in names:
        return names.index(name)
    if name.isdigit() and int(name) < len(outputs):
        return int(name)
    if name.startswith("output_") and name[7:].isdigit() and int(name[7:]) < len(outputs):
        return int(name[7:])  # a subclassed model's outputs by position, as Keras lists them
    raise UserError(f"--output: the model has no output '{name}'; its outputs are: {', '.join(names)}")


_DEFAULT: "weakref.WeakKeyDictionary[Any, int]" = weakref.WeakKeyDictionary()


def default_output(model: Any) -> int:
    """The output a report explains when ``--output`` is not given: the first class-score output.

    A detector's box regression (linear, 4 units) beside its face/no-face
    softmax must not be explained as "class 0..3": a softmax or sigmoid
    output comes before a linear one, a vector before a map, and otherwise
    the first output. The report says which was chosen and how to pick
    another (the ``output_chosen`` note).
    """
    try:
        return _DEFAULT[model]
    except (KeyError, TypeError):
        pass
    outputs = graph.anatomy(model).outputs
    chosen = 0
    if len(outputs) > 1:
        heads = [classifier_head(model, i) for i in range(len(outputs))]
        rank = {"softmax": 0, "sigmoid": 0, "pixel-softmax": 1, "none": 2, "map": 3}
        chosen = min(range(len(heads)), key=lambda i: (rank.get(heads[i].kind, 4), i))
    try:
        _DEFAULT[model] = chosen
    except TypeError:
        pass
    return chosen


def _separable(layer: Any) -> bool:
    import keras

    return isinstance(
        layer, (keras.layers.Dense, keras.layers.Activation, keras.layers.Softmax)
    ) or graph.is_conv(layer)


def classifier_head(model: Any, output: str | int | None = None) -> Head:
    """Inspect the chosen output (``--output``, else :func:`default_output`): class scores, raw outputs, or a
    map."""
    an = graph.anatomy(model)
    index = output if isinstance(output, int) else output_index(model, output)
    if not an.outputs:
        return Head("none", "output", None, None, note="The model's output could not be identified.")
    spec = an.outputs[index]
    shape = tuple(spec.shape)
    final_path = an.output_layers[index] if index < len(an.output_layers) else None
    layer = an.by_path.get(final_path) if final_path else None
    act = (graph.activation_name(layer) or "") if layer is not None else ""
    many = len(an.outputs) > 1
    where = f"output '{spec.name}'" if many else "output"
    common = dict(output=index, output_name=spec.name, output_shape=shape)
    if len(shape) == 4 or len(shape) == 3:
        channels = shape[-1] if len(shape) == 4 else 1
        if act == "softmax" and channels and channels > 1:
            score = "logit" if layer is not None and _separable(layer) else "output"
            return Head(
                "pixel-softmax",
                score,
                final_path,
                int(channels),
                note=(
                    f"The model's {where} {shape} is a per-pixel "
                    f"classifier (softmax over {channels} classes): "
                    "each explained class is the mean "
                    f"{'logit' if score == 'logit' else 'probability'} over the pixels it wins "
                    "(Seg-Grad-CAM, Vinogradova et al. 2020), for the classes covering the most pixels."
                ),
                **common,
            )
        return Head(
            "map",
            "output",
            final_path,
            None if channels is None else int(channels),
            note=(
                f"The model's {where} {shape} is a map, not class scores: the CAM explains the mean of the "
                "output map (Seg-Grad-CAM, Vinogradova et al. 2020)."
            ),
            **common,
        )
    if len(shape) != 2:
        return Head(
            "none",
            "output",
            final_path,
            None,
            note=(
                f"The model's {where} {shape} is neither class "
                "scores nor a map, so there is nothing to explain."
            ),
            **common,
        )
    units = int(shape[-1]) if shape[-1] is not None else None
    if final_path is None:
        return Head(
            "none",
            "output",
            None,
            units,
            note=("The model's output layer could not be identified; the CAM uses the raw outputs."),
            **common,
        )
    if act in _SEPARABLE:
        note = None
        if act == "sigmoid" and units == 1:
            note = (
                "The model ends in one sigmoid unit: a binary classifier, read as two classes, "
                "0 with probability 1 - p and 1 with p; the CAM of class 0 explains minus the logit."
            )
        elif act == "sigmoid":
            note = (
                "The model ends in a sigmoid: each output is an independent probability, "
                "so the probabilities below need not sum to 1."
            )
        return Head(act, "logit" if _separable(layer) else "output", final_path, units, note, **common)
    what = f"a '{act}' activation" if act and act != "linear" else "no softmax"
    return Head(
        "none",
        "output",
        final_path,
        units,
        (
            f"The model's {where} has {what}: it is not a class score (a regression head, or logits). "
            "Values below are raw outputs, not probabilities, and the CAM explains the largest raw outputs."
        ),
        **common,
    )


def is_classifier(model: Any) -> bool:
    """True when the model ends in a softmax (or sigmoid) over class scores."""
    return classifier_head(model).is_classifier


def find_target_layer(model: Any, output: str | int | None = None) -> graph.LayerRef:
    """The layer a CAM explains by default (:func:`reportgen.graph.cam_layer`): a CNN's last spatial output
    before the head, a transformer's last block's first normalisation.

    ``block5_conv3`` for VGG16, as in Chollet; in a model with several outputs,
    the last one on the way to the chosen output. Raises :class:`UserError`
    when the model has none.
    """
    index = output if isinstance(output, int) else output_index(model, output)
    target = graph.cam_layer(model, index)
    if target is not None and len(graph.anatomy(model).outputs) > 1 and not graph.is_traceable(model):
        # A subclassed model's graph is unknown: probe that the chosen output depends on the layer.
        rejected: list[str] = []
        while target is not None and not _reaches(model, target.path, index):
            rejected.append(target.path)
            target = graph.cam_layer(model, index, exclude=rejected)
    if target is None:
        spatial = ", ".join(r.path for r in graph.spatial_layers(model)) or "(none)"
        raise UserError(
            "Grad-CAM: the model has no layer with a 2-D map "
            "output (no conv layer, no tokens on a patch grid); "
            "pick a layer with a 2-D output "
            f"with --gradcam-layer (valid names: {spatial}) or drop the gradcam section"
        )
    return target


def _reaches(model: Any, path: str, index: int) -> bool:
    """Whether output ``index`` changes when noise is added to the layer at ``path`` (two passes on noise).

    Noise, not zeros, as input: a branch gated by the input itself must not
    look disconnected. A probe that fails says nothing, so the layer is kept.
    """
    import numpy as np
    from keras import ops

    from reportgen import backend
    from reportgen.graph import forward

    rng = np.random.default_rng(0)
    try:
        x = [
            ops.convert_to_tensor(
                rng.uniform(0.0, 1.0, tuple(forward.zeros(s.shape).shape)).astype("float32")
            )
            for s in graph.anatomy(model).inputs
        ]
        x = x[0] if len(x) == 1 else x
        base = forward.run(model, x, {path: forward.Tap()})
        if path not in base.captured:
            return False  # the layer never ran on this input
        shape = tuple(int(d) for d in base.captured[path].shape)
        noise = ops.convert_to_tensor(rng.normal(0.0, 10.0, shape).astype("float32"))
        moved = forward.run(model, x, {path: forward.Tap(add=noise, capture=False)})
        return not np.array_equal(
            backend.numpy(pick(base.output, index)), backend.numpy(pick(moved.output, index))
        )
    except Exception:  # noqa: BLE001  (an input the probe could not make up: keep the layer)
        return True


def resolve_layer(model: Any, name: str | None, output: str | int | None = None) -> graph.LayerRef:
    """``--gradcam-layer`` (any layer with a 2-D output), else :func:`find_target_layer`."""
    if name:
        candidates = graph.spatial_layers(model)
        ref = graph.find_layers(candidates, [name], "--gradcam-layer")[0]
        if not graph.on_image_axes(model, [ref]).get(ref.path, True):
            raise UserError(graph.off_axes_message(model, ref, "--gradcam-layer", candidates))
        return ref
    return find_target_layer(model, output)
