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
    value: str = ""  # what the findings table's Value column holds for this kind (shown under the number)

    def anchor(self, layer: str | None) -> str | None:
        if self.fixed_anchor is not None:
            return self.fixed_anchor
        return anchor_id(self.section, layer) if layer is not None else None


_ALL = [
    Kind(
        "nonfinite_weights",
        "error",
        "NaN/Inf weights",
        "weights",
        what="a weight (kernel, bias, BN statistic) is NaN or Inf",
        value="NaN + Inf count",
    ),
    Kind(
        "dead_filter",
        "warning",
        "dead filter",
        "kernels",
        what="a convolution filter's kernel has (near) zero norm: it ignores its input",
        value="kernel norm",
    ),
    Kind(
        "dead_unit",
        "warning",
        "dead unit",
        "weights",
        what="a Dense unit with all-zero incoming weights: a constant output",
        value="weight norm",
    ),
    Kind(
        "inactive_unit",
        "info",
        "inactive unit",
        "features",
        what="a ReLU unit outputs 0 on every one of at least inactive_min_images images",
        value="peak output",
    ),
    Kind(
        "inactive_layer",
        "warning",
        "inactive layer",
        "features",
        what="most of a ReLU layer's units output 0 on the images",
        value="fraction silent",
    ),
    Kind(
        "untrained_layer",
        "warning",
        "untrained layer",
        "weights",
        what="the kernel is indistinguishable from a fresh initialisation, or a norm's or LayerScale's gains "
        "never left their initial value",
        value="KS statistic",
    ),
    Kind(
        "duplicate_filters",
        "warning",
        "duplicate filters",
        "kernels",
        what="two filters of one convolution point the same way",
        value="cosine similarity",
    ),
    Kind(
        "exploding_scale",
        "warning",
        "exploding scale",
        "weights",
        what="the kernel's std is far above its initialiser's",
        value="std ÷ initialiser's",
    ),
    Kind(
        "vanishing_scale",
        "warning",
        "vanishing scale",
        "weights",
        what="the kernel's std is far below its initialiser's",
        value="std ÷ initialiser's",
    ),
    Kind(
        "over_trained",
        "info",
        "over-trained (alpha)",
        "weights",
        fixed_anchor="weights-alpha",
        what="the power law fitted to the eigenvalues of WᵀW has alpha below alpha_over_trained",
        value="spectral alpha",
    ),
    Kind(
        "under_trained",
        "info",
        "under-trained (alpha)",
        "weights",
        fixed_anchor="weights-alpha",
        what="the power law fitted to the eigenvalues of WᵀW has alpha above alpha_under_trained",
        value="spectral alpha",
    ),
    Kind(
        "saturation",
        "warning",
        "saturation",
        "features",
        what="most sigmoid/tanh outputs sit at the function's limits",
        value="fraction saturated",
    ),
    Kind(
        "bn_gamma",
        "warning",
        "BN gamma ~ 0",
        "findings-bn",
        what="a BatchNormalization channel with gamma ~ 0 outputs a constant",
        value="|gamma|",
    ),
    Kind(
        "bn_variance",
        "warning",
        "BN variance ~ 0",
        "findings-bn",
        what="a BatchNormalization channel whose input was constant in training",
        value="moving variance",
    ),
    Kind(
        "gradcam_sanity",
        "warning",
        "Grad-CAM sanity",
        "findings",
        fixed_anchor="findings-sanity",
        what="the CAM does not change when the weights are randomised",
        value="rank correlation",
    ),
    Kind(
        "cam_unfaithful",
        "warning",
        "CAM unfaithful",
        "gradcam",
        fixed_anchor="gradcam-faithfulness-0",
        what="deleting/inserting pixels in the CAM's order moves "
        "the score no more than in a random or edge map's",
        value="lead over the stronger baseline",
    ),
    Kind(
        "cam_faithfulness_uninformative",
        "info",
        "CAM faithfulness: cannot tell",
        "gradcam",
        fixed_anchor="gradcam-faithfulness-0",
        what="the deletion/insertion test could not tell a faithful map from a random one on these images "
        "(no replacement moved the score, constant maps, or flat curves)",
    ),
    Kind(
        "gradcam_sanity_uninformative",
        "info",
        "Grad-CAM sanity: cannot tell",
        "findings",
        fixed_anchor="findings-sanity",
        what="the cascading randomisation could not be judged (a constant map, or no step with a defined "
        "rank correlation)",
    ),
    Kind(
        "pattern_not_rising",
        "info",
        "pattern not rising",
        "patterns",
        what="a filter's objective did not rise during the pattern ascent",
        value="rise of the objective",
    ),
    Kind(
        "fragile_to_corruption",
        "warning",
        "fragile to corruption",
        "robustness",
        fixed_anchor="robustness-corruptions",
        what="a common corruption at severity 3 lowers accuracy (without labels: agreement with the clean "
        "prediction) by more than corruption_drop",
    ),
    Kind(
        "adversarially_fragile",
        "warning",
        "adversarially fragile",
        "robustness",
        fixed_anchor="robustness-adversarial",
        what="under PGD at eps = adversarial_epsilon (pixel units) "
        "the accuracy (without labels: agreement) falls "
        "below adversarial_accuracy",
    ),
    Kind(
        "attention_uniform",
        "info",
        "uniform attention head",
        "gradcam",
        fixed_anchor="attention",
        what="a transformer head attends almost uniformly to every token on the given images",
        value="normalised entropy",
    ),
    Kind(
        "attention_self",
        "info",
        "self-only attention head",
        "gradcam",
        fixed_anchor="attention",
        what="a transformer head keeps nearly all of each token's attention on the token itself",
        value="self-attention share",
    ),
    Kind(
        "overconfident",
        "info",
        "overconfident",
        "dataset",
        fixed_anchor="dataset-calibration",
        what="on the labelled images the expected calibration error exceeds calibration_ece and the mean "
        "confidence is above the accuracy",
        value="expected calibration error",
    ),
    Kind(
        "underconfident",
        "info",
        "underconfident",
        "dataset",
        fixed_anchor="dataset-calibration",
        what="the expected calibration error exceeds calibration_ece "
        "and the mean confidence is below the accuracy",
        value="expected calibration error",
    ),
    Kind(
        "label_issues",
        "info",
        "label issues",
        "dataset",
        fixed_anchor="dataset-label-issues",
        what="images whose given label confident learning doubts (the count; each in dataset.label_issues)",
        value="images with a label issue",
    ),
    Kind(
        "leakage",
        "warning",
        "leakage",
        "dataset",
        fixed_anchor="dataset-duplicates",
        what="more than max_leaked_images images of a later --images "
        "folder reappear (near-duplicates) in an earlier one",
        value="images leaked",
    ),
    Kind(
        "conflicting_duplicates",
        "warning",
        "duplicates, labels differ",
        "dataset",
        fixed_anchor="dataset-duplicates",
        what="near-duplicate images carry different labels",
        value="pairs",
    ),
    Kind(
        "accuracy_below_min",
        "warning",
        "accuracy below min",
        "dataset",
        fixed_anchor="dataset-metrics",
        what="accuracy on the labelled images below min_accuracy (a gate; off by default)",
        value="accuracy",
    ),
    Kind(
        "ece_above_max",
        "warning",
        "ECE above max",
        "dataset",
        fixed_anchor="dataset-calibration",
        what="expected calibration error above max_ece (a gate; off by default)",
        value="expected calibration error",
    ),
    Kind(
        "label_issue_rate_above_max",
        "warning",
        "label issues above max",
        "dataset",
        fixed_anchor="dataset-label-issues",
        what="share of labelled images with a label issue above "
        "max_label_issue_rate (a gate; off by default)",
        value="share of images",
    ),
]

KINDS: dict[str, Kind] = {k.name: k for k in _ALL}
DEFAULT_SEVERITY: dict[str, str] = {k.name: k.severity for k in _ALL}
