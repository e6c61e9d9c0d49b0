"""Anchors: the HTML id of each figure, one rule for the whole report.

A finding links to the figure holding its evidence; both sides compute the
id here: ``<section>-<slug of the layer path>``.
"""

from __future__ import annotations

import re
import zlib
from typing import Any


def slug(text: Any) -> str:
    """An id-safe form of a layer path: ``vgg16/block1_conv1`` -> ``vgg16-block1-conv1``."""
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-") or "x"


def anchor_id(section: str, path: Any) -> str:
    """The HTML id of a section's figure for one layer: ``kernels-vgg16-block1-conv1``.

    Paths made only of lower-case letters, digits, ``_``, ``-`` and ``/`` keep a
    readable slug; any other name (Keras accepts ``<img src=x>`` and ``Conv 1``)
    gets a short hash of the exact path after the slug, so two odd names never
    share an id.
    """
    text = str(path)
    base = slug(text)
    if re.fullmatch(r"[a-z0-9_/\-]+", text):
        return f"{section}-{base}"
    return f"{section}-{base}-{zlib.crc32(text.encode()) & 0xFFFFFF:06x}"
