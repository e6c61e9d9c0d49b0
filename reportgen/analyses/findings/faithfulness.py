"""CAM faithfulness as a finding: :mod:`reportgen.analyses.cam.faithfulness` measures, this judges."""

from __future__ import annotations

from reportgen.analyses.cam.faithfulness import Faithfulness, advantage
from reportgen.analyses.findings.core import finding


def check_faithfulness(result: Faithfulness, margin: float) -> list[dict]:
    """A finding per method whose map does no better than the random or the edge map: its mean
    insertion - deletion AUC (first explained class, over the images) leads the better baseline's by
    less than ``margin``. One number that needs both curves, so a map that only wins one is not enough.
    Where no order moves the score by ``margin`` (neither the map's nor a baseline's), nothing is judged."""
    from reportgen.analyses.cam import METHODS

    if not result.images:
        return []
    found = []
    n = len(result.images)
    for method in result.methods:
        gap = advantage(result, method)
        if max(abs(gap["cam"]), abs(gap["edge"]), abs(gap["random"])) < margin:
            # No pixel order -- the map's, the edges', a random one's -- moves the score: the blurred copy
            # keeps what the model uses (the demo's blurred digits stay legible), so the test cannot tell a
            # faithful map from an unfaithful one, and says nothing.
            continue
        baseline = "edge" if gap["edge"] >= gap["random"] else "random"
        lead = gap["cam"] - gap[baseline]
        if lead > margin:
            continue
        title = METHODS[method].title if method in METHODS else method
        what = "the Sobel edges of the image" if baseline == "edge" else "a random map"
        caveat = (" Measured on reportgen's stand-in photo, not on this model's data: give images of its "
                  "domain with --image before drawing conclusions." if result.stand_in else "")
        found.append(finding(
            "cam_unfaithful", result.layer, None, lead, margin,
            f"{title} at {result.layer} is no more faithful than {what} on {n} image(s): deleting and "
            f"inserting pixels in its order moves the top class' probability no more (insertion - deletion "
            f"AUC {gap['cam']:.2f} against {gap[baseline]:.2f}), so its heat map does not show what the "
            f"model uses.{caveat}"))
    return found
