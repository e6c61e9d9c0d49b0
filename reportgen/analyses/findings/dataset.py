"""Checks over the data-set review (:mod:`reportgen.analyses.review`): calibration, label issues, leakage
and the gates a reviewer sets (``min_accuracy``, ``max_ece``, ``max_label_issue_rate``, ``max_leaked_images``)."""

from __future__ import annotations

from typing import Any

from reportgen.analyses.findings.core import Finding, finding, num


def check_dataset(stats: Any, t: Any) -> list[Finding]:
    """The review's findings; nothing about labels without labelled images."""
    r = stats.review
    if r is None:
        return []
    out: list[Finding] = []
    n = r.labelled
    cal = r.calibration
    if cal is not None and cal.ece > t.calibration_ece:
        over = cal.mean_confidence > cal.accuracy
        out.append(finding(
            "overconfident" if over else "underconfident", None, None, cal.ece, t.calibration_ece,
            f"on {n} labelled images the mean confidence is {100 * cal.mean_confidence:.1f}% and the accuracy "
            f"{100 * cal.accuracy:.1f}% (expected calibration error {num(cal.ece)} > {num(t.calibration_ece)}): "
            f"the model is {'over' if over else 'under'}confident; dividing its logits by the temperature "
            f"{num(cal.temperature)} fitted on these images brings the ECE to {num(cal.ece_after_temperature)} "
            "(fit it on a held-out set before relying on it)."))
    if cal is not None and cal.ece > t.max_ece:
        out.append(finding("ece_above_max", None, None, cal.ece, t.max_ece,
                           f"expected calibration error {num(cal.ece)} on {n} labelled images exceeds max_ece "
                           f"{num(t.max_ece)}."))
    if n and stats.accuracy is not None and stats.accuracy < t.min_accuracy:
        out.append(finding("accuracy_below_min", None, None, stats.accuracy, t.min_accuracy,
                           f"accuracy {100 * stats.accuracy:.1f}% on {n} labelled images is below min_accuracy "
                           f"{100 * t.min_accuracy:.1f}%."))
    if n and (r.label_issues or r.calibration is not None):
        k = len(r.label_issues)
        rate = k / n
        if k:
            out.append(finding("label_issues", None, None, k, None,
                               f"{k} of {n} labelled images ({100 * rate:.1f}%) look mislabelled by confident "
                               "learning: the model confidently puts them in another class; check them "
                               "(dataset.label_issues, most doubtful first)."))
        if rate > t.max_label_issue_rate:
            out.append(finding("label_issue_rate_above_max", None, None, rate, t.max_label_issue_rate,
                               f"{100 * rate:.1f}% of the labelled images have a label issue, above "
                               f"max_label_issue_rate {100 * t.max_label_issue_rate:.1f}%."))
    pairs = [(d, *stats.pair(d)) for d in r.duplicates]
    leaked = {i for d, across, _same in pairs if across for i in (d.a, d.b)}
    if pairs and len([1 for _d, across, _s in pairs if across]) > t.max_leaked_images:
        crossing = sum(1 for _d, across, _s in pairs if across)
        out.append(finding("leakage", None, None, crossing, t.max_leaked_images,
                           f"{crossing} near-duplicate pair{'s' if crossing != 1 else ''} ({len(leaked)} images) "
                           "span two --images folders: images of one folder reappear in another, so a score on "
                           "one overstates the model; remove them from one side."))
    conflicts = [d for d, _a, same in pairs if same is False]
    if conflicts:
        out.append(finding("conflicting_duplicates", None, None, len(conflicts), None,
                           f"{len(conflicts)} near-duplicate pair{'s' if len(conflicts) != 1 else ''} carry "
                           "different labels: at least one label of each pair is wrong (dataset.duplicates, "
                           "same_label false)."))
    return out
