"""A finding, and what happens to findings after the checks: severity, caps, roll-ups, order, counts.

A finding is a dict (it is what report.json holds)::

    {kind, severity, layer, filter, value, threshold, message, anchor}

and, where another finding explains it, ``caused_by``: ``{kind, layer, filter}`` of that
finding (:mod:`.causes`).

``filter`` is the output filter / unit / channel the finding is about (else
``None``); ``value`` the measured number that crossed ``threshold``;
``message`` one sentence saying what is wrong and what to do; ``anchor`` the
id of the report figure holding the evidence (:mod:`.kinds`).
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np

from reportgen.finding_kinds import KINDS, SEVERITIES, exceeds  # noqa: F401  (exceeds: re-exported)

Finding = dict
SEVERITY_RANK = {s: i for i, s in enumerate(SEVERITIES)}


def finding(
    kind: str,
    layer: str | None,
    filter: int | None,
    value: Any,
    threshold: Any,
    message: str,
    anchor: str | None = None,
) -> Finding:
    """One finding with its kind's default severity and anchor."""
    k = KINDS[kind]
    return {
        "kind": kind,
        "severity": k.severity,
        "layer": layer,
        "filter": None if filter is None else int(filter),
        "value": None if value is None or not np.isfinite(float(value)) else float(value),
        "threshold": None if threshold is None else float(threshold),
        "message": message,
        "anchor": anchor if anchor is not None else k.anchor(layer),
    }


def num(v: float) -> str:
    """A number in a message: short, NaN/Inf spelled out."""
    if v is None:
        return "n/a"
    if not np.isfinite(v):
        return "NaN" if np.isnan(v) else ("Inf" if v > 0 else "-Inf")
    if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e4):
        return f"{v:.2e}"
    return f"{v:.3g}"


def apply_severity(findings: Sequence[Finding], severity: dict[str, str]) -> list[Finding]:
    """Set each finding's severity from the configuration; drop kinds switched ``off``."""
    out = []
    for f in findings:
        level = severity.get(f["kind"], f["severity"])
        if level == "off":
            continue
        out.append({**f, "severity": level})
    return out


def cap(findings: Sequence[Finding], per_layer: int) -> list[Finding]:
    """At most ``per_layer`` findings of one kind in one layer; the rest summed up in one."""
    groups: dict[tuple, list[Finding]] = {}
    for f in findings:
        groups.setdefault((f["kind"], f["layer"]), []).append(f)
    out = []
    for (kind, layer), group in groups.items():
        out.extend(group[:per_layer])
        rest = group[per_layer:]
        if rest:
            more = ", ".join(str(f["filter"]) for f in rest[:20]) + (", ..." if len(rest) > 20 else "")
            # The sum's cause: only when one layer's findings of one kind explain every one of them.
            first = {k: v for k, v in rest[0].items() if k != "caused_by"}
            causes = [f.get("caused_by") for f in rest]
            if all(causes) and len({(c["kind"], c["layer"]) for c in causes}) == 1:
                first["caused_by"] = {
                    "kind": causes[0]["kind"],
                    "layer": causes[0]["layer"],
                    "filter": None,
                    "filters": [c["filter"] for c in causes],
                }
            out.append(
                {
                    **first,
                    "filter": None,
                    "value": float(len(rest)),
                    "threshold": None,
                    "filters": [f["filter"] for f in rest],
                    "message": f"{len(rest)} more {kind.replace('_', ' ')} finding(s) in {layer} "
                    f"(filters {more}); report.json lists them all under 'filters'.",
                }
            )
    return out


def rollup(findings: Sequence[Finding], over_layers: int) -> list[Finding]:
    """A kind found in more than ``over_layers`` layers becomes ONE finding that lists the layers.

    An untrained 150-layer model gets one "untrained" finding naming the
    layers, not 150 rows. The entry keeps every underlying finding in
    ``items`` (layer, filter, value), so report.json still holds each one;
    ``value`` is the number of layers, ``layers`` lists them in model order.
    """
    by_kind: dict[tuple[str, str], list[Finding]] = {}
    for f in findings:
        by_kind.setdefault((f["kind"], f["severity"]), []).append(f)
    out: list[Finding] = []
    for (kind, severity), group in by_kind.items():
        layers = list(dict.fromkeys(f["layer"] for f in group if f["layer"] is not None))
        if len(layers) <= over_layers:
            out.extend(group)
            continue
        label = KINDS[kind].label
        units = sum(len(f.get("filters") or []) + (f["filter"] is not None) for f in group)
        listed = ", ".join(layers[:8]) + (f", … ({len(layers) - 8} more)" if len(layers) > 8 else "")
        what = f" ({units} filters/units in all)" if units else ""
        out.append(
            {
                "kind": kind,
                "severity": severity,
                "layer": None,
                "filter": None,
                "value": float(len(layers)),
                "threshold": group[0]["threshold"],
                "layers": layers,
                "items": [
                    {
                        "layer": f["layer"],
                        "filter": f["filter"],
                        "value": f["value"],
                        **({"filters": f["filters"]} if f.get("filters") else {}),
                        **({"caused_by": f["caused_by"]} if f.get("caused_by") else {}),
                    }
                    for f in group
                ],
                "message": f"{label} in {len(layers)} layers{what}: "
                f"{listed}. For example: {group[0]['message']}",
                "anchor": group[0]["anchor"],
            }
        )
    return out


def sort_findings(findings: Sequence[Finding], layer_order: Sequence[str] = ()) -> list[Finding]:
    """Most severe first, then in model order, then by filter."""
    pos = {p: i for i, p in enumerate(layer_order)}

    def key(f: Finding) -> tuple:
        layer = f["layer"] if f["layer"] is not None else (f.get("layers") or [None])[0]
        return (
            -SEVERITY_RANK[f["severity"]],
            pos.get(layer, len(pos)),
            f["filter"] if f["filter"] is not None else 1 << 30,
        )

    return sorted(findings, key=key)


def summarise(findings: Iterable[Finding]) -> dict[str, int]:
    """Counts by severity, most severe first: ``{error: n, warning: n, info: n}``."""
    counts = {s: 0 for s in reversed(SEVERITIES)}
    for f in findings:
        counts[f["severity"]] += 1
    return counts
