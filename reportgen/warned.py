"""Keras' warnings while a report runs: the known harmless ones caught, any other kept for page 1.

A report calls the model in ways its author may never have: a plain tensor
where a keras-hub backbone declares a dict of inputs, Swin's blocks built
outside their training loop. Keras warns about both, on stderr, once per call
site -- noise a reviewer cannot act on. Those messages are known here and
dropped, each with the reason it does not matter. Any other warning raised
while the report runs is kept (a ``keras_warning`` note on page 1, its first
line) and still shown once on stderr: reportgen cannot judge it, so it does not
hide it.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from dataclasses import dataclass
from typing import Iterator


@dataclass(frozen=True)
class Known:
    pattern: str
    why: str  # why it does not matter to a report


KNOWN: tuple[Known, ...] = (
    Known(
        r"The structure of `inputs` doesn't match the expected structure",
        "keras-hub backbones declare a dict of inputs "
        "({'images': ...}); reportgen feeds the one image tensor, "
        "which Keras matches to that one input",
    ),
    Known(
        r"was passed an input with a mask attached to it\. However, this layer does not support masking",
        "Swin's WindowAttention receives the Keras mask of a reshape; the model uses no padding mask, so "
        "nothing is lost",
    ),
    Known(
        r"Skipping variable loading for optimizer ",
        "a saved optimizer's state; a report reads the model and never trains it",
    ),
    Known(
        r"`compile\(\)` was not called as part of model loading because the model's `compile\(\)` method is "
        r"custom",
        "a keras-hub task compiles itself; a report never trains it",
    ),
)
_KNOWN = re.compile("|".join(f"(?:{k.pattern})" for k in KNOWN))


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Ignore the known harmless warnings inside (loading a model); every other one still reaches the user."""
    with warnings.catch_warnings():
        for k in KNOWN:
            warnings.filterwarnings("ignore", message=f".*{k.pattern}")
        yield


def known(message: str) -> bool:
    """Whether ``message`` is one of the harmless warnings of :data:`KNOWN`."""
    return _KNOWN.search(message) is not None


@dataclass
class Kept:
    """The warnings raised inside :func:`caught` that are not known to be harmless (first lines, in order)."""

    messages: list[str]


@contextlib.contextmanager
def caught() -> Iterator[Kept]:
    """Drop the known harmless warnings raised inside; keep the others' first lines and show each once
    after."""
    kept = Kept([])
    with warnings.catch_warnings(record=True) as got:  # the filters in force decide what is raised at all
        yield kept
    seen: set[str] = set()
    for w in got:
        text = str(w.message)
        if known(text) or text in seen:
            continue
        seen.add(text)
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        if issubclass(w.category, (DeprecationWarning, PendingDeprecationWarning)):
            continue  # meant for developers (shown where their filters ask), not a note for a reviewer
        kept.messages.append(f"{w.category.__name__}: {text.strip().splitlines()[0] if text.strip() else ''}")
