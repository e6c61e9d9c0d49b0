"""The check that reads the filter-pattern ascent."""

from __future__ import annotations

from typing import Any

import numpy as np

from reportgen.analyses.findings.core import Finding, finding, num
from reportgen.analyses.patterns import rise
from reportgen.config import Thresholds


def check_patterns(
    patterns: dict[str, Any], t: Thresholds, dead_by_weights: dict[str, set[int]] | None = None
) -> list[Finding]:
    """Filters whose objective never rose during the pattern gradient ascent.

    ``patterns`` maps layer paths to results with ``filters``,
    ``activation_start``, ``activation_end`` and ``dead`` (a
    :class:`~reportgen.analyses.patterns.PatternResult`, or its JSON).
    Filters already dead by their weights are not reported again. "Never
    rose" is :func:`reportgen.analyses.patterns.rise.flat` with
    ``pattern_min_rise``, relative to the filter's activation scale: the same
    definition the ascent uses to mark a tile *flat*.
    """
    dead_by_weights = dead_by_weights or {}
    out = []
    for path, entry in (patterns or {}).items():
        get = (lambda k: entry.get(k)) if isinstance(entry, dict) else (lambda k: getattr(entry, k, None))
        filters, start, end = get("filters"), get("activation_start"), get("activation_end")
        flagged: dict[int, float] = {}
        change: dict[int, float] = {}
        if (
            filters is not None
            and start is not None
            and end is not None
            and len(start) == len(end) == len(filters)
        ):
            is_flat = rise.flat(start, end, t.pattern_min_rise)
            for f, s, e, flat in zip(filters, start, end, is_flat):
                change[int(f)] = float("nan") if s is None or e is None else float(e) - float(s)
                if flat:
                    flagged[int(f)] = change[int(f)]
        for f in get("dead") or []:
            flagged.setdefault(int(f), change.get(int(f), float("nan")))
        for f in sorted(flagged):
            if f in dead_by_weights.get(path, set()):
                continue
            moved = flagged[f]
            if get("keep_mean") and get("objective") == "activation":
                why = (
                    "its activation was zero at every position of "
                    "the noise start, so the ascent, which keeps "
                    "the image's mean brightness, had no gradient: the filter may respond only to overall "
                    "brightness (see its kernel) or be dead."
                )
            else:
                why = "its pattern shows nothing; the filter may be dead or need more --pattern-steps."
            out.append(
                finding(
                    "pattern_not_rising",
                    path,
                    f,
                    moved if np.isfinite(moved) else None,
                    t.pattern_min_rise,
                    f"the objective of filter {f} of {path} never rose during the pattern ascent "
                    f"(change {num(moved)}): {why}",
                )
            )
    return out
