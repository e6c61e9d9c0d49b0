"""Load the model to audit: a ``.keras`` / ``.h5`` file, a keras-hub preset directory, a
``keras.applications`` name, or Python code.

- **A file.** Model files are untrusted input: Keras' safe mode stays on (a
  Lambda layer that carries Python code is refused) unless the user passes
  ``--unsafe`` for a file they trust.
- **A keras-hub preset directory** (the folder ``task.save_to_preset(DIR)``
  writes, with the ``reportgen[hub]`` extra): loaded offline from its own
  files, in safe mode as a file is. A preset *handle* (``kaggle://...``,
  ``hf://...``, a built-in preset name) needs the network and is refused with
  the way to get a directory instead: reportgen never downloads a model
  behind the user's back.
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
import os
import re
import sys
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from reportgen.errors import UserError, one_line

from reportgen.names import MODEL_SUFFIXES, is_savedmodel, readable  # noqa: E402
from reportgen.names import HUB_EXTRA, is_hub_preset, is_remote_handle, remote_handle_message  # noqa: E402
from reportgen.names import CODE_SPEC_PATTERN, is_code_spec, is_model_path, missing_model  # noqa: E402,F401

CODE_SPEC = re.compile(CODE_SPEC_PATTERN)


@dataclass
class LoadedModel:
    """A model and where it came from."""

    model: Any
    name: str  # the report folder's name: file stem, architecture name or callable name
    source: str  # the path, "keras.applications.VGG16 (weights=imagenet)", or "module:callable"
    sha256: str | None
    architecture: str | None = None  # keras.applications name, when loaded by name
    weights: str | None = None
    # Default input for the analyses when the user gives no --image (the demo's
    # held-out samples): list of (pixels uint8 HxWxC, label str).
    sample_images: list = field(default_factory=list)
    class_names: list[str] | None = None
    unsafe: bool = False  # loaded with --unsafe


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


def load(
    spec: str, weights: str = "imagenet", unsafe: bool = False, input_shape: tuple[int, ...] | None = None
) -> LoadedModel:
    """Load ``spec`` (a path, an architecture name or ``module:callable``) into a :class:`LoadedModel`."""
    from reportgen import backend

    if is_remote_handle(spec):  # before any import: no download is ever attempted
        raise UserError(remote_handle_message(spec))
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


MODEL_FIX = "give a .keras or .h5 model file"


def check_model_file(path: str | Path) -> None:
    """Refuse a model file before Keras opens it (Keras-free, so the command line asks before importing a
    backend): a FIFO, a device, a symlink loop, an unreadable file, or a config JSON over the cap
    (:func:`reportgen.guard.config_cap`; Keras itself stops a zip bomb only at 4 GiB)."""
    from reportgen import guard

    path = Path(path)
    if not guard.present(path) or os.path.isdir(
        path
    ):  # os.path: False, not PermissionError, behind a locked folder
        return
    guard.check_file(path, "model file", MODEL_FIX)
    cap = guard.config_cap()
    fix = (
        f"if you trust it, raise the cap with {guard.CONFIG_ENV}=MB "
        f"(now {guard.size_text(cap)}); a real model's "
        "config is well under a megabyte per thousand layers"
    )
    try:
        kind = file_kind(path)
    except OSError:
        return  # told with Keras' reason by load_file
    size = None
    if kind == "zip":
        try:
            with zipfile.ZipFile(path) as archive:
                infos = {i.filename: i for i in archive.infolist()}
        except (zipfile.BadZipFile, OSError, ValueError):
            return
        if "config.json" in infos:
            size = infos["config.json"].file_size
    elif kind == "hdf5":
        size = _h5_config_size(path)
    if size is not None and size > cap:
        raise guard.Refused(
            f"model file '{path}' holds a model config of {guard.size_text(size)} (JSON), over "
            f"the {guard.size_text(cap)} reportgen reads; {fix}",
            "over the size cap",
        )


def _h5_config_size(path: Path) -> int | None:
    """The size of an .h5 model's ``model_config`` attribute, read from its storage, not the attribute itself.

    Only a fixed-length string tells its size this way (a variable-length one reports its 16-byte handle);
    HDF5 attributes are never compressed, so an .h5's config is no larger than the file in any case."""
    try:
        import h5py

        with h5py.File(path, "r") as fh:
            if "model_config" not in fh.attrs:
                return None
            return int(fh.attrs.get_id("model_config").get_storage_size())
    except Exception:  # noqa: BLE001  (an unreadable file is told with Keras' reason)
        return None


def load_file(path: Path, unsafe: bool = False, input_shape: tuple[int, ...] | None = None) -> LoadedModel:
    import keras

    from reportgen import guard

    if not guard.present(path):
        raise UserError(missing_model(str(path), checked=True))
    check_model_file(path)
    if path.is_dir():
        if is_hub_preset(path):
            return load_preset(path, unsafe=unsafe, input_shape=input_shape)
        if is_savedmodel(path):
            raise UserError(
                f"'{path}' is a TensorFlow SavedModel folder, "
                "which Keras 3 cannot load as a model; convert it: "
                "in TF 2.15 / tf_keras load it with tf.keras.models.load_model and save it with "
                "model.save('model.keras'), or give the code that builds it as module:callable --weights FILE"
            )
        raise UserError(
            f"'{path}' is a directory; give a .keras or .h5 model file inside it, or a keras-hub "
            "preset directory (with its config.json)"
        )
    if _is_weights_only(path):
        raise UserError(
            f"'{path}' holds weights only, not a model; give the architecture and the weights: "
            f"reportgen ARCH --weights {path} (a keras.applications name) or "
            f"reportgen module:callable --weights {path}"
        )
    if path.suffix.lower() not in MODEL_SUFFIXES:
        raise UserError(
            f"'{path}' is not a .keras or .h5 file; save the model with model.save('model.keras')"
        )
    try:
        # Keras' warnings of a load that then fails (a weight group it skipped) are the error's symptoms:
        # the one-line error tells the cause, so they are shown only when the load succeeds.
        with quiet_optimizer(), warnings.catch_warnings(record=True) as raised:
            model = keras.saving.load_model(path, compile=False, safe_mode=not unsafe)
    except Exception as exc:  # Keras raises many types for bad files
        raise _explain_load_error(path, exc, unsafe) from None
    for w in raised:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if not isinstance(model, keras.Model):
        raise UserError(
            f"'{path}' holds no Keras model (only weights?); save the whole model with model.save()"
        )
    model = ensure_built(model, input_shape, str(path))
    return LoadedModel(
        model=model, name=readable(path.stem), source=readable(str(path)), sha256=sha256(path), unsafe=unsafe
    )


# Keras warns when a file's optimizer state does not fit the loaded model's optimizer. A keras-hub task
# compiles itself as it is built (Task.__init__), so loading one -- compile=False or not -- meets a
# fresh optimizer (2 variables) and the saved one (82 for a small ViT) and prints this on stderr. A report
# reads the model and never trains it: the optimizer's state is of no use to it, and the warning is noise.
_OPTIMIZER_WARNING = r"Skipping variable loading for optimizer "


@contextlib.contextmanager
def quiet_optimizer() -> Any:
    """Load a model for reading: without Keras' warning that the saved optimizer state was skipped.

    Only that one message is filtered (by its text, as a ``UserWarning``);
    every other warning of the load still reaches the user.
    """
    from reportgen import warned

    with warned.quiet():  # and the other known harmless ones (Swin's mask warning as it is built)
        yield


def _explain_load_error(path: Path, exc: Exception, unsafe: bool) -> UserError:
    text = f"{type(exc).__name__}: {exc}"
    lowered = text.lower()
    if "keras_hub" in lowered and not hub_installed():
        return UserError(f"'{path}' holds a keras-hub model, and keras-hub is not installed; {HUB_EXTRA}")
    if ("safe_mode" in lowered or "lambda" in lowered) and not unsafe:
        return UserError(
            f"'{path}' contains a Lambda layer with Python code, which Keras' safe mode refuses to run; "
            "pass --unsafe only if you trust this file"
        )
    try:
        kind = file_kind(path)
    except OSError:
        kind = None
    if kind == "empty":
        return UserError(
            f"'{path}' is empty (0 bytes); copy it again, or re-save the model with model.save('model.keras')"
        )
    if kind == "hdf5" and path.suffix.lower() == ".keras":
        if _hdf5_layout_of(path) == "keras3":
            return UserError(
                f"'{path}' is a .weights.h5 file named .keras: it holds weights only, not a model; "
                f"give the architecture and the weights: reportgen ARCH --weights {path.stem}.weights.h5 "
                "(renamed) or module:callable --weights FILE"
            )
        return UserError(
            f"'{path}' is an HDF5 (.h5) model file named .keras, and Keras reads a .keras name as a "
            f"zip archive; rename it to {path.stem}.h5"
        )
    if kind == "other" and path.suffix.lower() in (".h5", ".hdf5"):
        return UserError(
            f"'{path}' is not an HDF5 file (no HDF5 signature), so not a .h5 model; re-save the "
            "model with model.save('model.keras')"
        )
    gadget = _foreign_class(path) if kind == "zip" else None
    if gadget is not None:
        return UserError(
            f"'{path}' names '{gadget}' in its config, which is not a Keras layer or model but "
            "Python's own code (a config gadget); Keras refuses to load it; do not use this file, "
            "or re-save the model from the code that built it"
        )
    rebuilt = _rebuilt_mismatch(path, unsafe) if kind == "zip" and "could not be loaded" in lowered else None
    if rebuilt is not None:
        return UserError(rebuilt)
    shapes = _shape_mismatch(text)
    if shapes is not None:
        return UserError(
            f"'{path}' holds weights that do not fit its own config ({shapes}); the archive was "
            "put together from two models; re-save the model with model.save('model.keras')"
        )
    if isinstance(exc, zipfile.BadZipFile) or "zip" in lowered:
        return UserError(
            f"'{path}' is not a valid .keras archive (truncated or "
            "not a model); re-save it with model.save('model.keras')"
        )
    if "no model config" in lowered or "no model found" in lowered:
        return UserError(f"'{path}' holds weights only, not a model; save the whole model with model.save()")
    if "unknown layer" in lowered or "could not locate" in lowered:
        return UserError(
            f"'{path}' uses a custom layer or model class that "
            f"Keras cannot find ({_first_line(exc)}); register it "
            "with keras.saving.register_keras_serializable, "
            "or give the code as module:callable --weights FILE"
        )
    if "input_shape" in lowered or "has not yet been built" in lowered or "'nonetype'" in lowered:
        return UserError(
            f"'{path}' holds a model saved before it was built (no input shape); "
            "give it with --input-shape H,W,C"
        )
    return UserError(
        f"cannot read '{path}' as a Keras model ({_first_line(exc)}); "
        "the file may be truncated or not a .keras/.h5 model"
    )


def _foreign_class(path: Path) -> str | None:
    """The first ``module.class_name`` in a .keras archive's config that comes from Python's standard library
    (``os.system``, ``builtins.eval``): a config gadget, told as such instead of Keras' reason (which reads as
    a missing custom class or an unbuilt model). The config's size was checked before
    (:func:`check_model_file`)."""
    import json

    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
    except Exception:  # noqa: BLE001  (no readable config: Keras' own reason stands)
        return None
    stack = [config]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            module = node.get("module")
            if isinstance(module, str) and module.split(".")[0] in sys.stdlib_module_names:
                return f"{module}.{node.get('class_name')}"
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return None


# Arguments every Keras layer or model takes, which a class's get_config need not repeat.
_BASE_ARGUMENTS = {"self", "args", "kwargs", "name", "dtype", "trainable", "inputs", "outputs"}


def _rebuilt_mismatch(path: Path, unsafe: bool) -> str | None:
    """Why a .keras archive's weights do not load, found by rebuilding its network from its config: the first
    layer whose saved weights do not fit the rebuilt one and, where that layer belongs to a model class
    that builds its own layers (a keras-hub backbone), the constructor arguments its ``get_config`` leaves
    out -- Keras rebuilds the model with their defaults, so a model built with other values cannot be loaded
    back (keras-hub 0.32's ``EfficientNetBackbone`` leaves out ``num_features``). None when the rebuilt
    network fits, or cannot be rebuilt."""
    import inspect
    import json

    import keras

    from reportgen import graph, warned

    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
        with warned.quiet(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = keras.saving.deserialize_keras_object(config, safe_mode=not unsafe)
    except Exception:  # noqa: BLE001  (no rebuilt network: Keras' own reason stands)
        return None
    if not isinstance(model, keras.Model):
        return None
    mismatch = first_mismatch(model, path)
    if mismatch is None:
        return None
    where = re.match(r"layer '([^']+)'", mismatch)
    owner = None
    for ref in graph.walk(model):  # the innermost model holding the layer whose class builds its own layers
        inside = where is not None and where.group(1).startswith(ref.path + "/")
        if ref.is_model and inside and type(ref.layer) not in (keras.Model, keras.Sequential):
            owner = ref.layer
    if owner is None and type(model) not in (keras.Model, keras.Sequential):
        owner = model
    if owner is not None:
        cls = type(owner)
        takes = [n for n in inspect.signature(cls.__init__).parameters if n not in _BASE_ARGUMENTS]
        recorded = owner.get_config()
        left_out = [n for n in takes if n not in recorded]
        if left_out:
            names = left_out[0] if len(left_out) == 1 else f"{', '.join(left_out[:-1])} or {left_out[-1]}"
            return (
                f"'{path}' cannot be loaded back: the network its config rebuilds does not fit its saved "
                f"weights ({mismatch}); {cls.__name__}.get_config() does not record {names}, so Keras "
                "rebuilds it with their defaults, not the values it was built with (a "
                f"{cls.__module__.split('.')[0]} bug, not a damaged file); build the model in code and give "
                f"it these weights: reportgen module:callable --weights {path}"
            )
    return (
        f"'{path}' holds weights that do not fit the network its own config rebuilds ({mismatch}); the "
        "archive was put together from two models; re-save the model with model.save('model.keras')"
    )


def _shape_mismatch(text: str) -> str | None:
    """Keras' long "could not be loaded" message cut to what matters: which variable, which two shapes."""
    shapes = re.search(r"variable\.shape=(\([^)]*\)), Received: value\.shape=(\([^)]*\))", text)
    if not shapes:
        return None
    where = re.search(r"Target variable: <Variable path=([^,>]+)", text)
    what = f"'{where.group(1)}'" if where else "a variable"
    return f"{what} has shape {shapes.group(1)} in the config, {shapes.group(2)} in the weights"


def _first_line(exc: BaseException) -> str:
    return one_line(exc, 160)


# --- keras-hub preset directories ---------------------------------------------------------


def hub_installed() -> bool:
    """Whether the ``reportgen[hub]`` extra (keras-hub) is installed; found without importing it."""
    import importlib.util

    try:
        return importlib.util.find_spec("keras_hub") is not None
    except (ImportError, ValueError):
        return False


def _safe_mode(safe: bool) -> Any:
    """Keras' safe mode for what keras-hub deserialises (its configs go through Keras' deserialiser)."""
    try:
        from keras.src.saving.serialization_lib import SafeModeScope
    except ImportError:  # a Keras without the scope: its default, safe, applies
        return contextlib.nullcontext()
    return SafeModeScope(safe)


def load_preset(path: Path, unsafe: bool = False, input_shape: tuple[int, ...] | None = None) -> LoadedModel:
    """Load a keras-hub preset directory: the task ``task.json`` names (a classifier with its
    preprocessor), else the backbone ``config.json`` describes; offline, from the directory's files only.

    The path is made absolute first: keras-hub reads a bare name that equals a
    built-in preset's (``resnet_18_imagenet``) as that preset, and would download it.
    """
    if not hub_installed():
        raise UserError(
            f"'{path}' is a keras-hub preset directory, and keras-hub is not installed; {HUB_EXTRA}"
        )
    import json

    import keras
    import keras_hub

    folder = path.resolve()
    try:
        task_config = (
            json.loads((folder / "task.json").read_text()) if (folder / "task.json").is_file() else None
        )
        task_cls = keras.saving.get_registered_object(task_config["registered_name"]) if task_config else None
        with _safe_mode(not unsafe), quiet_optimizer():
            if isinstance(task_cls, type) and issubclass(task_cls, keras_hub.models.Task):
                model = task_cls.from_preset(str(folder))
            else:
                model = keras_hub.models.Backbone.from_preset(str(folder))
    except UserError:
        raise
    except Exception as exc:  # keras-hub raises ValueError, FileNotFoundError, KeyError, ... for bad folders
        raise _explain_preset_error(path, exc, unsafe) from None
    model = ensure_built(model, input_shape, str(path))
    return LoadedModel(
        model=model,
        name=readable(folder.name),
        source=readable(str(path)),
        sha256=preset_sha256(folder),
        unsafe=unsafe,
    )


def _explain_preset_error(path: Path, exc: Exception, unsafe: bool) -> UserError:
    lowered = f"{type(exc).__name__}: {exc}".lower()
    if ("safe_mode" in lowered or "lambda" in lowered) and not unsafe:
        return UserError(
            f"'{path}' contains a Lambda layer with Python code, which Keras' safe mode refuses to run; "
            "pass --unsafe only if you trust this preset"
        )
    return UserError(
        f"cannot load '{path}' as a keras-hub preset directory ({_first_line(exc)}); write it again "
        "with model.save_to_preset(DIR)"
    )


def preset_sha256(folder: Path) -> str:
    """One SHA-256 for a preset directory: of each top-level file's name and SHA-256, in name order
    (what keras-hub reads: configs, weights, assets), so that two copies of a preset match."""
    digest = hashlib.sha256()
    for item in sorted(p for p in folder.iterdir() if p.is_file()):
        digest.update(f"{item.name}\0{sha256(item)}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def _hub_preset_name(name: str) -> bool:
    """Whether ``name`` is one of keras-hub's built-in presets (a download); False without keras-hub."""
    if not hub_installed():
        return False
    try:
        import keras_hub

        return name in keras_hub.models.Backbone.presets
    except Exception:  # noqa: BLE001  (a keras-hub that cannot list its presets makes no claim)
        return False


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

    from reportgen import graph

    if input_shape is None:
        if _has_input_shape(model):
            return model
        how = (
            "was built without an input shape (its build() took none)"
            if getattr(model, "built", False)
            else "was never built"
        )
        raise UserError(f"'{what}' {how}, so its input shape is unknown; give it with --input-shape H,W,C")
    try:
        model(np.zeros((1,) + tuple(input_shape), dtype="float32"), training=False)
    except Exception as exc:
        raise UserError(
            f"--input-shape {','.join(map(str, input_shape))} does not fit '{what}' "
            f"({_first_line(exc)}); give the shape the model takes"
        ) from None
    if not _has_input_shape(model):
        # Built by its own code without a shape (weights already set): calling it does not make Keras
        # record one, so the report keeps the shape the user gave.
        graph.declare_input_shape(model, input_shape)
    if isinstance(model, keras.Sequential) and not _has_input_shape(model):
        rebuilt = keras.Sequential([keras.Input(tuple(input_shape))] + list(model.layers), name=model.name)
        return rebuilt
    return model


# --- code -----------------------------------------------------------------------------------


def load_code(
    spec: str, weights: str | None = None, input_shape: tuple[int, ...] | None = None
) -> LoadedModel:
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
            raise UserError(
                f"cannot import '{module_name}' for {spec} ({type(exc).__name__}: {_first_line(exc)}); "
                "run reportgen from the folder that holds it, or install it"
            ) from None
    finally:
        if added:
            with contextlib.suppress(ValueError):
                sys.path.remove(cwd)
    target: Any = module
    for part in attr.split("."):
        if not hasattr(target, part):
            raise UserError(
                f"cannot import '{attr}' from '{module_name}' for {spec}: no such name; "
                "check the spelling after the colon"
            )
        target = getattr(target, part)
    if not callable(target):
        raise UserError(
            f"{spec} is not callable; name a keras.Model subclass or a function that returns a model"
        )
    try:
        model = target()
    except Exception as exc:
        raise UserError(
            f"{spec}() raised {type(exc).__name__}: {_first_line(exc)}; it must build the model "
            "when called with no arguments"
        ) from None
    if not isinstance(model, keras.Model):
        raise UserError(
            f"{spec}() returned {type(model).__name__}, not a Keras model; "
            "it must return a keras.Model (or be a keras.Model subclass)"
        )
    if weights is not None and weights.lower() == "none":
        weights = None
    if weights is None and input_shape is None and not _has_input_shape(model):
        how = (
            "a model built without an input shape"
            if getattr(model, "built", False)
            else "a model that was never built"
        )
        raise UserError(
            f"{spec}() returned {how}, so its input shape is unknown; give it with --input-shape H,W,C"
        )
    model = ensure_built(model, input_shape, spec)
    digest = None
    if weights is not None:
        path = Path(weights)
        _check_weights_file(path)
        if not path.is_file():
            raise UserError(
                f"--weights '{weights}' does not exist; give a .weights.h5 file saved with "
                "model.save_weights()"
            )
        load_weights_checked(model, path, spec)
        digest = sha256(path)
    name = attr.rsplit(".", 1)[-1]
    # Without --weights the weights are whatever the code set: fresh, or trained ones it loaded itself.
    # The report measures which (model.weights_state) instead of assuming "freshly built".
    source = f"{spec} (code, weights={weights})" if weights else f"{spec} (code)"
    return LoadedModel(model=model, name=name, source=source, sha256=digest, weights=weights or "code")


def _check_weights_file(path: Path) -> None:
    """A ``--weights`` path that is there (a link, a FIFO, a device) must be a readable regular file."""
    from reportgen import guard

    if guard.present(path) and not os.path.isdir(path):
        guard.check_file(path, "--weights", "give a .weights.h5 file saved with model.save_weights()")


def load_weights_checked(model: Any, path: Path, what: str) -> None:
    """``model.load_weights(path)`` with a one-line error: why the file cannot be read as Keras weights
    (:func:`weights_format_problem`), else the first layer whose weights do not match."""
    try:
        model.load_weights(path)
        return
    except Exception as exc:
        reason = _keras_reason(exc)
    problem = weights_format_problem(path)
    if problem is not None:
        why, fix = problem
        raise UserError(f"'{path}' cannot be read as a Keras weights file ({why}); {fix}") from None
    mismatch = first_mismatch(model, path)
    detail = mismatch or reason
    raise UserError(
        f"the weights in '{path}' do not fit {what} ({detail}); use weights saved from this architecture"
    ) from None


def _keras_reason(exc: BaseException) -> str:
    """Keras' reason in one line: the first line that says something ("A total of 2 objects could not
    be loaded. Example error message for object <Conv2D ...>:" says nothing by itself)."""
    lines = [" ".join(line.split()) for line in str(exc).splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].endswith(":"):
        lines = lines[1:]
    text = lines[0] if lines else type(exc).__name__
    return text if len(text) <= 160 else text[:159] + "…"


_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_ZIP_SIGNATURES = (b"PK\x03\x04", b"PK\x05\x06")


def file_kind(path: Path) -> str:
    """What a file is by its first bytes: ``zip`` (a .keras archive), ``hdf5``, ``empty`` or ``other``."""
    with open(path, "rb") as fh:
        head = fh.read(8)
    if not head:
        return "empty"
    if head.startswith(_ZIP_SIGNATURES):
        return "zip"
    if head == _HDF5_SIGNATURE:
        return "hdf5"
    try:
        import h5py

        return "hdf5" if h5py.is_hdf5(str(path)) else "other"  # a signature after a user block
    except Exception:
        return "other"


def _h5_layout(fh: Any) -> str:
    """``legacy`` (Keras 2's .h5: layer_names, model_weights), ``keras3`` (.weights.h5: layers/, vars/) or
    ``none``."""
    if "layer_names" in fh.attrs or "model_weights" in fh:
        return "legacy"
    if "layers" in fh or "vars" in fh:
        return "keras3"
    return "none"


def _hdf5_layout_of(path: Path) -> str:
    """:func:`_h5_layout` of a file; ``none`` when it cannot be opened."""
    import h5py

    try:
        with h5py.File(path, "r") as fh:
            return _h5_layout(fh)
    except Exception:
        return "none"


def _truncation(text: str) -> str | None:
    match = re.search(r"truncated file: eof = (\d+).*?stored_eof = (\d+)", text)
    if match:
        return f"it is truncated: {int(match.group(1)):,} of its {int(match.group(2)):,} bytes are there"
    return "it is truncated" if "truncated" in text.lower() else None


def weights_format_problem(path: Path) -> tuple[str, str] | None:
    """Why Keras cannot read ``path`` as weights at all, and the fix, as ``(why, fix)``; None when the
    file is in a format Keras reads by its name (then a failure is the weights not fitting the model).

    Keras picks the reader by the name: ``.keras`` a zip archive, ``.weights.h5`` the Keras 3 HDF5
    layout, any other ``.h5``/``.hdf5`` the Keras 2 (legacy) layout; other names are refused.
    """
    name = path.name
    lower = name.lower()
    stem = name[: -len(".weights.h5")] if lower.endswith(".weights.h5") else Path(name).stem
    saved = "give the file model.save_weights('model.weights.h5') wrote"
    try:
        kind = file_kind(path)
    except OSError as exc:
        return f"it cannot be opened: {exc.strerror or exc}", "check its permissions"
    if kind == "empty":
        return "it is empty (0 bytes)", f"copy it again, or {saved}"
    if lower.endswith(".keras"):
        if kind == "hdf5":
            legacy = _hdf5_layout_of(path) == "legacy"
            return (
                "it is an HDF5 file named .keras, and Keras reads a .keras name as a zip archive",
                f"rename it to {stem}.h5" if legacy else f"rename it to {stem}.weights.h5",
            )
        if kind != "zip":
            return (
                "it is not a .keras archive: no zip signature",
                f"re-save it with model.save('{stem}.keras'), or {saved}",
            )
        import zipfile

        try:
            with zipfile.ZipFile(path) as archive:
                if "model.weights.h5" not in archive.namelist():
                    return (
                        "the .keras archive holds no model.weights.h5",
                        f"re-save it with model.save('{stem}.keras'), or {saved}",
                    )
        except (zipfile.BadZipFile, OSError) as exc:
            return (
                f"the .keras archive is truncated or damaged: {one_line(exc, 80)}",
                f"copy it again, or re-save it with model.save('{stem}.keras')",
            )
        return None
    if not lower.endswith((".h5", ".hdf5")):
        suffix = f"'{Path(name).suffix}'" if Path(name).suffix else "no extension"
        why = (
            "Keras picks the reader by the name (.weights.h5, "
            f".keras or a Keras 2 .h5), and this one has {suffix}"
        )
        if kind == "zip":
            return why + "; it is a .keras archive", f"rename it to {stem}.keras"
        if kind == "hdf5":
            legacy = _hdf5_layout_of(path) == "legacy"
            return (
                why + f"; it is an HDF5 file{' in the Keras 2 layout' if legacy else ''}",
                f"rename it to {stem}.h5" if legacy else f"rename it to {stem}.weights.h5",
            )
        return (
            why + "; it is not HDF5 either (a TensorFlow checkpoint or a PyTorch file cannot be read)",
            saved,
        )
    if kind == "zip":
        return (
            "it is a .keras model archive, a zip, not an HDF5 weights file",
            f"rename it to {stem}.keras (Keras reads the weights out of it), or {saved}",
        )
    if kind != "hdf5":
        return "it is not an HDF5 file: no HDF5 signature", saved
    import h5py

    try:
        with h5py.File(path, "r") as fh:
            layout = _h5_layout(fh)
            arrays = [0]

            def count(_key: str, obj: Any) -> None:
                arrays[0] += isinstance(obj, h5py.Dataset)

            fh.visititems(count)
    except Exception as exc:
        text = f"{exc}"
        return (
            _truncation(text) or f"the HDF5 file cannot be opened: {one_line(exc, 120)}",
            f"copy it again, or {saved}",
        )
    if lower.endswith(".weights.h5") and layout == "legacy":
        return (
            "it holds weights in the Keras 2 layout (legacy .h5), which Keras 3 reads only from a name "
            "that ends in .h5 but not .weights.h5",
            f"rename it to {stem}.h5",
        )
    if not lower.endswith(".weights.h5") and layout == "keras3":
        return (
            "it holds Keras 3 weights (the .weights.h5 layout), but a name ending in .h5 makes Keras read "
            "it as the Keras 2 layout",
            f"rename it to {stem}.weights.h5",
        )
    if arrays[0] == 0:
        return "the HDF5 file holds no weight arrays", saved
    return None


def _h5_arrays(path: Path) -> dict[str, tuple[tuple, str | None]]:
    """Every weight array in a Keras weights file: key -> (shape, name of the layer that saved it)."""
    import io

    import h5py

    out: dict[str, tuple[tuple, str | None]] = {}
    source: Any = path
    if file_kind(path) == "zip":  # a .keras archive: its weights are the model.weights.h5 inside
        with zipfile.ZipFile(path) as archive:
            source = io.BytesIO(archive.read("model.weights.h5"))
    with h5py.File(source, "r") as fh:
        if _h5_layout(fh) == "legacy":  # stored by layer name, not by Keras 3's keys: not comparable here
            raise ValueError("a Keras 2 (legacy) weights layout")

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
    file's key by key (a ``.keras`` archive's by its ``model.weights.h5``).
    None for a Keras 2 (legacy) file, stored by layer name: Keras' own message
    names the layer then.
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
        if _hub_preset_name(name):
            raise UserError(remote_handle_message(name))
        known = (
            "vgg16, vgg19, resnet50, mobilenet_v2, efficientnet_b0, "
            "densenet121, inception_v3, xception, convnext_tiny"
        )
        raise UserError(
            f"unknown architecture '{name}' and no such model file; give a .keras/.h5 file, a "
            f"module:callable, or one of: {known}, ..."
        )
    build = constructors[key]
    label = weights
    digest = None
    if weights.lower() == "imagenet":
        try:
            model = build(weights="imagenet")
        except Exception as exc:
            text = str(exc)
            reason = (
                "the download failed; no network?"
                if "fetch failure" in text or "Errno" in text
                else _first_line(exc)
            )
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
        _check_weights_file(path)
        if not path.is_file():
            raise UserError(
                f"--weights '{weights}' is neither imagenet, none "
                "nor an existing weights file; check the path"
            )
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
