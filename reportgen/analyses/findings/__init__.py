"""Audit findings: what is wrong with the model, as checks a reviewer (or CI) can act on.

- :mod:`.kinds`: every finding kind, its severity, label and evidence anchor (one registry);
- :mod:`.core`: a finding, and severities, caps, roll-ups, order and counts;
- :mod:`.weights`: checks over each layer's weight facts;
- :mod:`.activations`: checks over how units behave on real images;
- :mod:`.patterns`: the check over the filter-pattern ascent.

Each check declares what it needs (:data:`CHECKS`): the findings section runs
those whose inputs this report has, instead of reading other sections' output.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from reportgen.analyses.findings.activations import (  # noqa: F401
    activation_findings,
    activity_findings,
    check_dead_activations,
    check_saturation,
    output_paths,
)
from reportgen.analyses.findings.core import (  # noqa: F401
    SEVERITY_RANK,
    Finding,
    apply_severity,
    cap,
    exceeds,
    finding,
    rollup,
    sort_findings,
    summarise,
)
from reportgen.analyses.findings.kinds import KINDS, SEVERITIES, anchor_id, slug  # noqa: F401
from reportgen.analyses.findings.patterns import check_patterns  # noqa: F401
from reportgen.analyses.findings.weights import dead_units, weight_findings  # noqa: F401


@dataclass(frozen=True)
class Check:
    """A group of checks and the analyses it reads."""

    name: str
    needs: tuple[str, ...]
    run: Callable[..., list[Finding]]


def _weights(model, inputs, t):
    return weight_findings(inputs["weights"], t)


def _activity(model, inputs, t):
    return activity_findings(model, inputs["activity"], t, dead_units(inputs["weights"], t))


def _patterns(model, inputs, t):
    return check_patterns(inputs["patterns"], t, dead_units(inputs["weights"], t))


def _sanity(model, inputs, t):
    from reportgen.analyses.sanity import check_sanity

    return [f for result in inputs["sanity"] for f in check_sanity(result, t.sanity_correlation)]


CHECKS = (
    Check("weights", ("weights",), _weights),
    Check("activations", ("weights", "activity"), _activity),
    Check("patterns", ("weights", "patterns"), _patterns),
    Check("sanity", ("sanity",), _sanity),
)


def run_checks(model, inputs: dict, t) -> list[Finding]:
    """Every check whose needs are among ``inputs`` (analysis name -> typed result)."""
    found: list[Finding] = []
    for check in CHECKS:
        if all(inputs.get(n) is not None for n in check.needs):
            found += check.run(model, inputs, t)
    return found
