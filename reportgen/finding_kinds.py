"""Every kind of finding, defined once: severity, label, evidence section, anchor.

The one registry of finding kinds (as ydata-profiling's ``AlertType``). It
sits below the configuration and the analyses, importing neither: the
configuration reads default severities from it, the findings table its
labels, and each finding its anchor -- the id of the report figure that holds
the evidence, ``<section>-<slug of the layer path>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reportgen.anchors import anchor_id, slug  # noqa: F401  (re-exported)

SEVERITIES = ("info", "warning", "error")  # one tuple of severities, lowest first
SEVERITY_RANK = {s: i for i, s in enumerate(SEVERITIES)}


def exceeds(findings: Any, level: str | None) -> bool:
    """True when a finding at or above ``level`` (``warning`` or ``error``) exists: ``--fail-on``.

    Here, below the analyses, so that a gate (the exit status, an index of earlier reports) can read
    report.json's findings without importing Keras.
    """
    if level is None:
        return False
    if level not in SEVERITY_RANK:
        raise ValueError(f"unknown severity {level!r}")
    need = SEVERITY_RANK[level]
    return any(SEVERITY_RANK[f["severity"]] >= need for f in findings)


@dataclass(frozen=True)
class Kind:
    """One kind of finding."""

    name: str
    severity: str  # default: info | warning | error
    label: str  # short, for the findings table
    section: str  # the section whose figure shows the evidence
    fixed_anchor: str | None = None  # an anchor that does not depend on the layer
    what: str = ""  # one line for docs/findings.md

    def anchor(self, layer: str | None) -> str | None:
        if self.fixed_anchor is not None:
            return self.fixed_anchor
        return anchor_id(self.section, layer) if layer is not None else None


_ALL = [
    Kind("nonfinite_weights", "error", "NaN/Inf weights", "weights",
         what="a weight (kernel, bias, BN statistic) is NaN or Inf"),
    Kind("dead_filter", "warning", "dead filter", "kernels",
         what="a convolution filter's kernel has (near) zero norm: it ignores its input"),
    Kind("dead_unit", "warning", "dead unit", "weights",
         what="a Dense unit with all-zero incoming weights: a constant output"),
    Kind("inactive_unit", "info", "inactive unit", "features",
         what="a ReLU unit outputs 0 on every one of at least inactive_min_images images"),
    Kind("inactive_layer", "warning", "inactive layer", "features",
         what="most of a ReLU layer's units output 0 on the images"),
    Kind("untrained_layer", "warning", "untrained layer", "weights",
         what="the kernel is indistinguishable from a fresh initialisation, or a norm's or LayerScale's gains "
              "never left their initial value"),
    Kind("duplicate_filters", "warning", "duplicate filters", "kernels",
         what="two filters of one convolution point the same way"),
    Kind("exploding_scale", "warning", "exploding scale", "weights",
         what="the kernel's std is far above its initialiser's"),
    Kind("vanishing_scale", "warning", "vanishing scale", "weights",
         what="the kernel's std is far below its initialiser's"),
    Kind("over_trained", "info", "over-trained (alpha)", "weights", fixed_anchor="weights-alpha",
         what="the power law fitted to the eigenvalues of WᵀW has alpha below alpha_over_trained"),
    Kind("under_trained", "info", "under-trained (alpha)", "weights", fixed_anchor="weights-alpha",
         what="the power law fitted to the eigenvalues of WᵀW has alpha above alpha_under_trained"),
    Kind("saturation", "warning", "saturation", "features",
         what="most sigmoid/tanh outputs sit at the function's limits"),
    Kind("bn_gamma", "warning", "BN gamma ~ 0", "findings-bn",
         what="a BatchNormalization channel with gamma ~ 0 outputs a constant"),
    Kind("bn_variance", "warning", "BN variance ~ 0", "findings-bn",
         what="a BatchNormalization channel whose input was constant in training"),
    Kind("gradcam_sanity", "warning", "Grad-CAM sanity", "findings", fixed_anchor="findings-sanity",
         what="the CAM does not change when the weights are randomised"),
    Kind("cam_unfaithful", "warning", "CAM unfaithful", "gradcam", fixed_anchor="gradcam-faithfulness-0",
         what="deleting/inserting pixels in the CAM's order moves the score no more than in a random or edge map's"),
    Kind("pattern_not_rising", "info", "pattern not rising", "patterns",
         what="a filter's objective did not rise during the pattern ascent"),
    Kind("fragile_to_corruption", "warning", "fragile to corruption", "robustness",
         fixed_anchor="robustness-corruptions",
         what="a common corruption at severity 3 lowers accuracy (without labels: agreement with the clean "
              "prediction) by more than corruption_drop"),
    Kind("adversarially_fragile", "warning", "adversarially fragile", "robustness",
         fixed_anchor="robustness-adversarial",
         what="under PGD at eps = adversarial_epsilon (pixel units) the accuracy (without labels: agreement) falls "
              "below adversarial_accuracy"),
    Kind("attention_uniform", "info", "uniform attention head", "gradcam", fixed_anchor="attention",
         what="a transformer head attends almost uniformly to every token on the given images"),
    Kind("attention_self", "info", "self-only attention head", "gradcam", fixed_anchor="attention",
         what="a transformer head keeps nearly all of each token's attention on the token itself"),
]

KINDS: dict[str, Kind] = {k.name: k for k in _ALL}
DEFAULT_SEVERITY: dict[str, str] = {k.name: k.severity for k in _ALL}
