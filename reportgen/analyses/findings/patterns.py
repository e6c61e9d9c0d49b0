"""The check that reads the filter-pattern ascent."""

from __future__ import annotations

from typing import Any

import numpy as np

from reportgen.analyses.findings.core import Finding, finding, num
from reportgen.config import Thresholds


def check_patterns(patterns: dict[str, Any], t: Thresholds, dead_by_weights: dict[str, set[int]] | None = None) -> list[Finding]:
    """Filters whose objective never rose during the pattern gradient ascent.

    ``patterns`` maps layer paths to results with ``filters``,
    ``activation_start``, ``activation_end`` and ``dead`` (a
    :class:`~reportgen.analyses.patterns.PatternResult`, or its JSON).
    Filters already dead by their weights are not reported again.
    """
    dead_by_weights = dead_by_weights or {}
    out = []
    for path, entry in (patterns or {}).items():
        get = (lambda k: entry.get(k)) if isinstance(entry, dict) else (lambda k: getattr(entry, k, None))
        filters, start, end = get("filters"), get("activation_start"), get("activation_end")
        flagged: dict[int, float] = {}
        change: dict[int, float] = {}
        if filters is not None and start is not None and end is not None and len(start) == len(end) == len(filters):
            for f, s, e in zip(filters, start, end):
                change[int(f)] = float("nan") if s is None or e is None else float(e - s)
                if s is None or e is None or not np.isfinite(e - s) or e - s <= t.pattern_min_rise:
                    flagged[int(f)] = change[int(f)]
        for f in get("dead") or []:
            flagged.setdefault(int(f), change.get(int(f), float("nan")))
        for f in sorted(flagged):
            if f in dead_by_weights.get(path, set()):
                continue
            rise = flagged[f]
            out.append(finding(
                "pattern_not_rising", path, f, rise if np.isfinite(rise) else None, t.pattern_min_rise,
                f"the objective of filter {f} of {path} never rose during the pattern ascent "
                f"(change {num(rise)}): its pattern shows nothing; the filter may be dead or "
                "need more --pattern-steps."))
    return out
