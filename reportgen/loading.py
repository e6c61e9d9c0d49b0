"""Load the model to audit: a ``.keras`` / ``.h5`` file, a ``keras.applications`` name, or Python code.

- **A file.** Model files are untrusted input: Keras' safe mode stays on (a
  Lambda layer that carries Python code is refused) unless the user passes
  ``--unsafe`` for a file they trust.
- **An architecture name** (``vgg16``), with ``--weights imagenet|none|PATH``.
- **Code**, ``module:callable`` (as ``uvicorn app:app``): the module is
  imported from the current directory or from installed packages and the
  callable -- a ``keras.Model`` subclass or a factory -- is called with no
  arguments. This RUNS the named code, as ``python -m`` would; ``--weights
  FILE`` then loads a ``.weights.h5`` into the result.

A model that was never built (a ``Sequential`` without an ``Input``, a
subclassed model never called) is built with ``--input-shape H,W,C``.
Every failure becomes a one-line :class:`UserError`.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import re
import sys
import zipfile
from pathlib import Path
from typing import Any, Callable

from reportgen.context import LoadedModel
from reportgen.errors import UserError, one_line

from reportgen.names import MODEL_SUFFIXES, is_savedmodel, readable  # noqa: E402
CODE_SPEC = re.compile(r"^([A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)*):([A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)*)$")


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
    import keras

    found = {}
    for attr in dir(keras.applications):
        obj = getattr(keras.applications, attr)
        if attr[:1].isupper() and callable(obj):
            found[_key(attr)] = obj
    return found


def is_code_spec(spec: str) -> bool:
    return bool(CODE_SPEC.match(spec)) and not Path(spec).exists()


def is_model_path(spec: str) -> bool:
    return Path(spec).suffix.lower() in MODEL_SUFFIXES or "/" in spec or Path(spec).exists()


def load(spec: str, weights: str = "imagenet", unsafe: bool = False,
         input_shape: tuple[int, ...] | None = None) -> LoadedModel:
    """Load ``spec`` (a path, an architecture name or ``module:callable``) into a :class:`LoadedModel`."""
    from reportgen import backend

    backend.import_keras()
    if is_code_spec(spec):
        loaded = load_code(spec, weights=None if weights == "imagenet" else weights, input_shape=input_shape)
    elif is_model_path(spec):
        loaded = load_file(Path(spec), unsafe=unsafe, input_shape=input_shape)
    else:
        loaded = load_architecture(spec, weights)
    return loaded


# --- files ---------------------------------------------------------------------------

def _is_weights_only(path: Path) -> bool:
    return path.name.lower().endswith(".weights.h5")


def load_file(path: Path, unsafe: bool = False, input_shape: tuple[int, ...] | None = None) -> LoadedModel:
    import keras

    if not path.exists():
        raise UserError(f"model file '{path}' does not exist; check the path, or give a keras.applications "
                        "name such as vgg16 or a module:callable")
    if path.is_dir():
        if is_savedmodel(path):
            raise UserError(
                f"'{path}' is a TensorFlow SavedModel folder, which Keras 3 cannot load as a model; convert it: "
                "in TF 2.15 / tf_keras load it with tf.keras.models.load_model and save it with "
                "model.save('model.keras'), or give the code that builds it as module:callable --weights FILE")
        raise UserError(f"'{path}' is a directory; give a .keras or .h5 model file inside it")
    if _is_weights_only(path):
        raise UserError(
            f"'{path}' holds weights only, not a model; give the architecture and the weights: "
            f"reportgen ARCH --weights {path} (a keras.applications name) or "
            f"reportgen module:callable --weights {path}")
    if path.suffix.lower() not in MODEL_SUFFIXES:
        raise UserError(f"'{path}' is not a .keras or .h5 file; save the model with model.save('model.keras')")
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=not unsafe)
    except Exception as exc:  # Keras raises many types for bad files
        raise _explain_load_error(path, exc, unsafe) from None
    if not isinstance(model, keras.Model):
        raise UserError(f"'{path}' holds no Keras model (only weights?); save the whole model with model.save()")
    model = ensure_built(model, input_shape, str(path))
    return LoadedModel(model=model, name=readable(path.stem), source=readable(str(path)), sha256=sha256(path),
                       unsafe=unsafe)


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
            f"'{path}' uses a custom layer or model class that Keras cannot find ({_first_line(exc)}); register it "
            "with keras.saving.register_keras_serializable, or give the code as module:callable --weights FILE"
        )
    if "input_shape" in lowered or "has not yet been built" in lowered or "'nonetype'" in lowered:
        return UserError(f"'{path}' holds a model saved before it was built (no input shape); "
                         "give it with --input-shape H,W,C")
    return UserError(
        f"cannot read '{path}' as a Keras model ({_first_line(exc)}); the file may be truncated or not a .keras/.h5 model"
    )


def _first_line(exc: BaseException) -> str:
    return one_line(exc, 160)


# --- building ----------------------------------------------------------------------------

def _has_input_shape(model: Any) -> bool:
    from reportgen import graph

    if graph.is_traceable(model):
        try:
            return bool(model.inputs)
        except (AttributeError, ValueError):
            return False
    return graph.declared_input_shapes(model) is not None


def ensure_built(model: Any, input_shape: tuple[int, ...] | None, what: str) -> Any:
    """A model that knows its input shape: built with ``--input-shape`` when it was never built."""
    import keras
    import numpy as np

    if input_shape is None:
        if _has_input_shape(model):
            return model
        raise UserError(f"'{what}' was never built, so its input shape is unknown; "
                        "give it with --input-shape H,W,C")
    try:
        model(np.zeros((1,) + tuple(input_shape), dtype="float32"), training=False)
    except Exception as exc:
        raise UserError(f"--input-shape {','.join(map(str, input_shape))} does not fit '{what}' "
                        f"({_first_line(exc)}); give the shape the model takes") from None
    if isinstance(model, keras.Sequential) and not _has_input_shape(model):
        rebuilt = keras.Sequential([keras.Input(tuple(input_shape))] + list(model.layers), name=model.name)
        return rebuilt
    return model


# --- code -----------------------------------------------------------------------------------

def load_code(spec: str, weights: str | None = None, input_shape: tuple[int, ...] | None = None) -> LoadedModel:
    """Import ``module``, call ``callable`` with no arguments, and load ``weights`` into the result."""
    import keras

    module_name, attr = CODE_SPEC.match(spec).groups()
    cwd = str(Path.cwd())
    added = cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            raise UserError(f"cannot import '{module_name}' for {spec} ({type(exc).__name__}: {_first_line(exc)}); "
                            "run reportgen from the folder that holds it, or install it") from None
    finally:
        if added:
            with contextlib.suppress(ValueError):
                sys.path.remove(cwd)
    target: Any = module
    for part in attr.split("."):
        if not hasattr(target, part):
            raise UserError(f"cannot import '{attr}' from '{module_name}' for {spec}: no such name; "
                            "check the spelling after the colon")
        target = getattr(target, part)
    if not callable(target):
        raise UserError(f"{spec} is not callable; name a keras.Model subclass or a function that returns a model")
    try:
        model = target()
    except Exception as exc:
        raise UserError(f"{spec}() raised {type(exc).__name__}: {_first_line(exc)}; it must build the model "
                        "when called with no arguments") from None
    if not isinstance(model, keras.Model):
        raise UserError(f"{spec}() returned {type(model).__name__}, not a Keras model; "
                        "it must return a keras.Model (or be a keras.Model subclass)")
    if weights is not None and weights.lower() == "none":
        weights = None
    if weights is None and input_shape is None and not _has_input_shape(model):
        raise UserError(f"{spec}() returned a model that was never built, so its input shape is unknown; "
                        "give it with --input-shape H,W,C")
    model = ensure_built(model, input_shape, spec)
    digest = None
    if weights is not None:
        path = Path(weights)
        if not path.is_file():
            raise UserError(f"--weights '{weights}' does not exist; give a .weights.h5 file saved with "
                            "model.save_weights()")
        load_weights_checked(model, path, spec)
        digest = sha256(path)
    name = attr.rsplit(".", 1)[-1]
    source = f"{spec} (code, weights={weights})" if weights else f"{spec} (code, freshly built)"
    return LoadedModel(model=model, name=name, source=source, sha256=digest, weights=weights or "none")


def load_weights_checked(model: Any, path: Path, what: str) -> None:
    """``model.load_weights(path)`` with a one-line error naming the first layer that does not match."""
    try:
        model.load_weights(path)
        return
    except Exception as exc:
        reason = _first_line(exc)
    mismatch = first_mismatch(model, path)
    detail = mismatch or reason
    raise UserError(f"the weights in '{path}' do not fit {what} ({detail}); use weights saved from this "
                    "architecture") from None


def _h5_arrays(path: Path) -> dict[str, tuple[tuple, str | None]]:
    """Every weight array in a Keras weights file: key -> (shape, name of the layer that saved it)."""
    import h5py

    out: dict[str, tuple[tuple, str | None]] = {}
    with h5py.File(path, "r") as fh:
        def visit(key: str, obj: Any) -> None:
            if isinstance(obj, h5py.Dataset):
                group = obj.parent
                name = group.attrs.get("name")
                if name is None and group.parent is not None:
                    name = group.parent.attrs.get("name")
                out[key] = (tuple(obj.shape), name.decode() if isinstance(name, bytes) else name)

        fh.visititems(visit)
    return out


def first_mismatch(model: Any, path: Path) -> str | None:
    """The first layer, in model order, whose weights the file does not hold in the model's shapes.

    Keras stores weights by the model's attribute structure; saving the model
    itself gives the keys and shapes it expects, which are compared with the
    file's key by key.
    """
    import tempfile

    from reportgen import graph

    try:
        with tempfile.TemporaryDirectory() as tmp:
            own = Path(tmp) / "expected.weights.h5"
            model.save_weights(own)
            expected = _h5_arrays(own)
        stored = _h5_arrays(path)
    except Exception:
        return None
    bad: dict[str, str] = {}
    for key, (shape, name) in expected.items():
        got = stored.get(key)
        if got is None:
            bad.setdefault(name, f"the file holds no weights for it (expected {shape})")
        elif got[0] != shape:
            bad.setdefault(name, f"its weights have shape {shape}, the file's {got[0]}")
    if not bad and len(stored) > len(expected):
        return f"the file holds {len(stored)} weight arrays, the model {len(expected)}"
    for ref in graph.walk(model):
        if ref.name in bad and not graph.children(ref.layer):
            return f"layer '{ref.path}': {bad[ref.name]}"
    if bad:
        name, why = next(iter(bad.items()))
        return f"layer '{name}': {why}"
    return None


# --- keras.applications --------------------------------------------------------------------

def load_architecture(name: str, weights: str = "imagenet") -> LoadedModel:
    """Build a ``keras.applications`` model; ``weights`` is imagenet, none or a file path."""
    constructors = architectures()
    key = _key(name)
    if key not in constructors:
        known = "vgg16, vgg19, resnet50, mobilenet_v2, efficientnet_b0, densenet121, inception_v3, xception, convnext_tiny"
        raise UserError(f"unknown architecture '{name}' and no such model file; give a .keras/.h5 file, a "
                        f"module:callable, or one of: {known}, ...")
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
        load_weights_checked(model, path, name)
        digest = sha256(path)
    return LoadedModel(
        model=model,
        name=name.lower(),
        source=f"keras.applications.{build.__name__} (weights={label})",
        sha256=digest,
        architecture=key,
        weights=label,
    )
