"""The names users type, in one Keras-free place: the command line checks them without loading a model.

Each list is the registry its feature reads (the CAM methods in
:mod:`reportgen.analyses.cam`, the pattern styles in
:mod:`reportgen.analyses.patterns`, the preprocessing modes in
:mod:`reportgen.preprocessing`, the model files in :mod:`reportgen.loading`),
so a name can never be valid on the command line and unknown behind it.
"""

CAM_METHODS = ("gradcam", "gradcampp", "layercam", "scorecam")
PATTERN_STYLES = ("classic", "robust")
PREPROCESS_MODES = ("auto", "none", "unit", "caffe", "tf", "torch")
MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")


def is_savedmodel(folder) -> bool:
    """A TensorFlow SavedModel folder (Keras 3 cannot load it as a model)."""
    from pathlib import Path

    folder = Path(folder)
    return (folder / "saved_model.pb").exists() or (folder / "saved_model.pbtxt").exists()


def readable(text: str) -> str:
    """A file name as text a page can hold: bytes that are not UTF-8 (lone surrogates in Python) become U+FFFD."""
    return str(text).encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def folder_name(name: str) -> str:
    """A report folder's name from a model's name: Keras accepts any string, a file system does not.

    Path separators and control characters become ``_``; a name that is
    empty, ``.`` or ``..`` becomes ``model``. The name is otherwise kept
    (spaces, unicode), so a folder still reads as the model it holds.
    """
    import re

    import hashlib

    cleaned = re.sub(r"[\x00-\x1f/\\]", "_", str(name)).strip()
    # A file name that is not UTF-8 reaches Python as lone surrogates: keep its bytes, as the OS gave them.
    raw = cleaned.encode("utf-8", "surrogateescape")
    # File systems count bytes (255 a name); keep room for the temporary folder's prefix and suffix.
    # A long name is cut and given a hash of the whole, so two names alike in their first bytes stay apart.
    if len(raw) > 200:
        raw = raw[:191] + b"-" + hashlib.sha256(raw).hexdigest()[:8].encode()
    cleaned = raw.decode("utf-8", "ignore").strip()
    return "model" if cleaned in ("", ".", "..") else cleaned
