"""Load the model to audit: a ``.keras`` / ``.h5`` file, or a ``keras.applications`` name.

Model files are untrusted input: Keras' safe mode stays on (a Lambda layer that
carries Python code is refused) unless the user passes ``--unsafe`` for a file
they trust. Every failure becomes a one-line :class:`UserError`.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path
from typing import Callable

import keras

from reportgen.context import LoadedModel
from reportgen.errors import UserError

MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _key(name: str) -> str:
    return name.lower().replace("_", "").replace("-", "")


def architectures() -> dict[str, Callable]:
    """``keras.applications`` constructors by normalised name (``mobilenet_v2`` -> MobileNetV2)."""
    found = {}
    for attr in dir(keras.applications):
        obj = getattr(keras.applications, attr)
        if attr[:1].isupper() and callable(obj):
            found[_key(attr)] = obj
    return found


def is_model_path(spec: str) -> bool:
    return Path(spec).suffix.lower() in MODEL_SUFFIXES or "/" in spec or Path(spec).exists()


def load(spec: str, weights: str = "imagenet", unsafe: bool = False) -> LoadedModel:
    """Load ``spec`` (a path or an architecture name) into a :class:`LoadedModel`."""
    if is_model_path(spec):
        return load_file(Path(spec), unsafe=unsafe)
    return load_architecture(spec, weights)


def load_file(path: Path, unsafe: bool = False) -> LoadedModel:
    if not path.exists():
        raise UserError(f"model file '{path}' does not exist; check the path, or give a keras.applications name such as vgg16")
    if path.is_dir():
        raise UserError(f"'{path}' is a directory; give a .keras or .h5 model file inside it")
    if path.suffix.lower() not in MODEL_SUFFIXES:
        raise UserError(f"'{path}' is not a .keras or .h5 file; save the model with model.save('model.keras')")
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=not unsafe)
    except Exception as exc:  # Keras raises many types for bad files
        raise _explain_load_error(path, exc, unsafe) from None
    if not isinstance(model, keras.Model):
        raise UserError(f"'{path}' holds no Keras model (only weights?); save the whole model with model.save()")
    return LoadedModel(model=model, name=path.stem, source=str(path), sha256=sha256(path), unsafe=unsafe)


def _explain_load_error(path: Path, exc: Exception, unsafe: bool) -> UserError:
    text = f"{type(exc).__name__}: {exc}"
    lowered = text.lower()
    if ("safe_mode" in lowered or "lambda" in lowered) and not unsafe:
        return UserError(
            f"'{path}' contains a Lambda layer with Python code, which Keras' safe mode refuses to run; "
            "pass --unsafe only if you trust this file"
        )
    if isinstance(exc, zipfile.BadZipFile) or "zip" in lowered:
        return UserError(
            f"'{path}' is not a valid .keras archive (truncated or not a model); re-save it with model.save('model.keras')"
        )
    if "no model config" in lowered or "no model found" in lowered:
        return UserError(f"'{path}' holds weights only, not a model; save the whole model with model.save()")
    if "unknown layer" in lowered or "could not locate" in lowered:
        return UserError(
            f"'{path}' uses a custom layer that Keras cannot find ({_first_line(exc)}); register it or re-save the model"
        )
    return UserError(
        f"cannot read '{path}' as a Keras model ({_first_line(exc)}); the file may be truncated or not a .keras/.h5 model"
    )


def _first_line(exc: Exception) -> str:
    lines = str(exc).strip().splitlines()
    line = lines[0] if lines else type(exc).__name__
    return line[:160]


def load_architecture(name: str, weights: str = "imagenet") -> LoadedModel:
    """Build a ``keras.applications`` model; ``weights`` is imagenet, none or a file path."""
    constructors = architectures()
    key = _key(name)
    if key not in constructors:
        known = "vgg16, vgg19, resnet50, mobilenet_v2, efficientnet_b0, densenet121, inception_v3, xception, convnext_tiny"
        raise UserError(f"unknown architecture '{name}' and no such model file; give a .keras/.h5 file or one of: {known}, ...")
    build = constructors[key]
    label = weights
    digest = None
    if weights.lower() == "imagenet":
        try:
            model = build(weights="imagenet")
        except Exception as exc:
            text = str(exc)
            reason = "the download failed; no network?" if "fetch failure" in text or "Errno" in text else _first_line(exc)
            raise UserError(
                f"could not get the ImageNet weights for {name} ({reason}); offline, use --weights none "
                "for a freshly initialised model or --weights PATH for a local weights file"
            ) from None
        label = "imagenet"
    elif weights.lower() == "none":
        model = build(weights=None)
        label = "none"
    else:
        path = Path(weights)
        if not path.is_file():
            raise UserError(f"--weights '{weights}' is neither imagenet, none nor an existing weights file; check the path")
        model = build(weights=None)
        try:
            model.load_weights(path)
        except Exception as exc:
            raise UserError(f"cannot load weights '{path}' into {name} ({_first_line(exc)}); use weights saved for this architecture") from None
        digest = sha256(path)
    return LoadedModel(
        model=model,
        name=name.lower(),
        source=f"keras.applications.{build.__name__} (weights={label})",
        sha256=digest,
        architecture=key,
        weights=label,
    )
