"""CAM faithfulness as a finding: :mod:`reportgen.analyses.cam.faithfulness` measures and gives the verdict,
this turns it into findings."""

from __future__ import annotations

from reportgen.analyses.cam.faithfulness import FLAT_BAND, Faithfulness, method_verdict
from reportgen.analyses.findings.core import finding


def check_faithfulness(result: Faithfulness, margin: float, band: float = FLAT_BAND) -> list[dict]:
    """Per method, from its verdict over the images (:func:`method_verdict`): ``not better than random`` is a
    ``cam_unfaithful`` warning; ``uninformative`` an info note naming what was tried; ``faithful`` nothing.
    A test that could not have come out the other way gives no warning."""
    from reportgen.analyses.cam import METHODS

    if not result.images:
        return []
    found = []
    n = len(result.images)
    caveat = (
        " Measured on reportgen's stand-in photo, not on this model's data: give images of its "
        "domain with --image before drawing conclusions."
        if result.stand_in
        else ""
    )
    for method in result.methods:
        verdict, judged = method_verdict(result, method, margin, band)
        title = METHODS[method].title if method in METHODS else method
        if verdict.verdict == "uninformative":
            found.append(
                finding(
                    "cam_faithfulness_uninformative",
                    result.layer,
                    None,
                    None,
                    None,
                    f"The faithfulness test of {title} at {result.layer} "
                    f"cannot tell anything on these {n} image(s): "
                    f"{verdict.why}. Its verdict is 'uninformative', not a pass; "
                    + (
                        "a constant map shows no evidence at this layer (another --gradcam-layer may); "
                        if "constant" in verdict.why
                        else ""
                    )
                    + f"give images where the class depends on a region (or set faithfulness_informative in "
                    f"[tool.reportgen]).{caveat}",
                )
            )
        elif verdict.verdict == "not better than random":
            what = "the Sobel edges of the image" if verdict.baseline == "edge" else "a random map"
            found.append(
                finding(
                    "cam_unfaithful",
                    result.layer,
                    None,
                    verdict.lead,
                    margin,
                    f"{title} at {result.layer} is no more faithful "
                    f"than {what} on {judged} of {n} image(s) whose "
                    f"test could tell: deleting and inserting pixels in its order moves the score no more "
                    f"({verdict.why}), so its heat map does not show what the model uses.{caveat}",
                )
            )
    return found
