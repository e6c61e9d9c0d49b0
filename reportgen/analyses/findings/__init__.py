"""Audit findings: what is wrong with the model, as checks a reviewer (or CI) can act on.

- :mod:`.kinds`: every finding kind, its severity, label and evidence anchor (one registry);
- :mod:`.core`: a finding, and severities, caps, roll-ups, order and counts;
- :mod:`.weights`: checks over each layer's weight facts;
- :mod:`.activations`: checks over how units behave on real images;
- :mod:`.patterns`: the check over the filter-pattern ascent;
- :mod:`.faithfulness`: CAMs against the random and edge maps;
- :mod:`.robustness`: accuracy under the common corruptions and the attacks;
- :mod:`.causes`: which finding explains which (``caused_by``), from the model's graph.

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
from reportgen.analyses.findings.causes import link_causes, producers  # noqa: F401
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
from reportgen.finding_kinds import KINDS, SEVERITIES, anchor_id, slug  # noqa: F401
from reportgen.analyses.findings.patterns import check_patterns  # noqa: F401
from reportgen.analyses.findings.weights import dead_units, weight_findings  # noqa: F401


@dataclass(frozen=True)
class Check:
    """A group of checks and the analyses it reads."""

    name: str
    needs: tuple[str, ...]
    run: Callable[..., list[Finding]]
    kinds: tuple[str, ...] = ()  # the kinds of finding this check can report (a JUnit testcase each)


def _weights(model, inputs, t):
    return weight_findings(inputs["weights"], t)


def _activity(model, inputs, t):
    return activity_findings(model, inputs["activity"], t, dead_units(inputs["weights"], t))


def _patterns(model, inputs, t):
    return check_patterns(inputs["patterns"], t, dead_units(inputs["weights"], t))


def _sanity(model, inputs, t):
    from reportgen.analyses.findings.sanity import check_sanity

    return [f for result in inputs["sanity"] for f in check_sanity(result, t.sanity_correlation)]


def _attention(model, inputs, t):
    from reportgen.analyses.findings.attention import check_attention

    return check_attention(inputs["attention"], t)


def _faithfulness(model, inputs, t):
    from reportgen.analyses.findings.faithfulness import check_faithfulness

    return check_faithfulness(inputs["faithfulness"], t.faithfulness_margin, t.faithfulness_flat_band)


def _dataset(model, inputs, t):
    from reportgen.analyses.findings.dataset import check_dataset

    return check_dataset(inputs["dataset"], t)


def _robustness(model, inputs, t):
    from reportgen.analyses.findings.robustness import check_robustness

    return check_robustness(inputs["robustness"], t)


CHECKS = (
    Check(
        "weights",
        ("weights",),
        _weights,
        (
            "nonfinite_weights",
            "dead_filter",
            "dead_unit",
            "duplicate_filters",
            "bn_gamma",
            "bn_variance",
            "untrained_layer",
            "exploding_scale",
            "vanishing_scale",
            "over_trained",
            "under_trained",
        ),
    ),
    Check(
        "activations", ("weights", "activity"), _activity, ("inactive_unit", "inactive_layer", "saturation")
    ),
    Check("patterns", ("weights", "patterns"), _patterns, ("pattern_not_rising",)),
    Check("sanity", ("sanity",), _sanity, ("gradcam_sanity", "gradcam_sanity_uninformative")),
    Check("attention", ("attention",), _attention, ("attention_uniform", "attention_self")),
    Check(
        "faithfulness", ("faithfulness",), _faithfulness, ("cam_unfaithful", "cam_faithfulness_uninformative")
    ),
    Check(
        "dataset",
        ("dataset",),
        _dataset,
        (
            "overconfident",
            "underconfident",
            "label_issues",
            "leakage",
            "conflicting_duplicates",
            "accuracy_below_min",
            "ece_above_max",
            "label_issue_rate_above_max",
        ),
    ),
    Check("robustness", ("robustness",), _robustness, ("fragile_to_corruption", "adversarially_fragile")),
)


def checked_kinds(inputs: dict) -> list[str]:
    """The kinds of finding whose checks ran on ``inputs``: what report.json's ``findings_checked`` lists."""
    return [k for check in CHECKS if all(inputs.get(n) is not None for n in check.needs) for k in check.kinds]


def run_checks(model, inputs: dict, t) -> list[Finding]:
    """Every check whose needs are among ``inputs`` (analysis name -> typed result); a finding
    another one explains gets ``caused_by`` (:func:`.causes.link_causes`)."""
    found: list[Finding] = []
    for check in CHECKS:
        if all(inputs.get(n) is not None for n in check.needs):
            found += check.run(model, inputs, t)
    return link_causes(model, found)


def finish(found: list[Finding], t, layer_order: list[str]) -> list[Finding]:
    """Configured severities, per-layer caps and roll-ups over layers, most severe first."""
    found = apply_severity(found, t.severity)
    return sort_findings(rollup(cap(found, t.max_per_layer), t.rollup_layers), layer_order)


def audit(model, images=None, t=None, seed: int = 0, feeds=None, weights=None) -> list[Finding]:
    """The weight and activation findings of ``model`` (``images``: model input, N x H x W x C).

    What the findings section reports without the pattern ascent and the CAM
    sanity check: for CI gates, the fault-injection benchmark and the API.
    """
    import numpy as np

    from reportgen import config, graph
    from reportgen.analyses import activations as A
    from reportgen.analyses.weights import weight_analysis

    from reportgen import backend

    t = t if t is not None else config.load(None)
    with backend.precision():  # the report's full float32, and the caller's setting back after
        inputs = {
            "weights": weights
            if weights is not None
            else weight_analysis(model, seed, dead_kernel_norm=t.dead_kernel_norm)
        }
        if images is not None and len(images):
            x = np.asarray(images, dtype=np.float32)
            inputs["activity"] = A.unit_activity(
                model, A.batches_of(x, A.batch_size(model)), feeds, t.dead_activation, t.saturation_margin
            )
    return finish(run_checks(model, inputs, t), t, [r.path for r in graph.walk(model)])
