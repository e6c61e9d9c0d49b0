"""Which models: the MODEL arguments (files, folders, globs, architecture names, ``module:callable``)
expanded in natural order, and the report folder each model gets."""

from __future__ import annotations

import glob
import os
import re
from pathlib import Path
from typing import Sequence

from reportgen.errors import UserError
from reportgen.names import MODEL_SUFFIXES, is_hub_preset, is_savedmodel

INDEX_FILES = ("index.html", "index.json")  # the index's files: no model's folder takes these names


def natural_key(text: str) -> list:
    """Sort key that orders digit runs by value: ``epoch_2`` before ``epoch_10``."""
    return [int(part) if part.isdigit() else part.casefold() for part in re.split(r"(\d+)", str(text))]


def is_pattern(spec: str) -> bool:
    """A glob reportgen expands itself (``"ckpt/*.keras"``); an existing path is never one."""
    return any(c in spec for c in "*?[") and not os.path.lexists(spec)


def _is_savedmodel(folder: Path) -> bool:
    return is_savedmodel(folder)


def is_folder(spec: str) -> bool:
    """A folder of model files (a TensorFlow SavedModel folder is a single MODEL, refused with its own
    message; a keras-hub preset directory is a single MODEL too)."""
    p = Path(spec)
    try:
        return p.is_dir() and not _is_savedmodel(p) and not is_hub_preset(p)
    except OSError:  # behind a folder this process may not search: a single MODEL, refused by its reason
        return False


def is_model_file(path: str | Path) -> bool:
    """A ``.keras``/``.h5``/``.hdf5`` file; ``*.weights.h5`` holds weights only and is not a model."""
    name = Path(path).name.lower()
    return (
        Path(path).is_file()
        and name.endswith(MODEL_SUFFIXES)
        and not name.endswith(".weights.h5")
        and not name.startswith(".")
    )


def _named_model(path: str | Path) -> bool:
    """Named like a model file and not a folder: what a folder or glob of models contributes. A FIFO or a
    link to /dev/zero named ``x.keras`` is listed, then refused before any work (reportgen.guard), never
    silently left out of the run."""
    name = Path(path).name.lower()
    if not name.endswith(MODEL_SUFFIXES) or name.endswith(".weights.h5") or name.startswith("."):
        return False
    try:
        return not Path(path).is_dir()
    except OSError:
        return True


def is_many(specs: Sequence[str]) -> bool:
    """Several MODEL arguments, or one that is a folder or a glob: a run with an index."""
    return len(specs) > 1 or any(is_folder(s) or is_pattern(s) for s in specs)


def expand(specs: Sequence[str]) -> list[str]:
    """The models named by the MODEL arguments, in order; folders and globs in natural sort order.

    A folder contributes its model files (not its sub-folders'); a glob its
    matching model files (``**`` recurses). A folder or glob without a model
    file is bad input (one line, nothing written). The same file named twice
    (``a.keras`` and ``*.keras``) is reported once, where it first appears.
    """
    found: list[str] = []
    for spec in specs:
        if is_folder(spec):
            files = [p for p in Path(spec).iterdir() if _named_model(p)]
            if not files:
                raise UserError(
                    f"'{spec}' is a directory without a model file (.keras, .h5, .hdf5; its "
                    "sub-directories are not searched); give a model file, a folder of model files, "
                    "or a glob such as 'runs/**/*.keras'"
                )
            found.extend(str(p) for p in sorted(files, key=lambda p: natural_key(p.name)))
        elif is_pattern(spec):
            matches = glob.glob(spec, recursive=True)
            files = [m for m in matches if _named_model(m)]
            if not files:
                what = (
                    f"{len(matches)} match(es), none a model file (.keras, .h5, .hdf5)"
                    if matches
                    else "no file matches"
                )
                raise UserError(
                    f"'{spec}': {what}; check the pattern (quote it so that reportgen expands it)"
                )
            found.extend(sorted(files, key=natural_key))
        else:
            found.append(spec)
    unique, seen = [], set()
    for spec in found:
        key = os.path.realpath(spec) if os.path.isfile(spec) else spec
        if key not in seen:
            seen.add(key)
            unique.append(spec)
    return unique


def spec_name(spec: str) -> str:
    """The report folder a model gets on its own: file stem, callable name or architecture name."""
    from reportgen.loading import CODE_SPEC, is_code_spec, is_model_path

    if is_code_spec(spec):
        return CODE_SPEC.match(spec).group(2).rsplit(".", 1)[-1]
    if is_model_path(spec):
        return Path(spec).name if Path(spec).is_dir() else Path(spec).stem  # a preset directory: its name
    return spec.lower()


def assign_names(specs: Sequence[str]) -> list[str]:
    """Distinct folder names, in order: a repeated name gets ``-2``, ``-3``, ... (case-insensitively
    distinct, for case-insensitive file systems), never another model's own name."""
    bases = [spec_name(s) for s in specs]
    own = {b.casefold() for b in bases}
    taken = set(INDEX_FILES)  # a model called index.json must not take the index's place
    names = []
    for base in bases:
        name, k = base, 2
        if name.casefold() in taken:
            while f"{base}-{k}".casefold() in taken or f"{base}-{k}".casefold() in own:
                k += 1
            name = f"{base}-{k}"
        taken.add(name.casefold())
        names.append(name)
    return names
