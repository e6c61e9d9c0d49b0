"""The names users type, in one Keras-free place: the command line checks them without loading a model.

Each list is the registry its feature reads (the CAM methods in
:mod:`reportgen.analyses.cam`, the pattern styles in
:mod:`reportgen.analyses.patterns`, the preprocessing modes in
:mod:`reportgen.preprocessing`, the model files in :mod:`reportgen.loading`),
so a name can never be valid on the command line and unknown behind it.
"""

VERSION = "0.2.0"  # reportgen.__version__; here so that any module can read it without importing the package
CAM_METHODS = ("gradcam", "gradcampp", "layercam", "scorecam")
PATTERN_STYLES = ("classic", "robust")
PREPROCESS_MODES = ("auto", "none", "unit", "caffe", "tf", "torch")
MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")
PREPROCESS_FORMS = "scale=S,offset=O or mean=R,G,B,std=R,G,B"


def parse_preprocess(text: str) -> tuple[str, dict]:
    """A ``--preprocess`` value: ``(mode, {})`` for a named mode, ``("scale", {scale, offset})`` or
    ``("meanstd", {mean, std})`` for the numeric forms. Raises ``ValueError`` with the one-line reason
    (the command line turns it into exit 2; :class:`reportgen.preprocessing.Preprocessor` into a UserError).
    """
    import math

    value = str(text).strip()
    if value in PREPROCESS_MODES:
        return value, {}
    if "=" not in value:
        raise _PreprocessError(
            f"--preprocess '{text}' is not known; use one of {', '.join(PREPROCESS_MODES)}, "
            f"{PREPROCESS_FORMS}"
        )
    parts: dict[str, list[float]] = {}
    key = None
    for token in value.replace(" ", "").split(","):
        if "=" in token:
            key, _, token = token.partition("=")
            if key not in ("scale", "offset", "mean", "std") or key in parts:
                raise _PreprocessError(
                    f"--preprocess '{text}': '{key}' is not expected here; write {PREPROCESS_FORMS}"
                )
            parts[key] = []
        try:
            number = float(token)
        except ValueError:
            raise _PreprocessError(
                f"--preprocess '{text}': '{token}' is not a number; write {PREPROCESS_FORMS}"
            ) from None
        if not math.isfinite(number):
            raise _PreprocessError(f"--preprocess '{text}': '{token}' is not finite; give finite numbers")
        parts[key].append(number)
    if set(parts) <= {"scale", "offset"} and "scale" in parts:
        if len(parts["scale"]) != 1 or len(parts.get("offset", [0.0])) != 1:
            raise _PreprocessError(
                f"--preprocess '{text}': scale and offset take one number each, as scale=0.0078125,offset=-1"
            )
        if parts["scale"][0] == 0:
            raise _PreprocessError(
                f"--preprocess '{text}': a scale of 0 erases the image; give a non-zero scale"
            )
        scale, offset = parts["scale"][0], parts.get("offset", [0.0])[0]
        _finite_input(text, [(offset, 255.0 * scale + offset)])
        return "scale", {"scale": scale, "offset": offset}
    if set(parts) == {"mean", "std"}:
        mean, std = parts["mean"], parts["std"]
        if len(mean) not in (1, 3) or len(std) not in (1, 3):
            raise _PreprocessError(
                f"--preprocess '{text}': mean and std take 1 (grey) or 3 (R,G,B) numbers each, "
                "on 0-255 pixels, as mean=123.7,116.3,103.5,std=58.4,57.1,57.4"
            )
        if any(v <= 0 for v in std):
            raise _PreprocessError(f"--preprocess '{text}': every std must be positive")
        width = max(len(mean), len(std))
        m3, s3 = (mean * 3)[:width] if len(mean) == 1 else mean, (std * 3)[:width] if len(std) == 1 else std
        _finite_input(text, [((0.0 - m) / sd, (255.0 - m) / sd) for m, sd in zip(m3, s3)])
        return "meanstd", {"mean": mean, "std": std}
    raise _PreprocessError(f"--preprocess '{text}': write {PREPROCESS_FORMS} (pixels 0-255)")


FLOAT32_MAX = 3.4028234663852886e38


def _finite_input(text: str, ends: list[tuple[float, float]]) -> None:
    """Refuse a ``--preprocess`` whose model input over pixels 0-255 is not finite in float32 (the model's
    input): ``scale=1e300,offset=1e300`` passes as numbers, then overflows to Inf and every probability to
    NaN. The map is affine, so its ends (pixel 0 and 255) bound it."""
    import math

    for lo, hi in ends:
        for v in (lo, hi):
            if not math.isfinite(v) or abs(v) > FLOAT32_MAX:
                raise _PreprocessError(
                    f"--preprocess '{text}' maps pixels 0-255 to {min(lo, hi):.3g}..{max(lo, hi):.3g}, "
                    "beyond what a float32 model input holds (about 3.4e38); give values that "
                    "keep the input finite, as scale=0.0078125,offset=-1"
                )


class _PreprocessError(ValueError):
    """A ``--preprocess`` value that cannot be parsed; its message is the one line the user sees."""


HUB_EXTRA = 'pip install "reportgen[hub]"'
_HANDLE = r"^[A-Za-z][A-Za-z0-9+.-]*://"  # kaggle://, hf://, modelscope://, gs://: a place on the network


def is_hub_preset(folder) -> bool:
    """A keras-hub preset directory (what ``save_to_preset`` writes): a folder with a ``config.json``.

    keras-hub itself recognises a preset by that file alone (its loaders read
    the format from it), so a folder with one is a single MODEL, never a
    folder of model files.
    """
    from pathlib import Path

    folder = Path(folder)
    return folder.is_dir() and (folder / "config.json").is_file()


def is_remote_handle(spec: str) -> bool:
    """A model on the network (``kaggle://...``, ``hf://...``): reportgen works offline and never fetches
    one."""
    import re

    return bool(re.match(_HANDLE, str(spec)))


def remote_handle_message(spec: str) -> str:
    """The one-line error for a keras-hub preset handle: what is wrong (it needs the network) and the fix."""
    return (
        f"'{spec}' is a keras-hub preset handle, which needs the network, and reportgen works offline; "
        "download it elsewhere with "
        f"keras_hub.models.ImageClassifier.from_preset('{spec}').save_to_preset(DIR) "
        f"(or keras_hub.models.Backbone) and pass DIR"
    )


def is_savedmodel(folder) -> bool:
    """A TensorFlow SavedModel folder (Keras 3 cannot load it as a model)."""
    from pathlib import Path

    folder = Path(folder)
    return (folder / "saved_model.pb").exists() or (folder / "saved_model.pbtxt").exists()


CODE_SPEC_PATTERN = r"^([A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)*):([A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)*)$"


def is_code_spec(spec: str) -> bool:
    """``module:callable`` (and no file of that name)."""
    import re
    from pathlib import Path

    return bool(re.match(CODE_SPEC_PATTERN, spec)) and not Path(spec).exists()


def is_model_path(spec: str) -> bool:
    """A MODEL that names a file: a model suffix, a path separator, or an existing path."""
    import os
    from pathlib import Path

    return Path(spec).suffix.lower() in MODEL_SUFFIXES or "/" in spec or os.sep in spec or Path(spec).exists()


def missing_model(spec: str, *, checked: bool = False) -> str | None:
    """The one-line error for a MODEL that names a file that does not exist (None otherwise), Keras-free:
    the command line answers it before importing a backend. ``checked``: the caller knows it is a
    missing file; just the message."""

    # lexists: a symbolic link loop or a dangling link is there, and told by its own reason (reportgen.guard)
    if not checked and (
        is_code_spec(spec) or not is_model_path(spec) or _present(spec) or is_remote_handle(spec)
    ):
        return None
    return (
        f"model file '{spec}' does not exist; check the path, or give a keras.applications name such as "
        "vgg16 or a module:callable"
    )


def _present(spec: str) -> bool:
    from reportgen.guard import present

    return present(spec)


def readable(text: str) -> str:
    """A file name as text a page can hold: bytes that are not UTF-8 (lone surrogates in Python) become
    U+FFFD."""
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
