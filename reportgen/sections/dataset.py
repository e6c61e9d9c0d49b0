"""Data set: the model judged on every image of the ``--images`` folders.

Accuracy, per-class accuracy and the confusion matrix (labelled folders),
how often each unit fires, the mean Grad-CAM per class and the most
confident mistakes. The other image sections show a sample (``--sample``);
these numbers cover every readable image, and say how many.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from reportgen.context import Context, SectionResult
from reportgen.errors import UserError
from reportgen.figures import Figure

TITLE = "Data set"
NEEDS = ("folder", "dataset", "head", "preprocessor", "images", "class_names")


def validate(ctx: Context) -> None:
    if not ctx.options.image_dirs:
        raise UserError("the dataset section needs --images DIR (a folder of images, classes in sub-folders)")
    if ctx.options.sample < 1:
        raise UserError(f"--sample must be at least 1 (got {ctx.options.sample})")
    folder = ctx.analyses.folder  # a missing folder or an unknown class folder failed already (early)
    if (
        ctx.options.gradcam_layer
    ):  # the mean CAM per class: a layer off the image's axes fails now, in one line
        from reportgen.analyses.cam import resolve_layer

        resolve_layer(ctx.model, ctx.options.gradcam_layer, ctx.options.output)
    t = ctx.analyses.thresholds
    gates = [
        k
        for k, on in (
            ("min_accuracy", t.min_accuracy > 0),
            ("max_ece", t.max_ece < 1),
            ("max_label_issue_rate", t.max_label_issue_rate < 1),
        )
        if on
    ]
    if gates and not folder.labelled:
        raise UserError(
            f"--images {', '.join(ctx.options.image_dirs)}: no class sub-folders, so no labels, but "
            f"{', '.join(gates)} (from {t.source}) needs them; put the images in one sub-folder per "
            "class, or drop the gate"
        )


def _label(names: list[str] | None, c: int) -> str:
    from reportgen.images import label_for

    return label_for(int(c), names)


def _mistakes(ctx: Context, stats, names: list[str] | None) -> Figure:
    """The most confident mistakes, each with its CAM; the files are read when drawn."""
    from reportgen.images import image_input_spec

    items = [
        (
            ctx.analyses.folder.files[m.index],
            f"true {_label(names, m.label)[:12]}\npredicted {_label(names, m.predicted)[:12]}\n"
            f"p = {m.confidence:.3f}",
            m.cam,
        )
        for m in stats.mistakes
    ]
    return Figure("dataset.mistakes", items, image_input_spec(ctx.model))


def _preprocess(ctx: Context) -> dict:
    """How the folders' pixels reached the model, where that came from, and what ``auto`` measured."""
    pre = ctx.analyses.preprocessor
    out = {"mode": pre.mode, "description": pre.describe(), "source": pre.source, "option": pre.option_text()}
    if ctx.analyses.convention is not None:
        out["candidates"] = [c.to_json() for c in ctx.analyses.convention.candidates]
        out["measured_on"] = ctx.analyses.convention.images
        out["measure_seconds"] = round(ctx.analyses.convention.seconds, 3)
    return out


def _review_json(ctx: Context, stats, names: list[str] | None) -> dict:
    """report.json's review keys (:mod:`reportgen.analyses.review`); each None, with a ``*_note`` saying why,
    where this run could not compute it."""
    from reportgen.analyses.review import LISTED

    r = stats.review
    files = ctx.analyses.folder.files
    if r is None:
        return {}
    cal = r.calibration
    issues = [
        {
            "path": files[stats.indices[i.index]],
            "given": _label(names, i.given),
            "suggested": _label(names, i.suggested),
            "confidence": i.confidence,
            "given_confidence": i.self_confidence,
            "rank": i.rank,
        }
        for i in r.label_issues[:LISTED]
    ]
    dups = []
    for d in r.duplicates[:LISTED]:
        across, same = stats.pair(d)
        dups.append(
            {
                "a": files[stats.indices[d.a]],
                "b": files[stats.indices[d.b]],
                "distance": d.distance,
                "hash_distance": d.hash_distance,
                "across_folders": across,
                "same_label": same,
            }
        )
    crossing = sum(1 for d in r.duplicates if stats.pair(d)[0])
    conflicts = sum(1 for d in r.duplicates if stats.pair(d)[1] is False)
    classify = stats.probs is not None
    labelled = classify and r.labelled > 0
    no_labels = (
        "no labelled images (no class sub-folders)" if classify else "the model's output is not a class score"
    )
    return {
        "summary": r.summary,
        "top_k_accuracy": r.top_k if labelled else None,
        "calibration": cal.to_json() if cal is not None else None,
        "calibration_per_class": (
            {_label(names, c): e for c, e in r.classwise_ece.items()} if r.classwise_ece is not None else None
        ),
        "calibration_note": r.calibration_note if labelled else no_labels,
        "label_issues": issues if labelled and not r.label_issues_note else None,
        "label_issues_count": len(r.label_issues) if labelled and not r.label_issues_note else None,
        "label_issues_note": r.label_issues_note if labelled else no_labels,
        "duplicates": dups,
        "duplicates_count": len(r.duplicates),
        "duplicates_across_folders": crossing,
        "duplicates_conflicting_labels": conflicts,
        "duplicates_by": r.duplicates_by,
        "embedding_layer": stats.embedding_layer,
        "outliers": [
            {"path": files[stats.indices[o.index]], "property": o.property, "value": o.value, "z": o.z}
            for o in r.outliers[:LISTED]
        ],
        "outliers_count": len(r.outliers),
        "properties_uniform": r.uniform,
        "segments": [
            {
                "property": g.property,
                "lower": g.lower,
                "upper": g.upper,
                "images": g.images,
                "accuracy": g.accuracy,
                "weak": g.weak,
            }
            for g in r.segments
        ]
        if labelled
        else None,
        "review_seconds": r.seconds,
    }


def _gallery(ctx: Context, items: list[tuple[int, str, np.ndarray | None]]) -> Figure:
    """A few of the folders' images, a caption each, a heatmap on some; the files are read when drawn."""
    from reportgen.images import image_input_spec

    files = ctx.analyses.folder.files
    return Figure(
        "dataset.gallery",
        [(files[i], caption, cam) for i, caption, cam in items],
        image_input_spec(ctx.model),
    )


def _review_view(ctx: Context, stats, names: list[str] | None, json: dict) -> dict:
    from reportgen.analyses.review import GALLERY

    r = stats.review
    if r is None:
        return {"review": False}
    cal = r.calibration
    reliability = None
    if cal is not None:
        reliability = Figure(
            "dataset.reliability",
            [
                ("as given", cal.reliability, cal.ece),
                (
                    f"after temperature T = {cal.temperature:.2f}",
                    cal.reliability_after,
                    cal.ece_after_temperature,
                ),
            ],
        )
    issues = None
    if r.label_issues:
        issues = _gallery(
            ctx,
            [
                (
                    int(stats.indices[i.index]),
                    f"#{i.rank} given {_label(names, i.given)[:10]}\n"
                    f"suggested {_label(names, i.suggested)[:10]}\np = {i.confidence:.2f}",
                    i.cam,
                )
                for i in r.label_issues[:GALLERY]
            ],
        )
    outliers = None
    if r.outliers:
        outliers = _gallery(
            ctx,
            [
                (int(stats.indices[o.index]), f"{o.property}\n{o.value:.3g} (z {o.z:+.1f})", None)
                for o in r.outliers[:GALLERY]
            ],
        )
    weak = [g for g in (json.get("segments") or []) if g["weak"]]
    return {
        "review": True,
        "reliability": reliability,
        "issues_gallery": issues,
        "outliers_gallery": outliers,
        "weak_segments": weak,
        "gallery": GALLERY,
        "thresholds": ctx.analyses.thresholds,
    }


def run(ctx: Context) -> SectionResult:
    stats = ctx.analyses.dataset
    folder = ctx.analyses.folder
    names = folder.class_names or ctx.analyses.class_names
    used = np.unique(stats.labels[stats.labels >= 0]) if stats.labels is not None else []
    if len(used) == 1:  # known once the files are read: an unreadable folder says so first
        from reportgen.errors import BadInput

        raise BadInput(
            f"--images: every labelled image is in one class folder ('{_label(names, used[0])}'); "
            "accuracy, calibration and label issues compare classes, so give the folders of at least "
            "two classes (or put the images directly in the folder, unlabelled)"
        )
    head = ctx.analyses.head
    review = stats.review
    per_class = {}
    if stats.per_class_images is not None:
        for c in np.flatnonzero(stats.per_class_images):
            per_class[_label(names, c)] = {
                "images": int(stats.per_class_images[c]),
                "accuracy": float(stats.per_class_correct[c] / stats.per_class_images[c]),
                **(review.per_class.get(int(c), {}) if review is not None else {}),
            }
    units = {p: ua.to_json() for p, ua in stats.activity.layers.items()}
    json = {
        "images": stats.images,
        "folders": list(ctx.options.image_dirs),
        "labels": stats.labelled > 0,
        "labelled_images": stats.labelled,
        "accuracy": stats.accuracy,
        "per_class": per_class,
        "class_names": list(names) if names else None,
        "confusion": stats.confusion.tolist() if stats.confusion is not None and stats.labelled else None,
        "units": units,
        "cam_layer": stats.layer,
        "mean_cam": {
            ("all" if c == -1 else _label(names, c)): np.round(stats.mean_cam(c), 4).tolist()
            for c in sorted(stats.cam_sum)
        },
        "mistakes": [
            {
                "path": folder.files[m.index],
                "true": _label(names, m.label),
                "predicted": _label(names, m.predicted),
                "confidence": m.confidence,
            }
            for m in stats.mistakes
        ],
        "skipped": [{"path": s.path, "reason": s.reason} for s in stats.skipped],
        "skipped_by_reason": dict(Counter(s.kind for s in stats.skipped)),
        "skipped_by_type": folder.skipped_by_type,
        "skipped_by_type_examples": list(folder.skipped_by_type_examples),
        "preprocess": _preprocess(ctx),
        "seconds": stats.seconds,
        **_review_json(ctx, stats, names),
    }
    confusion = None
    if stats.confusion is not None and stats.labelled:
        used = np.flatnonzero(stats.confusion.sum(axis=0) + stats.confusion.sum(axis=1))
        confusion = Figure(
            "dataset.confusion", stats.confusion[np.ix_(used, used)], [_label(names, c) for c in used]
        )
    maps = [
        ("all" if c == -1 else _label(names, c), stats.mean_cam(c), stats.cam_count[c])
        for c in sorted(stats.cam_sum)
    ]
    layers = [
        {
            "path": p,
            "kind": ua.activation,
            "units": int(ua.active_images.size),
            "never": int((ua.active_images == 0).sum()),
            "median": float(np.median(ua.active_fraction)) if ua.active_images.size else None,
            "zero_fraction": ua.zero_fraction,
        }
        for p, ua in stats.activity.layers.items()
    ]
    view = {
        "stats": json,
        "confusion": confusion,
        "mean_cam": Figure("dataset.mean_cam", maps[:32], stats.layer) if maps and stats.layer else None,
        "mistakes": _mistakes(ctx, stats, names) if stats.mistakes else None,
        "layers": layers,
        "per_class": per_class,
        "sample": len(ctx.analyses.images),
        "classifier": head.units is not None and not head.is_map,
        "figure_ids": {
            "dataset-confusion",
            "dataset-mistakes",
            "dataset-metrics",
            "dataset-calibration",
            "dataset-label-issues",
            "dataset-duplicates",
            "dataset-outliers",
            "dataset-segments",
        },
        "tolerance": f"{ctx.analyses.thresholds.dead_activation:g}",
        **_review_view(ctx, stats, names, json),
    }
    return SectionResult(json={"dataset": json}, view=view)
