"""Robustness: the model under the common corruptions and under L-infinity attacks.

Describes :mod:`reportgen.analyses.robustness` (which computes) as report.json's
``robustness`` block and a view; :mod:`reportgen.painters.robustness` draws. With labelled
``--images`` folders the numbers are accuracies; without labels, agreement with
the model's own clean prediction (``accuracy`` is null), and the page says so.
"""

from __future__ import annotations

from reportgen.context import Context, SectionResult
from reportgen.errors import UserError
from reportgen.options import SECTION_NAMES
from reportgen.figures import Figure

TITLE = "Robustness"
NEEDS = ("robustness", "thresholds")

MCE_NOTE = (
    "mCE-style: (clean - mean corrupted) / clean over every corruption and severity run here; not "
    "normalised by AlexNet's errors as the paper's mCE is, so not comparable with published mCE values"
)


def validate(ctx: Context) -> None:
    from reportgen.options import CORRUPTIONS, budgets, comma_list

    opts = ctx.options
    for flag, parse, value in (
        ("--corruptions", comma_list(CORRUPTIONS, "corruption"), opts.corruptions),
        ("--epsilons", budgets, opts.epsilons),
    ):
        try:
            parse(value)
        except (ValueError, TypeError) as exc:
            raise UserError(f"{flag}: {exc}") from None
    for name in ("robustness_sample", "pgd_steps"):
        value = getattr(opts, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise UserError(
                f"--{name.replace('_', '-')} must be a whole number of at least 1 (got {value!r})"
            )
    if ctx.analyses.folder is None and not opts.images and not getattr(ctx.loaded, "sample_images", None):
        raise UserError(
            "the robustness section needs images: give --images DIR (class sub-folders give labels) "
            "or --image PATH"
        )
    from reportgen.images import require_image_input

    require_image_input(ctx.model, "the robustness section")
    named = tuple(opts.sections) != tuple(SECTION_NAMES)
    head = ctx.get("head")
    if named and head is not None and (head.units is None or head.is_map):
        raise UserError(
            f"the robustness section measures class scores, and this model's output is a {head.kind}; "
            "leave robustness out of --sections"
        )


def _round(v: float | None, digits: int = 4) -> float | None:
    return None if v is None else round(float(v), digits)


def _label(names: list[str] | None, c: int) -> str:
    from reportgen.images import label_for

    return label_for(int(c), names)


def run(ctx: Context) -> SectionResult:
    from reportgen.analyses.findings.robustness import verdicts

    r = ctx.analyses.robustness
    t = ctx.analyses.thresholds
    if r is None:
        note = (
            "Not measured: the common corruptions and the "
            "attacks are judged on class scores, and this model's "
            f"output is a {ctx.analyses.head.kind} (a dense map), not a vector of classes."
        )
        return SectionResult(json={"robustness": {"note": note}}, view={"note": note})
    folder = ctx.analyses.folder
    names = (folder.class_names if folder is not None else None) or ctx.get("class_names")
    clean_s = r.clean.seconds / max(1, r.images)
    rows = [
        {
            "name": n,
            "severity": s,
            "accuracy": _round(c.accuracy),
            "agreement": _round(c.agreement),
            "mean_confidence": _round(c.mean_confidence),
            "seconds": round(c.seconds, 3),
            "time_vs_predict": round(c.seconds / r.clean.seconds, 2) if r.clean.seconds > 0 else None,
        }
        for (n, s), c in r.corrupted.items()
    ]
    adversarial = [
        {
            "method": m,
            "epsilon": e,
            "steps": 1 if m == "fgsm" else r.steps,
            "step_size": e if m == "fgsm" else e * r.step_fraction,
            "accuracy": _round(c.accuracy),
            "agreement": _round(c.agreement),
            "mean_confidence": _round(c.mean_confidence),
            "seconds": round(c.seconds, 3),
        }
        for (m, e), c in r.adversarial.items()
    ]
    said = verdicts(r, t)
    measure = "accuracy" if r.labelled else "agreement"
    json = {
        "images": r.images,
        "labelled_images": r.clean.labelled,
        "measure": measure,
        "source": r.source,
        "available_images": r.available,
        "skipped_images": r.skipped,
        "sample": r.sample,
        "sample_chosen_by": r.chosen_by,
        "seed": r.seed,
        "clean_accuracy": _round(r.clean_accuracy),
        "clean_mean_confidence": _round(r.clean.mean_confidence),
        "mean_corruption_accuracy": _round(r.mean_corruption) if r.labelled else None,
        "mean_corruption_agreement": _round(
            float(sum(c.agreement or 0 for c in r.corrupted.values()) / len(r.corrupted))
        )
        if r.corrupted
        else None,
        "relative_drop": _round(r.relative_drop),
        "relative_drop_note": MCE_NOTE,
        "corruptions": rows,
        "corruptions_left_out": [{"name": n, "reason": why} for n, why in r.left_out.items()],
        "adversarial": adversarial,
        "attack": {
            "norm": "Linf",
            "units": "pixels 0-255, clipped to 0-255",
            "target": "the true label" if r.labelled else "the clean prediction",
            "loss": "cross-entropy of the class scores, through the model's own preprocessing",
            "pgd_steps": r.steps,
            "pgd_step_size": f"{r.step_fraction:g} x epsilon",
            "pgd_random_start": "uniform in [-epsilon, epsilon], seeded per image",
        },
        "verdicts": said,
        "cam_layer": r.cam_layer,
        "flipped": [
            {
                "image": f.key,
                "method": f.method,
                "epsilon": f.epsilon,
                "clean": _label(names, f.clean_class),
                "attacked": _label(names, f.attacked_class),
                "clean_confidence": _round(f.clean_confidence),
                "attacked_confidence": _round(f.attacked_confidence),
            }
            for f in r.flipped
        ],
        "seconds": round(r.seconds, 2),
        "predict_seconds": round(r.clean.seconds, 3),
        "shards": r.shards,
        "executor": r.executor,
        "shards_note": r.shards_note,
    }
    clean_level = r.clean_accuracy if r.labelled else 1.0
    curves: dict[str, list] = {}
    for (n, s), c in r.corrupted.items():
        curves.setdefault(n, [None] * 5)[s - 1] = r.measure_of(c)
    series: dict[str, list] = {}
    for m in ("fgsm", "pgd"):
        series[m] = [
            r.measure_of(r.adversarial[(m, e)]) if (m, e) in r.adversarial else None for e in r.epsilons
        ]
    examples = [
        {
            "clean": f.clean,
            "attacked": f.attacked,
            "clean_cam": f.clean_cam,
            "attacked_cam": f.attacked_cam,
            "clean_title": f"clean: {_label(names, f.clean_class)[:14]}\np = {_p(f.clean_confidence)}",
            "attacked_title": f"PGD ε={f.epsilon:g}: {_label(names, f.attacked_class)[:14]}\n"
            f"p = {_p(f.attacked_confidence)}",
        }
        for f in r.flipped
    ]
    ylabel = "accuracy" if r.labelled else "agreement with clean"
    view = {
        "r": json,
        "labelled": r.labelled,
        "measure": measure,
        "severity": Figure("robustness.severity", curves, clean_level, ylabel) if curves else None,
        "grid": Figure("robustness.corruptions", r.grid_clean, dict(r.grid)) if r.grid else None,
        "adversarial": Figure("robustness.adversarial", list(r.epsilons), series, clean_level, ylabel)
        if r.adversarial
        else None,
        "flipped": Figure("robustness.flipped", examples) if examples else None,
        "table": _table(rows, measure),
        "per_image_ms": 1000 * clean_s,
        "thresholds": {
            "corruption_drop": t.corruption_drop,
            "adversarial_accuracy": t.adversarial_accuracy,
            "adversarial_epsilon": t.adversarial_epsilon,
        },
        "figure_ids": {"robustness-corruptions", "robustness-adversarial"},
    }
    return SectionResult(json={"robustness": json}, view=view)


def _p(p: float) -> str:
    """A probability in a caption: two decimals, or two significant digits below 0.01 (an untrained model's
    0.0021)."""
    return f"{p:.2f}" if p >= 0.01 else f"{p:.2g}"


def _table(rows: list[dict], measure: str) -> list[dict]:
    """One row per corruption, its five severities side by side."""
    out: dict[str, dict] = {}
    for row in rows:
        entry = out.setdefault(
            row["name"], {"name": row["name"], "values": [None] * 5, "seconds": 0.0, "ratio": []}
        )
        entry["values"][row["severity"] - 1] = row[measure]
        entry["seconds"] += row["seconds"]
        if row["time_vs_predict"] is not None:
            entry["ratio"].append(row["time_vs_predict"])
    for entry in out.values():
        entry["ratio"] = max(entry["ratio"]) if entry["ratio"] else None
        vals = [v for v in entry["values"] if v is not None]
        entry["mean"] = sum(vals) / len(vals) if vals else None
    return list(out.values())
