"""Checks over the data-set review (:mod:`reportgen.analyses.review`): calibration, label issues, leakage
and the gates a reviewer sets (``min_accuracy``, ``max_ece``, ``max_label_issue_rate``,
``max_leaked_images``)."""

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
        out.append(
            finding(
                "overconfident" if over else "underconfident",
                None,
                None,
                cal.ece,
                t.calibration_ece,
                f"on {n} labelled images the mean confidence is "
                f"{100 * cal.mean_confidence:.1f}% and the accuracy "
                f"{100 * cal.accuracy:.1f}% (expected calibration "
                f"error {num(cal.ece)} > {num(t.calibration_ece)}): "
                f"the model is {'over' if over else 'under'}confident; "
                "dividing its logits by the temperature "
                f"{num(cal.temperature)} fitted on these images "
                f"brings the ECE to {num(cal.ece_after_temperature)} "
                "(fit it on a held-out set before relying on it).",
            )
        )
    if cal is not None and cal.ece > t.max_ece:
        out.append(
            finding(
                "ece_above_max",
                None,
                None,
                cal.ece,
                t.max_ece,
                f"expected calibration error {num(cal.ece)} on {n} labelled images exceeds max_ece "
                f"{num(t.max_ece)}.",
            )
        )
    if n and stats.accuracy is not None and stats.accuracy < t.min_accuracy:
        out.append(
            finding(
                "accuracy_below_min",
                None,
                None,
                stats.accuracy,
                t.min_accuracy,
                f"accuracy {100 * stats.accuracy:.1f}% on {n} labelled images is below min_accuracy "
                f"{100 * t.min_accuracy:.1f}%.",
            )
        )
    if n and (r.label_issues or r.calibration is not None):
        k = len(r.label_issues)
        rate = k / n
        if k:
            out.append(
                finding(
                    "label_issues",
                    None,
                    None,
                    k,
                    None,
                    f"{k} of {n} labelled images ({100 * rate:.1f}%) look mislabelled by confident "
                    "learning: the model confidently puts them in another class; check them "
                    "(dataset.label_issues, most doubtful first).",
                )
            )
        if rate > t.max_label_issue_rate:
            out.append(
                finding(
                    "label_issue_rate_above_max",
                    None,
                    None,
                    rate,
                    t.max_label_issue_rate,
                    f"{100 * rate:.1f}% of the labelled images have a label issue, above "
                    f"max_label_issue_rate {100 * t.max_label_issue_rate:.1f}%.",
                )
            )
    pairs = [(d, *stats.pair(d)) for d in r.duplicates]
    crossing = [d for d, across, _same in pairs if across]
    # The images of a later folder (val/ after train/) that reappear in an earlier one: what leaked.
    leaked = {d.b if stats.roots[d.b] > stats.roots[d.a] else d.a for d in crossing}
    if len(leaked) > t.max_leaked_images:
        out.append(
            finding(
                "leakage",
                None,
                None,
                len(leaked),
                t.max_leaked_images,
                f"{len(leaked)} image{'s' if len(leaked) != 1 else ''} of a later --images folder "
                f"reappear{'s' if len(leaked) == 1 else ''} in an earlier one ({len(crossing)} "
                f"near-duplicate pair{'s' if len(crossing) != 1 else ''} across folders): a score on "
                "that folder overstates the model; remove them from one side.",
            )
        )
    conflicts = [d for d, _a, same in pairs if same is False]
    if conflicts:
        out.append(
            finding(
                "conflicting_duplicates",
                None,
                None,
                len(conflicts),
                None,
                f"{len(conflicts)} near-duplicate pair{'s' if len(conflicts) != 1 else ''} carry "
                "different labels: at least one label of each pair is wrong (dataset.duplicates, "
                "same_label false).",
            )
        )
    return out
