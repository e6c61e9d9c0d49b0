"""The one scheduler: analyses are functions whose parameters name their inputs, and the graph is read
from their signatures.

An analysis is registered with :func:`analysis`; each parameter is either another analysis' name or one
of :data:`GIVEN` (the loaded model and the options the report started from). :func:`compute` runs the
analyses a report needs, each after its inputs, once, and returns one frozen :class:`Results`. Reading a
result never computes anything, and a failed analysis is never run again: it stays a failure that the
sections which need it report. docs/architecture.md has a worked example.
"""

from __future__ import annotations

import inspect
import time
import traceback
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

if TYPE_CHECKING:
    from reportgen.loading import LoadedModel
    from reportgen.options import Options

# What every analysis may ask for without it being an analysis: the model as loaded, its Keras object, the
# report's options and a progress-bar factory (None when quiet in tests).
GIVEN = ("loaded", "model", "options", "progress")


@dataclass(frozen=True)
class Analysis:
    """One registered analysis: its function, the analyses it reads (from its signature) and whether it
    reads the user's input files (``early``: run before the sections' checks, so bad input is exit 2 before
    any expensive work)."""

    name: str
    function: Callable[..., Any]
    needs: tuple[str, ...]
    params: tuple[str, ...]
    early: bool = False


ANALYSES: dict[str, Analysis] = {}


def analysis(function: Callable[..., Any] | None = None, *, early: bool = False) -> Any:
    """Register ``function`` as the analysis named like it; its parameters other than :data:`GIVEN` name
    the analyses it needs. Usable bare (``@analysis``) or with ``early=True``."""

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        params = inspect.signature(fn).parameters
        needs = tuple(p for p in params if p not in GIVEN)
        if fn.__name__ in GIVEN:
            raise ValueError(f"an analysis may not be named like a given input: {fn.__name__}")
        ANALYSES[fn.__name__] = Analysis(fn.__name__, fn, needs, tuple(params), early)
        return fn

    return register(function) if function is not None else register


def needs(name: str) -> tuple[str, ...]:
    """The analyses ``name`` reads, from its signature."""
    return ANALYSES[name].needs


def schedule(names: Iterable[str]) -> list[str]:
    """``names`` and everything they need, each after its needs (depth-first); the ``early`` ones (and what
    they need) come first."""
    order: list[str] = []
    seen: set[str] = set()
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in seen:
            return
        if name in visiting:
            raise ValueError(f"analyses depend on each other in a cycle through '{name}'")
        if name not in ANALYSES:
            raise KeyError(f"no analysis named '{name}' (registered: {', '.join(sorted(ANALYSES))})")
        visiting.add(name)
        for need in ANALYSES[name].needs:
            visit(need)
        visiting.discard(name)
        seen.add(name)
        order.append(name)

    for name in names:
        visit(name)
    early: set[str] = set()
    for name in order:  # an early analysis pulls its needs forward with it
        if ANALYSES[name].early:
            stack = [name]
            while stack:
                n = stack.pop()
                if n not in early:
                    early.add(n)
                    stack.extend(ANALYSES[n].needs)
    return [n for n in order if n in early] + [n for n in order if n not in early]


@dataclass(frozen=True)
class Failure:
    """An analysis that raised: the sections that need it fail with this, once."""

    error: str  # the exception's type
    message: str  # its first line
    traceback: str = ""


class NotComputed(AttributeError):
    """A result read that this report did not compute: the reader forgot to declare it (a section's
    ``NEEDS``), or the analysis failed (``Results.failed`` says why)."""


@dataclass(frozen=True)
class Results:
    """What the analyses found, frozen: ``results.cams``, ``results.weights``, ... for each analysis that
    ran; :meth:`get` for one that may have failed; ``failed`` and ``timings`` for the page's bookkeeping."""

    values: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    failed: Mapping[str, Failure] = field(default_factory=lambda: MappingProxyType({}))
    timings: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("values", "failed", "timings"):
            raise AttributeError(name)
        values = object.__getattribute__(self, "values")
        if name in values:
            return values[name]
        failed = object.__getattribute__(self, "failed")
        if name in failed:
            raise NotComputed(f"analysis '{name}' failed: {failed[name].message}")
        raise NotComputed(f"analysis '{name}' was not computed for this report (declare it in NEEDS)")

    def get(self, name: str) -> Any:
        """The result, or None when it failed or was not computed (for a reader that can do without it)."""
        return self.values.get(name)

    def ran(self, name: str) -> bool:
        """Whether ``name`` was computed and succeeded."""
        return name in self.values

    if TYPE_CHECKING:  # the report's analyses (reportgen.steps), typed for readers and checkers
        from reportgen.analyses.cam.explained import Explained
        from reportgen.analyses.cam.head import Head
        from reportgen.analyses.patterns.layers import PatternSet
        from reportgen.config import Thresholds
        from reportgen.preprocessing import Preprocessor

        thresholds: Thresholds
        head: Head
        preprocessor: Preprocessor
        cams: Explained
        patterns: PatternSet
        images: list
        weights: dict
        weight_findings: list
        class_names: list[str] | None


def compute(
    loaded: LoadedModel,
    options: Options,
    names: Iterable[str],
    progress: Callable[..., Any] | None = None,
    *,
    given: Results | None = None,
    only_early: bool = False,
) -> Results:
    """Run ``names`` and what they need, in order, each once; returns everything computed so far.

    ``given``: results of an earlier call, kept and not recomputed (their failures included).
    ``only_early``: stop after the analyses that read the user's inputs. Bad input (``BadInput`` and the
    options' own ``UserError`` from an early analysis) and interrupts stop the report; any other failure is
    kept for the sections that need it.
    """
    import numpy as np

    from reportgen.errors import BadInput, UserError

    values = dict(given.values) if given else {}
    failed = dict(given.failed) if given else {}
    timings = dict(given.timings) if given else {}
    inputs = {"loaded": loaded, "model": loaded.model, "options": options, "progress": progress}
    order = schedule(names)
    if only_early:
        first = [n for n in order if ANALYSES[n].early]
        order = schedule(first) if first else []
    for name in order:
        step = ANALYSES[name]
        if name in values or name in failed:
            continue
        broken = [n for n in step.needs if n in failed]
        if broken:
            failed[name] = failed[broken[0]]
            continue
        started = time.perf_counter()
        kwargs = {p: inputs[p] if p in inputs else values[p] for p in step.params}
        try:
            # A model whose weights or outputs overflow makes NaN and Inf on the way: the report says so
            # (findings, notes), and NumPy's RuntimeWarnings would only add lines to stderr.
            with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
                values[name] = step.function(**kwargs)
        except (BadInput, KeyboardInterrupt):
            raise
        except UserError:
            if step.early:
                raise  # a bad --image, --images or --preprocess: exit 2 before any expensive work
            failed[name] = Failure(*_failure())
        except Exception:  # one analysis' bug or limit sinks only the sections that need it
            failed[name] = Failure(*_failure())
        finally:
            timings[name] = timings.get(name, 0.0) + time.perf_counter() - started
    return Results(MappingProxyType(values), MappingProxyType(failed), MappingProxyType(timings))


def _failure() -> tuple[str, str, str]:
    import sys

    from reportgen.errors import one_line

    exc = sys.exc_info()[1]
    assert exc is not None
    return type(exc).__name__, one_line(exc), traceback.format_exc()
