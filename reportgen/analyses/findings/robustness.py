"""Robustness as findings: :mod:`reportgen.analyses.robustness` measures, this judges.

Nothing is judged where the measurement cannot tell: on fewer than
``robustness_min_images`` images, with a clean accuracy within 5 points of
chance (a model that is already guessing cannot get more fragile), with
near-uniform outputs (mean top probability under twice chance: an untrained
model's top class is a toss between near-equal scores), without
labels when every clean image gets the same class (agreement then says
nothing), or, for the attack, when ``adversarial_epsilon`` is not among the
budgets run.
:func:`verdicts` says which of the two checks could tell and why not; the
section prints it.
"""

from __future__ import annotations

from typing import Any

from reportgen.analyses.findings.core import finding

CHANCE_MARGIN = 0.05


def verdicts(result: Any, t: Any) -> dict[str, str | None]:
    """``{"corruption": why not judged | None, "adversarial": why not | None}``."""
    why = None
    if result.images < t.robustness_min_images:
        why = (
            f"{result.images} image(s), fewer than robustness_min_images = {t.robustness_min_images}: the "
            "numbers are shown, but no verdict is drawn from so few"
        )
    elif (
        result.labelled
        and result.chance is not None
        and result.clean_accuracy is not None
        and result.clean_accuracy <= result.chance + CHANCE_MARGIN
    ):
        why = (
            f"the clean accuracy ({result.clean_accuracy:.1%}) is within {CHANCE_MARGIN:.0%} of chance "
            f"({result.chance:.1%}): a model that already guesses cannot be called fragile or robust"
        )
    elif (
        result.chance is not None
        and result.clean.mean_confidence is not None
        and result.clean.mean_confidence < 2 * result.chance
    ):
        why = (
            "the model's answers are near-uniform (mean top "
            f"probability {result.clean.mean_confidence:.2%} with "
            f"{result.classes} classes): its top class is picked "
            "among near-equal scores, so a changed answer "
            "says nothing about robustness"
        )
    elif not result.labelled and result.images > 1 and len(result.predicted) == 1:
        why = (
            "without labels the checks compare each answer with "
            "the clean one, and the model gives one class to "
            "every clean image: agreement cannot tell a robust model from one that ignores its input"
        )
    adversarial = why
    if adversarial is None and ("pgd", float(t.adversarial_epsilon)) not in result.adversarial:
        adversarial = (
            f"PGD did not run at eps = {t.adversarial_epsilon:g} (adversarial_epsilon); the budgets run "
            f"were {', '.join(f'{e:g}' for e in result.epsilons)}"
        )
    corruption = why
    if corruption is None and not any(s == 3 for _n, s in result.corrupted):
        corruption = "no corruption ran at severity 3"
    return {"corruption": corruption, "adversarial": adversarial}


def check_robustness(result: Any, t: Any) -> list[dict]:
    found: list[dict] = []
    said = verdicts(result, t)
    measure = "accuracy" if result.labelled else "agreement with the clean prediction"
    if said["corruption"] is None:
        drops = {n: result.drop_at(n, 3) for n in result.corruptions}
        bad = {n: d for n, d in drops.items() if d is not None and d > t.corruption_drop}
        if bad:
            worst = max(bad, key=bad.get)
            listed = ", ".join(f"{n} ({-d:+.0%})" for n, d in sorted(bad.items(), key=lambda kv: -kv[1]))
            found.append(
                finding(
                    "fragile_to_corruption",
                    None,
                    None,
                    bad[worst],
                    t.corruption_drop,
                    f"{len(bad)} of {len(drops)} common corruptions "
                    f"at severity 3 lower the {measure} by more than "
                    f"{t.corruption_drop:.0%} on {result.images} images: "
                    f"{listed}. Train with augmentations of these "
                    "kinds, or state the conditions the model must not be used in.",
                )
            )
    if said["adversarial"] is None:
        c = result.adversarial[("pgd", float(t.adversarial_epsilon))]
        value = result.measure_of(c)
        if value is not None and value < t.adversarial_accuracy:
            found.append(
                finding(
                    "adversarially_fragile",
                    None,
                    None,
                    value,
                    t.adversarial_accuracy,
                    f"PGD ({result.steps} steps, L∞ ε = {t.adversarial_epsilon:g} "
                    f"of 255) leaves {value:.0%} {measure} "
                    f"on {result.images} images, below {t.adversarial_accuracy:.0%}: changes of at most "
                    f"{t.adversarial_epsilon:g} grey levels per pixel, "
                    "invisible to a person, change its answers. "
                    "Expected of a model not trained against attacks; "
                    "adversarial training is the known remedy.",
                )
            )
    return found
