"""Which names a model's outputs get: ``--class-names``, the model's own, the ``--images`` class folders,
ImageNet's, or none (labels then read ``class 7``). They depend on the model's classifier head
(:func:`reportgen.analyses.cam.classifier_head`), so they live here, not in :mod:`reportgen.images`."""

from __future__ import annotations

from typing import Any

from reportgen.errors import UserError
from reportgen.images.labels import imagenet_class_names, load_class_names


def output_units(model: Any, output: str | None = None) -> int | None:
    """Classes of the chosen output: a vector's length, or a per-pixel classifier's channels."""
    from reportgen.analyses.cam import classifier_head

    return head_units(classifier_head(model, output))


def head_units(head: Any) -> int | None:
    """Classes of a classifier head: a vector's length, or a per-pixel classifier's channels."""
    return head.classes if head.kind != "map" else None  # one sigmoid unit scores two classes


def class_names(loaded: Any, options: Any, units: int | None, folder: Any = None) -> list[str] | None:
    """Names for the model's outputs: --class-names, the model's own, the class folders', ImageNet's, or None.

    ImageNet names are used for keras.applications models and any model with
    exactly 1000 outputs. With None, labels read ``class 7``. ``units``: the chosen output's classes
    (:func:`head_units`, :func:`output_units`).
    """
    if options.class_names:
        names = load_class_names(options.class_names)
        if units is not None and len(names) != units:
            raise UserError(
                f"--class-names: '{options.class_names}' has {len(names)} names but the model "
                f"has {units} outputs; give exactly one name per output"
            )
        return names
    if loaded.class_names:
        return list(loaded.class_names)
    if folder is not None and folder.class_names and (units is None or len(folder.class_names) <= units):
        return list(folder.class_names)  # the class folders, in Keras' alphanumeric order
    if units == 1000:
        return imagenet_class_names()
    return None
