"""The CAM sanity check as a finding: the cascade (:mod:`reportgen.analyses.sanity`) computes and gives the
verdict, this turns it into findings."""

from __future__ import annotations

from reportgen.analyses.findings.core import finding
from reportgen.analyses.sanity import SanityResult


def check_sanity(result: SanityResult, threshold: float) -> list[dict]:
    """A warning when the heatmaps stay similar however much of the model is randomised (``failed``); an
    info note when the cascade cannot tell (``uninformative``); nothing when it ``passed``."""
    from reportgen.analyses.cam import METHODS

    verdict, why = result.verdict(threshold)
    title = METHODS[result.method].title if result.method in METHODS else result.method
    if verdict == "uninformative":
        return [
            finding(
                "gradcam_sanity_uninformative",
                result.layer,
                None,
                None,
                threshold,
                f"The randomisation sanity check of {title} at {result.layer} cannot tell anything: {why}. "
                "Its verdict is 'uninformative', not a pass.",
            )
        ]
    if verdict == "passed":
        return []
    stat = result.statistic
    return [
        finding(
            "gradcam_sanity",
            result.layer,
            None,
            stat,
            threshold,
            f"{title} at {result.layer} fails the randomisation sanity check: with the weights "
            f"re-initialised from the top down, its heatmaps still rank-correlate {stat:.2f} with the "
            "original, so they do not show what the model learned; do not rely on them (try another "
            "--gradcam-layer).",
        )
    ]
