"""The Keras backend in one module: gradients, compilation, tensors to NumPy, the accelerator.

reportgen runs on whichever backend Keras runs (``KERAS_BACKEND`` =
``tensorflow``, ``jax`` or ``torch``; a ``.keras`` file does not care which).
Everything that differs between the three lives here; the analyses use
``keras.ops`` and these functions:

- :func:`grad` -- value and gradient of a scalar function of arrays
  (``tf.GradientTape``, ``jax.value_and_grad``, ``torch.autograd.grad``);
- :func:`vjp` -- one forward pass, then several vector-Jacobian products
  (Grad-CAM's top-k classes from one forward pass);
- :func:`function` -- compilation (``tf.function``, ``jax.jit``; PyTorch runs
  eagerly, where ``torch.compile`` measured no faster for these one-off
  graphs than its compile time costs);
- :func:`numpy`, :func:`accelerator`, :func:`versions`, :func:`check_installed`,
  :func:`import_keras`.

Gradients with respect to an intermediate activation (Grad-CAM) cannot be
taken directly in JAX, which differentiates functions, not tensors. The
analyses therefore add a zero *perturbation* at that layer
(:mod:`reportgen.graph.forward`) and differentiate with respect to the
perturbation: the same number as d(score)/d(activation), on every backend.

JAX compiles functions of arrays: a layer's weights read inside ``jax.jit``
would be baked into the program as constants. :func:`function` therefore
passes the model's variables in as arguments and maps them back inside a
``keras.StatelessScope`` -- what ``Layer.stateless_call`` does.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import sys
from typing import Any, Callable, Iterator, Sequence

BACKENDS = ("tensorflow", "jax", "torch")
# What to install for each backend (TensorFlow is a dependency of reportgen itself).
EXTRAS = {"tensorflow": "reportgen", "jax": "reportgen[jax]", "torch": "reportgen[torch]"}
_MODULES = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}


def requested() -> str:
    """The backend Keras will use: ``KERAS_BACKEND``, else ``~/.keras/keras.json``, else TensorFlow."""
    name = os.environ.get("KERAS_BACKEND")
    if not name:
        import json

        config = os.path.join(os.environ.get("KERAS_HOME", os.path.expanduser("~/.keras")), "keras.json")
        try:
            with open(config, encoding="utf-8") as fh:
                name = json.load(fh).get("backend")
        except (OSError, ValueError, AttributeError):
            name = None
    return (name or "tensorflow").strip().lower()


def check_installed() -> str:
    """The requested backend's name; a one-line :class:`UserError` when it is unknown or not installed."""
    from reportgen.errors import UserError

    name = requested()
    if name not in BACKENDS:
        raise UserError(
            f"KERAS_BACKEND='{name}' is not a backend reportgen supports; use one of {', '.join(BACKENDS)}"
        )
    if importlib.util.find_spec(_MODULES[name]) is None:
        raise UserError(
            f"KERAS_BACKEND={name} but {_MODULES[name]} is not installed; pip install '{EXTRAS[name]}'"
        )
    return name


@contextlib.contextmanager
def _stderr_silenced() -> Iterator[None]:
    """Swallow what C++ libraries print straight to file descriptor 2 (CUDA probes, absl)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (embedded use): nothing to hide
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


_IMPORTED = False


@contextlib.contextmanager
def _without_matplotlib() -> Any:
    """Import Keras without its optional plotting: ``keras.visualization`` imports ``matplotlib.pyplot``
    at import time when it is installed (300 ms and ~40 MB, mplot3d included). A report that writes only
    JSON never draws, so it never imports Matplotlib; Keras' own gallery functions are then unavailable
    in this process, which reportgen never calls. A process that imported Keras or Matplotlib before is
    left as it is."""
    import sys

    if "keras" in sys.modules or "matplotlib" in sys.modules:
        yield
        return
    sys.modules["matplotlib"] = None  # type: ignore[assignment]  (import raises ImportError, which Keras expects)
    try:
        yield
    finally:
        if sys.modules.get("matplotlib", 0) is None:
            del sys.modules["matplotlib"]


def import_keras() -> Any:
    """Import Keras and its backend once, quietly, and return ``keras``.

    TensorFlow and XLA print CUDA-probe lines ("Could not find cuda drivers")
    to stderr before Python's logging is set up; the CLI's stderr carries
    one-line errors and progress bars, so those lines are swallowed here.
    """
    global _IMPORTED
    if _IMPORTED:
        import keras

        return keras
    name = check_installed()
    os.environ.setdefault("KERAS_BACKEND", name)
    with _stderr_silenced(), _without_matplotlib():
        if name == "tensorflow":
            import tensorflow as tf

            # One compiled ascent step per layer is by design; TensorFlow's
            # "triggered tf.function retracing" advice is noise to our users.
            tf.get_logger().setLevel("ERROR")
            tf.config.list_physical_devices()
            with contextlib.suppress(Exception):
                tf.constant(0.0)  # first device use triggers the cuInit probe
        import keras
    _IMPORTED = True
    return keras


@contextlib.contextmanager
def precision(level: str | None = None) -> Iterator[None]:
    """:func:`set_precision` (``REPORTGEN_PRECISION``, else ``highest``) while a report runs, then as it was.

    A notebook that makes a report keeps its own matmul precision afterwards.
    """
    level = level or os.environ.get("REPORTGEN_PRECISION", "highest")
    current = name()
    if current == "jax":
        import jax

        saved: Any = jax.config.jax_default_matmul_precision
    elif current == "tensorflow":
        import tensorflow as tf

        saved = tf.config.experimental.tensor_float_32_execution_enabled()
    else:
        import torch

        saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    set_precision(level)
    try:
        yield
    finally:
        if current == "jax":
            jax.config.update("jax_default_matmul_precision", saved)
        elif current == "tensorflow":
            tf.config.experimental.enable_tensor_float_32_execution(saved)
        else:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def set_precision(level: str = "highest") -> None:
    """Matrix-multiply precision on GPUs: ``highest`` (full float32, the report's) or ``default``.

    On NVIDIA GPUs since Ampere, JAX's default matmul and convolution
    precision, TensorFlow's TF32 and cuDNN's convolutions round inputs to a
    10-bit mantissa. The report computes in full float32 so that its numbers
    are the same on a laptop's CPU and on a GPU (tests compare the backends to
    1e-4); ``REPORTGEN_PRECISION=default`` trades that for speed. CPUs compute
    float32 either way.
    """
    current = name()
    highest = level == "highest"
    if current == "jax":
        import jax

        jax.config.update("jax_default_matmul_precision", "highest" if highest else None)
    elif current == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_tensor_float_32_execution(not highest)
    else:
        import torch

        torch.backends.cuda.matmul.allow_tf32 = not highest
        torch.backends.cudnn.allow_tf32 = not highest


def name() -> str:
    """The backend Keras runs on."""
    import keras

    return keras.backend.backend()


def versions() -> dict[str, str]:
    """``{"backend": name, <backend package>: version}`` for report.json's ``versions``."""
    current = name()
    module = importlib.import_module(_MODULES[current])
    return {"backend": current, _MODULES[current]: getattr(module, "__version__", "?")}


def accelerator() -> str | None:
    """``"gpu"`` or ``"tpu"`` when the backend computes on one, else None (CPU)."""
    current = name()
    if current == "tensorflow":
        import tensorflow as tf

        return "gpu" if tf.config.list_logical_devices("GPU") else None
    if current == "jax":
        import jax

        platform = jax.default_backend()
        return platform if platform in ("gpu", "tpu") else None
    import torch

    return "gpu" if torch.cuda.is_available() else None


def numpy(x: Any) -> Any:
    """A backend tensor (or a nest of them) as NumPy."""
    import keras
    import numpy as np

    if isinstance(x, (list, tuple)):
        return type(x)(numpy(v) for v in x)
    if isinstance(x, dict):
        return {k: numpy(v) for k, v in x.items()}
    return np.asarray(keras.ops.convert_to_numpy(x))


def array(variable: Any) -> Any:
    """A variable's value as a NumPy array, without a copy where the backend allows it (so: never write to
    it).

    VGG16's fc1 kernel is 411 MB; the weight statistics read every layer once,
    and a copy per read would double the peak memory of the largest layer.
    TensorFlow hands its buffer over through DLPack, JAX and PyTorch (CPU)
    share theirs with NumPy directly; anything else is copied.
    """
    import keras
    import numpy as np

    value = variable.value if hasattr(variable, "value") else variable
    current = name()
    try:
        if current == "tensorflow":
            import tensorflow as tf

            return np.from_dlpack(tf.convert_to_tensor(value))
        if current == "torch":
            return value.detach().cpu().numpy()
        return np.asarray(value)
    except Exception:  # a device buffer, an odd dtype: copy
        return np.asarray(keras.ops.convert_to_numpy(value))


def from_numpy(a: Any) -> Any:
    """A backend tensor over a NumPy array's own buffer where the backend allows it (else a copy).

    The sanity check swaps in fresh weights one layer at a time; VGG16's fc1
    kernel held twice (NumPy draw and tensor copy) would add 411 MB to the
    report's peak memory.
    """
    import numpy as np

    a = np.ascontiguousarray(a)
    current = name()
    try:
        if current == "tensorflow" and a.ctypes.data % 64 == 0:  # TensorFlow's kernels need 64-byte alignment
            import tensorflow as tf

            return tf.experimental.dlpack.from_dlpack(a.__dlpack__())
        if current == "torch":
            import torch

            return torch.from_numpy(a)
    except Exception:
        pass
    return tensor(a, str(a.dtype))


def tensor(x: Any, dtype: str | None = "float32") -> Any:
    import keras

    return keras.ops.convert_to_tensor(x, dtype=dtype)


# --- TensorFlow's name scopes --------------------------------------------------------

_SCOPE_CHARS = re.compile(r"[^A-Za-z0-9_.\-]")


@contextlib.contextmanager
def safe_name_scopes() -> Iterator[None]:
    """Let layers with any name Keras accepts run inside ``tf.function``.

    Keras opens a TensorFlow name scope per layer call; in graph mode
    TensorFlow refuses scope and node names outside ``[A-Za-z0-9_.-]`` (a layer
    named ``<img src=x>`` crashes). While a function is traced, the scope
    gets the name with other characters replaced by ``_``; the layer's own
    name is untouched.
    """
    if name() != "tensorflow":
        yield
        return
    import keras.src.backend as kb

    original = kb.name_scope

    class _Safe(original):  # type: ignore[misc,valid-type]
        def __init__(self, scope_name: str, **kwargs: Any) -> None:
            clean = _SCOPE_CHARS.sub("_", str(scope_name))
            if not clean or not (clean[0].isalnum() or clean[0] == "."):
                clean = "x" + clean  # a root scope must start with a letter, digit or '.'
            super().__init__(clean, **kwargs)

    kb.name_scope = _Safe
    try:
        yield
    finally:
        kb.name_scope = original


# --- compilation and gradients -------------------------------------------------------


def function(
    fn: Callable[..., Any], variables: Sequence[Any] = (), jit: bool | None = None
) -> Callable[..., Any]:
    """``fn`` compiled for the backend; call it like ``fn``.

    ``variables`` are the Keras variables ``fn`` reads (a model's): JAX gets
    their values as arguments so they are not baked in as constants.
    ``jit`` asks TensorFlow for XLA (default: on an accelerator only; on a
    CPU TensorFlow's oneDNN kernels measured faster, docs/benchmarks.md).
    """
    current = name()
    if current == "tensorflow":
        import tensorflow as tf

        xla = accelerator() is not None if jit is None else jit

        def traced(*args: Any) -> Any:
            with safe_name_scopes():
                return fn(*args)

        return tf.function(traced, jit_compile=xla, reduce_retracing=True)
    if current == "jax":
        import jax
        from keras import StatelessScope

        variables = list(variables)

        def stateless(values: list, *args: Any) -> Any:
            with StatelessScope(state_mapping=list(zip(variables, values))):
                return fn(*args)

        compiled = jax.jit(stateless)

        def call(*args: Any) -> Any:
            return compiled([v.value for v in variables], *args)

        return call
    return fn


def grad(fn: Callable[..., tuple[Any, Any]], argnum: int = 0) -> Callable[..., tuple[Any, Any, Any]]:
    """``g(*args) -> (value, aux, d value / d args[argnum])`` for ``fn(*args) -> (scalar, aux)``."""
    current = name()
    if current == "tensorflow":
        import tensorflow as tf

        def g(*args: Any) -> tuple[Any, Any, Any]:
            target = args[argnum]
            with tf.GradientTape(watch_accessed_variables=False) as tape:
                tape.watch(target)
                value, aux = fn(*args)
            return value, aux, tape.gradient(value, target)

        return g
    if current == "jax":
        import jax

        def g(*args: Any) -> tuple[Any, Any, Any]:
            (value, aux), gradient = jax.value_and_grad(fn, argnums=argnum, has_aux=True)(*args)
            return value, aux, gradient

        return g
    import torch

    def g(*args: Any) -> tuple[Any, Any, Any]:
        args = list(args)
        args[argnum] = torch.as_tensor(args[argnum]).detach().requires_grad_(True)
        with torch.enable_grad():
            value, aux = fn(*args)
            (gradient,) = torch.autograd.grad(value, [args[argnum]])
        return value.detach(), _detach(aux), gradient

    return g


def vjp(fn: Callable[..., tuple[Any, Any]], primal: Any, *rest: Any) -> tuple[Any, Any, Callable[[Any], Any]]:
    """``(y, aux, pullback)``: ``fn(primal, *rest) -> (y, aux)`` once, then ``pullback(cotangent)``
    gives d<cotangent, y>/d primal, as often as needed, without a new forward pass."""
    current = name()
    if current == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape(persistent=True, watch_accessed_variables=False) as tape:
            tape.watch(primal)
            y, aux = fn(primal, *rest)

        def pull(cotangent: Any) -> Any:
            return tape.gradient(y, primal, output_gradients=tf.cast(cotangent, y.dtype))

        return y, aux, pull
    if current == "jax":
        import jax

        y, pullback, aux = jax.vjp(lambda p: fn(p, *rest), primal, has_aux=True)
        return y, aux, lambda cotangent: pullback(cotangent.astype(y.dtype))[0]
    import torch

    primal = torch.as_tensor(primal).detach().requires_grad_(True)
    with torch.enable_grad():
        y, aux = fn(primal, *rest)

    def pull(cotangent: Any) -> Any:
        cot = torch.as_tensor(cotangent, dtype=y.dtype, device=y.device)
        (g,) = torch.autograd.grad(y, [primal], grad_outputs=cot, retain_graph=True)
        return g

    return y.detach(), _detach(aux), pull


def _detach(x: Any) -> Any:
    if isinstance(x, (list, tuple)):
        return type(x)(_detach(v) for v in x)
    if isinstance(x, dict):
        return {k: _detach(v) for k, v in x.items()}
    return x.detach() if hasattr(x, "detach") else x


@contextlib.contextmanager
def no_grad() -> Iterator[None]:
    """Forward passes that need no gradient (PyTorch would otherwise record every op)."""
    if name() == "torch":
        import torch

        with torch.no_grad():
            yield
    else:
        yield
