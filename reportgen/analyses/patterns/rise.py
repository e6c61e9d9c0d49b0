"""When a filter's objective "rose": ONE definition for the ascent, the patterns section and the findings.

A filter's rise is measured against its own activation scale, ``max(|start|,
|end|)`` of the mean objective: deep layers of an untrained network output
~1e-6 and still rise by tens of percent, while a first layer whose bias
dominates can gain 0.03 on 0.18 and show nothing but its start noise.

- ``relative_rise = (end - start) / max(|start|, |end|)``, from -2 to 2
  (0 where both are 0; NaN where either is not finite);
- *flat*: ``relative_rise <= pattern_min_rise`` (default 1e-6: did not rise at
  all; the mosaic marks it, the ``pattern_not_rising`` finding reports it);
- *rose*: ``relative_rise >= pattern_rise_margin`` (default 0.5: for a
  positive start, the end is at least twice the start);
- in between: *barely moved*.

The thresholds are :class:`reportgen.config.Thresholds` fields
(``[tool.reportgen]``, docs/findings.md).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from reportgen.config import Thresholds

FLAT_TOLERANCE = Thresholds.pattern_min_rise
RISE_MARGIN = Thresholds.pattern_rise_margin


def relative_rise(start: Sequence[float] | np.ndarray, end: Sequence[float] | np.ndarray) -> np.ndarray:
    """Per filter: (end - start) / max(|start|, |end|); 0 where both are 0, NaN where not finite."""
    s = np.asarray([np.nan if v is None else v for v in np.ravel(start)], dtype=np.float64)
    e = np.asarray([np.nan if v is None else v for v in np.ravel(end)], dtype=np.float64)
    scale = np.maximum(np.abs(s), np.abs(e))
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = np.where(scale > 0, (e - s) / np.where(scale > 0, scale, 1.0), 0.0)
    rel[~(np.isfinite(s) & np.isfinite(e))] = np.nan
    return rel


def flat(
    start: Sequence[float] | np.ndarray, end: Sequence[float] | np.ndarray, tolerance: float = FLAT_TOLERANCE
) -> np.ndarray:
    """Per filter: did the objective fail to rise at all (relative rise at most ``tolerance``, or not
    finite)?"""
    rel = relative_rise(start, end)
    return ~(rel > tolerance)  # NaN compares False: not finite counts as flat


def rose(
    start: Sequence[float] | np.ndarray, end: Sequence[float] | np.ndarray, margin: float = RISE_MARGIN
) -> np.ndarray:
    """Per filter: did the objective rise by at least ``margin`` of its activation scale?"""
    rel = relative_rise(start, end)
    return rel >= margin  # NaN compares False


def counts(
    start: Sequence[float] | np.ndarray,
    end: Sequence[float] | np.ndarray,
    margin: float = RISE_MARGIN,
    tolerance: float = FLAT_TOLERANCE,
) -> dict[str, int]:
    """``{"rose", "barely_moved", "flat"}``: every filter in exactly one (the margin above the tolerance)."""
    up = rose(start, end, margin)
    down = flat(start, end, tolerance) & ~up
    return {"rose": int(up.sum()), "barely_moved": int((~up & ~down).sum()), "flat": int(down.sum())}


# A displayed pattern whose interior varies by less than this many grey levels (0-255, standard deviation)
# shows nothing a reader can see: a flat grey tile, whatever its activation did (the numbers can rise on
# changes of a level or two, or only at the borders, where padding gives the filters an edge to work on).
VISIBLE_STD = 4.0


def visible(images: np.ndarray, border: float = 0.125) -> np.ndarray:
    """Per displayed pattern (n, size, size, channels uint8): whether its interior -- ``border`` of each side
    left out -- varies by at least :data:`VISIBLE_STD` grey levels."""
    a = np.asarray(images, dtype=np.float64)
    if a.ndim < 3 or a.size == 0:
        return np.zeros(len(a), dtype=bool)
    size = a.shape[1]
    k = int(round(size * border)) if size >= 8 else 0
    inner = a[:, k : size - k, k : a.shape[2] - k] if k else a
    return inner.reshape(len(a), -1).std(axis=1) >= VISIBLE_STD
