"""A figure as the describe stage leaves it: which painter draws it and the data it shows, not drawn.

Sections build :class:`Figure` specs; only the present stage draws them (:func:`reportgen.render.draw_figures`
calls :meth:`Figure.draw` before the page is templated), so a JSON-only run draws nothing. Painters, the
drawing functions, live in :mod:`reportgen.painters` and register here by name when that package is
imported: this module imports no plotting, and sections never import the painters.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Sequence, TypeVar

import numpy as np

Paint = Callable[..., str]
P = TypeVar("P", bound=Paint)

PAINTERS: dict[str, Paint] = {}  # painter name -> drawing function returning a data URI


def painter(name: str) -> Callable[[P], P]:
    """Register the decorated function as the painter ``name``; a second function under one name is a bug."""

    def register(fn: P) -> P:
        old = PAINTERS.get(name)
        if old is not None and (old.__module__, old.__qualname__) != (fn.__module__, fn.__qualname__):
            raise ValueError(f"two painters named {name!r}: {old.__qualname__} and {fn.__qualname__}")
        PAINTERS[name] = fn
        return fn

    return register


class Figure:
    """What to draw (a painter's name and its arguments: arrays, numbers, strings); :meth:`draw` draws it.

    Not a string: it draws only when asked, once (a page shown as HTML and as PDF draws it once), and
    compares by identity. Truthy, so a template may test ``{% if fig %}``.
    """

    __slots__ = ("_painter", "_args", "_kwargs", "_uri")

    def __init__(self, painter: str, *args: Any, **kwargs: Any) -> None:
        self._painter, self._args, self._kwargs, self._uri = painter, args, kwargs, None

    @property
    def painter(self) -> str:
        return self._painter

    @property
    def args(self) -> tuple:
        return self._args

    @property
    def kwargs(self) -> dict:
        return dict(self._kwargs)

    @property
    def drawn(self) -> bool:
        return self._uri is not None

    def draw(self) -> str:
        """The figure as a data URI (PNG, JPEG or SVG), drawn by its painter on the first call."""
        if self._uri is None:
            paint = PAINTERS.get(self._painter)
            if paint is None:
                raise LookupError(
                    f"no painter {self._painter!r} is registered; import reportgen.painters (the present "
                    "stage does) before drawing"
                )
            self._uri = paint(*self._args, **self._kwargs)
            self._args, self._kwargs = (), {}  # the data it was drawn from can go
        return self._uri

    def __repr__(self) -> str:
        return f"Figure({self._painter!r}{', drawn' if self.drawn else ''})"


def find(value: Any) -> Iterator[Figure]:
    """Every Figure in ``value``'s dicts, lists and tuples (a view, the page's variables), in order."""
    if isinstance(value, Figure):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from find(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from find(v)


def chartable(panel: dict) -> bool:
    """Whether a depth chart's panel has a value to draw (a positive one on a log axis)."""
    vals = np.array([np.nan if v is None else float(v) for v in panel["values"]], dtype=np.float64)
    ok = np.isfinite(vals) & ((vals > 0) if panel.get("log") else True)
    return bool(ok.any())


def chart_gaps(panels: Sequence[dict]) -> list[str]:
    """Why each panel of a depth chart is left out (no value to draw): data, for captions, without drawing."""

    def why(p: dict) -> str:
        if any(v is not None and np.isfinite(float(v)) for v in p["values"]):
            return f"{p['name']} not charted: no value above 0, which a log scale cannot show"
        return p.get("empty") or f"{p['name']} not charted: no layer has a value"

    return [why(p) for p in panels if not chartable(p)]
