"""The CAM sanity check as a finding: the cascade (:mod:`reportgen.analyses.sanity`) computes, this judges."""

from __future__ import annotations

from reportgen.analyses.findings.core import finding
from reportgen.analyses.sanity import SanityResult


def check_sanity(result: SanityResult, threshold: float) -> list[dict]:
    """A finding when the heatmaps stay similar however much of the model is randomised."""
    from reportgen.analyses.cam import METHODS

    stat = result.statistic
    if stat is None or stat <= threshold:
        return []
    title = METHODS[result.method].title if result.method in METHODS else result.method
    return [finding(
        "gradcam_sanity", result.layer, None, stat, threshold,
        f"{title} at {result.layer} fails the randomisation sanity check: with the weights "
        f"re-initialised from the top down, its heatmaps still rank-correlate {stat:.2f} with the "
        "original, so they do not show what the model learned; do not rely on them (try another "
        "--gradcam-layer).")]
