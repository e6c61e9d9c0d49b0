"""Forward hooks on layer instances: taps on chosen layers, and the record of a subclassed model's calls."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterator, Sequence

import keras

from reportgen.graph.trace import DEFAULT_SIZE, StopTrace, _shape, is_traceable


@dataclass
class Tap:
    """What to do at one layer during a pass.

    ``add``: a tensor added to the layer's output (the perturbation whose
    gradient is d/d output). ``linear``: run the layer without its fused
    activation (a Dense softmax's logits, a conv's pre-activation), or pass an
    ``Activation``/``Softmax`` layer's input through. ``replace``:
    ``fn(layer, call, *args, **kwargs)`` computes the output instead (``call``
    is the layer's own, without its activation when ``linear``). ``stop``: end
    the pass after this layer.
    ``capture``: keep the output in :attr:`Trace.captured`; with ``reduce``, keep
    ``reduce(output)`` instead (a few numbers per channel), so that a pass
    tapping every layer does not hold every layer's map.
    """

    capture: bool = True
    reduce: Callable[[Any], Any] | None = None
    add: Any = None
    linear: bool = False
    replace: Callable[..., Any] | None = None
    stop: bool = False
    # A token output on a patch grid (set by forward.run from the anatomy): ``capture`` and ``reduce`` see
    # the patch tokens as a (N, height, width, C) map, and ``add`` is such a map (zero at the class tokens).
    grid: Any = None


@dataclass
class Trace:
    """What a pass returned: captured outputs by path, and the model's output (None if stopped)."""

    captured: dict[str, Any] = field(default_factory=dict)
    output: Any = None
    stopped: bool = False


class _Session:
    def __init__(
        self,
        paths: dict[int, str],
        taps: dict[str, Tap] | None = None,
        records: list | None = None,
        outputs: dict | None = None,
    ) -> None:
        self.paths = paths
        self.taps = taps or {}
        self.records = records
        self.outputs = outputs  # id(output tensor) -> path of the innermost layer that returned it
        self._alive: list = []  # keeps recorded outputs alive so that their ids stay unique
        self.captured: dict[str, Any] = {}
        self.done: set[str] = set()

    def call(self, layer: Any, path: str, original: Callable, args: tuple, kwargs: dict) -> Any:
        index = None
        if self.records is not None:
            index = len(self.records)
            self.records.append((path, layer, _shape(args), None))
        tap = self.taps.get(path)
        if tap is None or path in self.done:
            out = original(*args, **kwargs)
        else:
            self.done.add(path)
            call = original
            if tap.linear:

                def call(*a: Any, **k: Any) -> Any:
                    return _without_activation(layer, original, a, k)

            if tap.replace is not None:
                out = tap.replace(layer, call, *args, **kwargs)
            else:
                out = call(*args, **kwargs)
            rest: tuple | None = None
            if tap.grid is not None and isinstance(out, (tuple, list)):
                out, rest = out[0], tuple(out[1:])  # a block that also returns its attention (DeiT)
            if tap.grid is not None and (len(out.shape) != 3 or out.shape[1] != tap.grid.tokens):
                # Another input size than the grid was found at: the tokens are another grid, so they are
                # handed over as tokens; a reshape here would silently mix images.
                tap = replace(tap, grid=None)
            if tap.add is not None:
                out = out + (tap.grid.from_map(tap.add) if tap.grid is not None else tap.add)
            if tap.capture:
                seen = tap.grid.to_map(out) if tap.grid is not None else out
                self.captured[path] = tap.reduce(seen) if tap.reduce is not None else seen
            if rest is not None:
                out = (out,) + rest
        if index is not None:
            self.records[index] = (path, layer, _shape(args), _shape(out))
        if self.outputs is not None and id(out) not in self.outputs:
            self.outputs[id(out)] = path
            self._alive.append(out)
        if tap is not None and tap.stop and path in self.done:
            raise StopTrace()
        return out


def _without_activation(layer: Any, original: Callable, args: tuple, kwargs: dict) -> Any:
    """The layer's output before its activation function."""
    if isinstance(layer, (keras.layers.Activation, keras.layers.Softmax, keras.layers.ReLU)):
        return args[0]
    activation = getattr(layer, "activation", None)
    if activation is None:
        return original(*args, **kwargs)
    object.__setattr__(layer, "activation", keras.activations.linear)
    try:
        return original(*args, **kwargs)
    finally:
        object.__setattr__(layer, "activation", activation)


_ACTIVE: list[_Session] = []


@contextlib.contextmanager
def _hooks(session: _Session, layers: Sequence[Any]) -> Iterator[None]:
    """Wrap the ``call`` of ``layers`` (instances only) for as long as ``session`` is active."""
    installed = []
    for layer in layers:
        if not isinstance(layer, keras.layers.Layer) or "call" in vars(layer):
            continue
        original = layer.call

        def hook(*args: Any, _layer: Any = layer, _original: Callable = original, **kwargs: Any) -> Any:
            session_now = _ACTIVE[-1] if _ACTIVE else None
            path = session_now.paths.get(id(_layer)) if session_now is not None else None
            if path is None:
                return _original(*args, **kwargs)
            return session_now.call(_layer, path, _original, args, kwargs)

        object.__setattr__(layer, "call", hook)
        installed.append(layer)
    _ACTIVE.append(session)
    try:
        yield
    finally:
        _ACTIVE.pop()
        for layer in installed:
            object.__delattr__(layer, "call")


@contextlib.contextmanager
def recording(
    model: Any, tree: dict[str, Any], records: list, skip_traceable: bool = False, outputs: dict | None = None
) -> Iterator[None]:
    """Record ``(path, layer, input shape, output shape)`` of every layer of ``tree`` that runs.

    With ``skip_traceable`` only layers inside opaque (non-functional) layers
    are hooked: a functional graph's own nodes are recorded by its trace.
    """
    if skip_traceable:
        chosen = {}
        for path, layer in tree.items():
            parent = path.rsplit("/", 1)[0] if "/" in path else None
            owner = tree.get(parent) if parent else model
            if owner is not None and not is_traceable(owner):
                chosen[path] = layer
    else:
        chosen = dict(tree)
    if not chosen:
        yield
        return
    session = _Session({id(layer): path for path, layer in chosen.items()}, records=records, outputs=outputs)
    with _hooks(session, list(chosen.values())):
        yield


def zeros(shape: Sequence[int | None], batch: int = 1, dtype: str = "float32") -> Any:
    """A zero tensor of ``shape`` (batch and unknown sizes filled in)."""
    dims = [batch] + [DEFAULT_SIZE if d is None else int(d) for d in list(shape)[1:]]
    if len(shape) >= 2 and shape[-1] is None:
        dims[-1] = 3
    return keras.ops.zeros(tuple(dims), dtype=dtype)
