"""Image folders: every image file below a folder, labelled by its class sub-folder.

``--images DIR`` (repeatable) reads each folder recursively. As
``keras.utils.image_dataset_from_directory`` reads them, the immediate
sub-folders of a folder are classes, and the images below a sub-folder carry
its label; images directly in the folder are unlabelled. With
``--class-names FILE`` a sub-folder's name must be one of the model's class
names and takes its index; without it, the sub-folders in alphanumeric order
are classes 0, 1, 2, ... (Keras' convention).

Files are only listed here; they are read in batches by the data-set pass,
which skips unreadable ones and counts them (:class:`Skipped`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from reportgen import guard
from reportgen.errors import UserError
from reportgen.images.decode import IMAGE_SUFFIXES as SUFFIXES, load_pixels
from reportgen.images.fit import fit_to_input

TYPES = "PNG, JPEG, BMP, GIF or .npy"
EXAMPLES = 5  # names of files skipped for their type kept for the report


@dataclass
class ImageFolder:
    """The image files of one or more folders, with labels where sub-folders name classes."""

    files: list[str] = field(default_factory=list)
    labels: list[int | None] = field(default_factory=list)
    roots: list[int] = field(
        default_factory=list
    )  # which --images folder each file came from (leakage across them)
    class_names: list[str] | None = None  # index -> name, when labels exist
    # Files below the folders that were not read for their type (no image suffix; hidden files aside).
    skipped_by_type: int = 0
    skipped_by_type_examples: list[str] = field(default_factory=list)  # the first few, in scan order

    @property
    def labelled(self) -> bool:
        return any(label is not None for label in self.labels)

    def type_note(self, more: bool = True) -> str:
        """``"; 3 more files were skipped for their type (a.txt, b.txt, c.txt: not ...)"``, or ``""``."""
        n = self.skipped_by_type
        if not n:
            return ""
        shown = ", ".join(Path(p).name for p in self.skipped_by_type_examples[:3]) + (
            ", ..." if n > 3 else ""
        )
        return (
            f"; {n}{' more' if more else ''} file{'s were' if n != 1 else ' was'} skipped for "
            f"{'their' if n != 1 else 'its'} type ({shown}: not {TYPES})"
        )

    def _other(self, path: Path) -> None:
        self.skipped_by_type += 1
        if len(self.skipped_by_type_examples) < EXAMPLES:
            self.skipped_by_type_examples.append(str(path))

    def __len__(self) -> int:
        return len(self.files)


@dataclass
class Skipped:
    path: str
    reason: str
    kind: str = (
        "unreadable"  # what it is counted by: a refusal's reason (a FIFO, over the size cap), else unreadable
    )


def _images_below(folder: Path, result: ImageFolder | None = None) -> list[Path]:
    """The image files below ``folder``; the other (not hidden) files are counted in ``result``."""
    found = []
    for root, dirs, names in os.walk(folder):
        dirs.sort()
        for name in sorted(names):
            if name.startswith("."):
                continue
            if name.lower().endswith(SUFFIXES):
                found.append(Path(root) / name)
            elif result is not None:
                result._other(Path(root) / name)
    return found


def scan(
    dirs: Sequence[str], class_names: Sequence[str] | None = None, outputs: int | None = None
) -> ImageFolder:
    """List every image below ``dirs``; one line, exit 2, for a folder that cannot be used.

    ``class_names`` (from ``--class-names``) maps sub-folder names to class
    indices; ``outputs`` is the number of classes the model scores.
    """
    result = ImageFolder()
    inferred: dict[str, int] = {}
    seen: list[str] = []
    for d in dirs:
        folder = Path(d)
        if not guard.present(folder):
            raise UserError(f"--images '{d}' does not exist; give a folder of images")
        if os.path.isfile(folder):
            raise UserError(f"--images '{d}' is a file; give a folder (single images go to --image)")
        guard.check_folder(folder, "--images", "give a folder of images")
        subdirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
        # By name, as below a class folder: a FIFO or a link to /dev/zero named like an image is listed, then
        # refused as it is read (reportgen.guard) and counted by its reason, never silently passed over.
        entries = [p for p in sorted(folder.iterdir()) if not p.is_dir()]
        for path in entries:
            if path.name.lower().endswith(SUFFIXES):
                result.files.append(str(path))
                result.labels.append(None)
                result.roots.append(len(seen))
            elif not path.name.startswith("."):
                result._other(path)
        for sub in subdirs:
            images = _images_below(sub, result)
            if not images:
                continue
            if class_names is not None:
                if sub.name not in class_names:
                    shown = ", ".join(list(class_names)[:12]) + (", ..." if len(class_names) > 12 else "")
                    raise UserError(
                        f"--images: class folder '{sub.name}' in '{d}' is not among the "
                        f"--class-names ({shown}); rename the folder or add the name"
                    )
                index = list(class_names).index(sub.name)
            else:
                index = inferred.setdefault(sub.name, len(inferred))
            for path in images:
                result.files.append(str(path))
                result.labels.append(index)
                result.roots.append(len(seen))
        seen.append(str(d))
    if inferred and class_names is None:
        # alphanumeric order over every folder's classes, as Keras infers labels
        order = sorted(inferred)
        remap = {inferred[name]: i for i, name in enumerate(order)}
        result.labels = [None if label is None else remap[label] for label in result.labels]
        result.class_names = order
        if outputs is not None and len(order) > outputs:
            raise UserError(
                f"--images: {len(order)} class folders but the model scores {outputs} classes; "
                "give --class-names to map the folders to the model's classes"
            )
    elif class_names is not None:
        result.class_names = list(class_names)
    if not result.files:
        raise UserError(
            f"--images: no image files ({TYPES}) in {', '.join(dirs)}{result.type_note(more=False)}; "
            "give a folder of PNG or JPEG images"
        )
    return result


def sample_indices(folder: ImageFolder, n: int) -> list[int]:
    """``n`` images to show: one per class in turn (round robin), in file order; else the first ``n``."""
    if not folder.labelled:
        return list(range(min(n, len(folder))))
    by_class: dict = {}
    for i, label in enumerate(folder.labels):
        by_class.setdefault(label, []).append(i)
    queues = [by_class[k] for k in sorted(by_class, key=lambda k: (k is None, k if k is not None else 0))]
    chosen: list[int] = []
    depth = 0
    while len(chosen) < min(n, len(folder)):
        added = False
        for q in queues:
            if depth < len(q) and len(chosen) < n:
                chosen.append(q[depth])
                added = True
        if not added:
            break
        depth += 1
    return sorted(chosen)


def batches(
    folder: ImageFolder,
    spec,
    preprocessor,
    size: int = 32,
    skipped: list[Skipped] | None = None,
    inspect: Callable[[int, np.ndarray], None] | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray, list[int]]]:
    """(model input (B, H, W, C), labels (B,) with -1 for none, file indices) of the readable images, in
    batches.

    ``inspect(index, pixels)`` sees each readable file's decoded pixels (its own size, uint8) once, so that
    properties of the file itself (size, sharpness, a perceptual hash) need no second read.
    """
    skipped = skipped if skipped is not None else []
    xs: list[np.ndarray] = []
    ys: list[int] = []
    idx: list[int] = []
    for i, path in enumerate(folder.files):
        try:
            pixels = load_pixels(path)
            fitted = fit_to_input(pixels, spec)
        except UserError as exc:
            skipped.append(Skipped(path, str(exc).split(";")[0], getattr(exc, "reason", "unreadable")))
            continue
        if inspect is not None:
            inspect(i, pixels)
        xs.append(preprocessor.forward(fitted.astype(np.float32)).astype(np.float32))
        ys.append(-1 if folder.labels[i] is None else int(folder.labels[i]))
        idx.append(i)
        if len(xs) == size:
            yield np.stack(xs), np.asarray(ys), idx
            xs, ys, idx = [], [], []
    if xs:
        yield np.stack(xs), np.asarray(ys), idx


def load_inputs(folder: ImageFolder, indices: Sequence[int], spec, preprocessor) -> np.ndarray:
    """The model inputs of a few files of the folder (a gallery's CAMs), as :func:`batches` prepares them."""
    return np.stack(
        [
            preprocessor.forward(fit_to_input(load_pixels(folder.files[i]), spec).astype(np.float32)).astype(
                np.float32
            )
            for i in indices
        ]
    )
