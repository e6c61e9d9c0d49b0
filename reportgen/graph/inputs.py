"""What a model receives besides the image: its other inputs, fed zeros unless given.

A model may take an image and something else (metadata, a class embedding,
a mask). The image sections vary the image and hold every other input fixed:
at zeros, or at the example the user gives with ``--input NAME=FILE.npy``
(one example, without a batch dimension, or a batch of one). The report says
which inputs were fed what.
"""

from __future__ import annotations


from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from reportgen.errors import UserError


@dataclass
class Feeds:
    """The model's inputs around its image input: ``batch(images)`` gives what the model is called with."""

    image_index: int | None
    names: list[str]
    shapes: list[tuple]
    dtypes: list[str]
    fixed: dict[int, np.ndarray] = field(default_factory=dict)  # input index -> one example
    sources: dict[int, str] = field(default_factory=dict)  # input index -> "zeros" or the file

    @property
    def single(self) -> bool:
        return len(self.names) == 1

    def batch(self, images: Any) -> Any:
        """The model's inputs for a batch of images: a tensor, or a list for several inputs."""
        import keras

        if self.single:
            return images
        n = keras.ops.shape(images)[0]  # symbolic inside a compiled step: the batch may vary
        out = []
        for i in range(len(self.names)):
            if i == self.image_index:
                out.append(images)
            else:
                example = keras.ops.convert_to_tensor(self.fixed[i], dtype=self.dtypes[i])
                out.append(keras.ops.broadcast_to(example[None], (n,) + tuple(self.fixed[i].shape)))
        return out

    def describe(self) -> list[dict]:
        """One entry per input: name, shape, and what it was fed."""
        return [
            {
                "name": n,
                "shape": list(s),
                "fed": "images" if i == self.image_index else self.sources.get(i, "zeros"),
            }
            for i, (n, s) in enumerate(zip(self.names, self.shapes))
        ]


def other_inputs(feeds: Feeds | None) -> bool:
    """Whether the model takes inputs besides its image (fixed examples that :func:`model_inputs` adds)."""
    return feeds is not None and not feeds.single


def model_inputs(feeds: Feeds | None, images: Any) -> Any:
    """What the model is called with for a batch of images: the images alone without :class:`Feeds` (or for
    a model with one input), else ``feeds.batch(images)``. The one adapter every forward pass uses."""
    return images if feeds is None else feeds.batch(images)


def _parse(spec: str) -> tuple[str, str]:
    if "=" not in spec:
        raise UserError(f"--input '{spec}' is not NAME=FILE.npy; give the input's name, '=', and a .npy file")
    name, path = spec.split("=", 1)
    return name.strip(), path.strip()


def feeds_for(model: Any, given: Sequence[str] = ()) -> Feeds:
    """The :class:`Feeds` of ``model``; ``given`` holds ``--input NAME=FILE.npy`` options."""
    from reportgen.graph.anatomy import anatomy, image_input_index

    an = anatomy(model)
    names = [s.name for s in an.inputs]
    shapes = [tuple(s.shape) for s in an.inputs]
    dtypes = [s.dtype if "float" in s.dtype or "int" in s.dtype else "float32" for s in an.inputs]
    feeds = Feeds(image_input_index(model), names, shapes, dtypes)
    files: dict[int, str] = {}
    for spec in given:
        name, path = _parse(spec)
        if name not in names:
            raise UserError(
                f"--input: the model has no input named '{name}'; its inputs are: {', '.join(names)}"
            )
        index = names.index(name)
        if index == feeds.image_index:
            raise UserError(f"--input: '{name}' is the image input; give images with --image")
        files[index] = path
    for i, shape in enumerate(shapes):
        if i == feeds.image_index:
            continue
        want = tuple(None if d is None else int(d) for d in shape[1:])
        if i in files:
            feeds.fixed[i] = _load(files[i], names[i], want, dtypes[i])
            feeds.sources[i] = files[i]
        else:
            feeds.fixed[i] = np.zeros(tuple(1 if d is None else d for d in want), dtype=dtypes[i])
            feeds.sources[i] = "zeros"
    return feeds


def _load(path: str, name: str, want: tuple, dtype: str) -> np.ndarray:
    """One example for input ``name``; ``want`` is its shape without the batch, None where any size goes."""
    from reportgen import guard

    p = Path(path)
    if not guard.present(p):
        raise UserError(f"--input {name}: '{path}' does not exist; give a .npy file saved with numpy.save")
    guard.check_file(p, f"--input {name}:", "give a .npy file saved with numpy.save")
    guard.npy_declared(p, f"--input {name}:", "give a smaller example array")
    try:
        arr = np.load(p, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise UserError(
            f"--input {name}: '{path}' is not a readable .npy array ({exc}); save it with numpy.save"
        ) from None

    def fits(shape: tuple) -> bool:
        return len(shape) == len(want) and all(w is None or w == d for w, d in zip(want, shape))

    if arr.ndim == len(want) + 1 and arr.shape[0] == 1 and fits(arr.shape[1:]):
        arr = arr[0]
    if not fits(arr.shape):
        raise UserError(
            f"--input {name}: '{path}' has shape {arr.shape} but the input takes {want} "
            "(one example, without the batch dimension)"
        )
    if arr.dtype.kind not in "uifb":
        raise UserError(f"--input {name}: '{path}' is not numeric")
    return arr.astype(dtype)
