"""The images a report analyses, prepared: fitted to the model's input and preprocessed
(:class:`PreparedImage`), from ``--image`` files, ``--images`` folders, the model's held-out samples
or a stand-in photo."""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from reportgen.errors import UserError
from reportgen.images.decode import load_pixels
from reportgen.images.fit import InputSpec, check_size, fit_to_input, image_input_spec, require_image_input
from reportgen.images.folders import sample_indices

if TYPE_CHECKING:
    from reportgen.preprocessing import Preprocessor

MAX_SAMPLES = 4  # demo samples: one per class, up to this many
SAMPLE_PHOTO = "grace_hopper.jpg"


@dataclass
class PreparedImage:
    """One image as shown in the report and as fed to the model."""

    path: str  # file path, or a description for built-in samples
    label: str | None  # the true label when known (demo samples), else None
    pixels: np.ndarray  # uint8 H x W x C (C = model channels) after fit: what the report shows
    input: np.ndarray  # float32 H x W x C: one example of model input, after preprocessing
    preprocess: str  # description of the preprocessing mode
    value_range: tuple[float, float]  # min, max of ``input``
    mode: str = "unit"  # the preprocessing mode applied
    steps: list[str] = field(default_factory=list)  # conversions applied, in order
    original_size: tuple[int, int] | None = None  # width, height as loaded
    source: str = "option"  # where the preprocessing came from: option, model, measured or default
    stand_in: bool = False  # a photo reportgen picked because no image was given: not this model's data
    option: str = ""  # the preprocessing as a --preprocess value

    @property
    def guessed(self) -> bool:
        return self.source == "default"

    @property
    def name(self) -> str:
        """Short name for captions: the file's name, or the sample description."""
        return os.path.basename(self.path) if os.path.sep in self.path else self.path

    def describe(self) -> dict:
        """The ``preprocess`` entry of report.json for this image."""
        return {
            "mode": self.mode,
            "description": self.preprocess,
            "source": self.source,
            "option": self.option or self.mode,
            "steps": list(self.steps),
            "value_range": [float(self.value_range[0]), float(self.value_range[1])],
        }


def prepare(
    pixels: np.ndarray,
    spec: InputSpec,
    preprocessor: Preprocessor,
    path: str,
    label: str | None = None,
    steps: Sequence[str] = (),
) -> PreparedImage:
    """Fit loaded pixels to the model and preprocess them."""
    steps = list(steps)
    check_size(pixels, spec, path)
    original = (int(pixels.shape[1]), int(pixels.shape[0]))
    fitted = fit_to_input(pixels, spec, steps)
    x = preprocessor.forward(fitted.astype(np.float32)).astype(np.float32)
    return PreparedImage(
        path=path,
        label=label,
        pixels=fitted,
        input=x,
        preprocess=preprocessor.describe(),
        value_range=(float(x.min()), float(x.max())),
        mode=preprocessor.mode,
        steps=steps,
        original_size=original,
        source=preprocessor.source,
        option=preprocessor.option_text(),
    )


def load_image(path: str, spec: InputSpec, preprocessor: Preprocessor) -> PreparedImage:
    steps: list[str] = []
    pixels = load_pixels(path, steps)
    return prepare(pixels, spec, preprocessor, str(path), None, steps)


def sample_photo_path() -> str:
    """Matplotlib's bundled photo of Grace Hopper: a real RGB photo, no network (found without importing
    Matplotlib where its files are where a package's files usually are)."""
    spec = importlib.util.find_spec("matplotlib")
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(folder) / "mpl-data" / "sample_data" / SAMPLE_PHOTO
        if path.is_file():
            return str(path)
    from reportgen.errors import UserError

    raise UserError(
        "no image was given and Matplotlib's sample photo is not installed; pass --image or --images"
    )


def _pick_samples(samples: Sequence) -> list:
    """One held-out sample per class, up to :data:`MAX_SAMPLES`, in the given order (unlabelled ones: all)."""
    if all(label is None for _p, label in samples):
        return list(samples)
    chosen, seen = [], set()
    for pixels, label in samples:
        key = str(label)
        if key in seen:
            continue
        seen.add(key)
        chosen.append((pixels, label))
        if len(chosen) == MAX_SAMPLES:
            break
    return chosen


def prepare_inputs(
    loaded: Any, paths: Sequence[str], preprocessor: Preprocessor | None, folder: Any = None, sample: int = 4
) -> list[PreparedImage]:
    """The images the report analyses, fitted and preprocessed.

    ``paths`` (``--image`` files) if given; else ``sample`` images of the ``--images`` ``folder``; else the
    loaded model's held-out samples (demo); else Matplotlib's Grace Hopper photo for image models. Returns
    ``[]`` for a model whose input is not an image and no ``--image`` was given.
    """
    paths = list(paths or ())
    spec = image_input_spec(loaded.model)
    if spec is None:
        if paths:
            require_image_input(loaded.model, "--image")
        return []
    if preprocessor is None:
        raise ValueError("an image model's inputs need a preprocessor")
    if paths:
        return [load_image(p, spec, preprocessor) for p in paths]
    if folder is not None:
        return folder_sample(folder, spec, preprocessor, sample)
    samples = _pick_samples(getattr(loaded, "sample_images", None) or [])
    if samples:
        return [
            prepare(
                np.asarray(px),
                spec,
                preprocessor,
                f"held-out sample {i + 1}" if label is not None else f"image {i + 1} (array)",
                None if label is None else str(label),
            )
            for i, (px, label) in enumerate(samples)
        ]
    photo = load_image(sample_photo_path(), spec, preprocessor)
    photo.stand_in = True
    return [photo]


def folder_sample(folder: Any, spec: InputSpec, preprocessor: Preprocessor, n: int) -> list[PreparedImage]:
    """The images of ``--images`` folders shown in the report: ``n`` of them, one per class in turn."""
    names = folder.class_names
    shown = []
    for i in sample_indices(folder, n * 2):
        if len(shown) == n:
            break
        try:
            image = load_image(folder.files[i], spec, preprocessor)
        except UserError:
            continue  # unreadable: the data-set pass counts and names it
        label = folder.labels[i]
        image.label = (
            None if label is None else (names[label] if names and label < len(names) else str(label))
        )
        shown.append(image)
    return shown
