"""Class activation maps: the top predictions for each image and where in the image they come from.

Target layer: the last conv layer before the classifier (found automatically,
nested models included) or ``--gradcam-layer``. The methods (``--cam``,
default Grad-CAM) run on one batch of all images and explain the same
targets, shown side by side. A model whose output is a map (segmentation,
edges, depth) is explained through a scalar made from the map (the head
says which, and the report states it).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from reportgen import graph, images as imgs
from reportgen.analyses import attention, cam
from reportgen.context import Context, SectionResult
from reportgen.errors import UserError
from reportgen.figures import Figure
from reportgen.sections.features import image_entry, image_view

TITLE = "Class activation maps"
NEEDS = ("images", "head", "cams", "faithfulness", "attention")
OPTIONAL = (
    "faithfulness",
    "attention",
)  # without them the maps are shown, and the section says what is missing


def validate(ctx: Context) -> None:
    opts = ctx.options
    if opts.top_k < 1:
        raise UserError(f"--top-k must be at least 1 (got {opts.top_k})")
    steps = opts.faithfulness_steps
    if steps is not None and not (steps == 0 or 2 <= steps <= 100):
        raise UserError(f"--faithfulness-steps must be 0 (skip the test) or from 2 to 100 (got {steps})")
    for name in opts.cam:
        cam.method(name)
    if opts.output is not None:
        cam.output_index(ctx.model, opts.output)
    if opts.gradcam_layer:
        imgs.require_image_input(ctx.model, "--gradcam-layer")
        cam.resolve_layer(ctx.model, opts.gradcam_layer)


def _curve(c: Any) -> dict:
    """A faithfulness curve as the painter reads it: its points and areas."""
    return {
        "deletion": c.deletion,
        "insertion": c.insertion,
        "deletion_auc": c.deletion_auc,
        "insertion_auc": c.insertion_auc,
    }


def _faithfulness_figure(curves: Any, methods: list[str], label: str, head: cam.Head) -> Figure:
    """One image's deletion and insertion curves of its first explained class, every method and both
    baselines."""
    return Figure(
        "gradcam.faithfulness",
        [(cam.METHODS[m].title, _curve(curves.cams[m][0])) for m in methods],
        _curve(curves.random[0]),
        _curve(curves.edge[0]),
        label,
        _score_word(head),
        curves.replacement,
    )


def _score_word(head: cam.Head) -> str:
    """The faithfulness curves' y label: what the score is
    (:func:`reportgen.analyses.cam.faithfulness.score_name`)."""
    if head.kind in ("softmax", "pixel-softmax"):
        return "softmax p"
    if head.kind == "sigmoid":
        return "sigmoid p"
    return "sigmoid of"


def target_text(head: cam.Head) -> str:
    """What is explained, in words (report.json's ``gradcam.target``)."""
    if head.kind == "pixel-softmax":
        return f"each of the top classes by area: the mean class {head.score} over the pixels it wins"
    if head.kind == "map":
        return "the mean of the output map"
    if head.score == "logit":
        return f"the class logit before the final {head.kind}"
    return "the raw output value"


def _unmeasured(faith: Any, note: str) -> dict:
    """report.json's ``gradcam.faithfulness`` when nothing was measured: the note, and the cost that kept the
    default from measuring (where that was the reason)."""
    out: dict = {"note": note}
    if faith is not None and faith.steps_source == "fitted" and faith.steps == 0:
        from reportgen.analyses.cam.faithfulness import BUDGET_FLOPS

        out |= {
            "steps": 0,
            "steps_source": "fitted",
            "forward_flops_per_image": faith.flops_per_image,
            "budget_flops_per_image": BUDGET_FLOPS,
        }
    return out


def _faithfulness_entry(faith: Any, curves: Any, method: str, k: int, t: Any) -> dict:
    """report.json's ``faithfulness`` of one CAM: the six AUCs, the method's two curves, what replaced the
    pixels, and the verdict with why."""
    from reportgen.analyses.cam.faithfulness import entry_verdict

    c = curves.cams[method][k]
    verdict = entry_verdict(
        curves, method, k, t.faithfulness_margin, t.faithfulness_flat_band, faith.informative
    )
    return (
        {key: round(v, 4) for key, v in curves.scores(method, k).items()}
        | {
            "deletion_curve": np.round(c.deletion, 4).tolist(),
            "insertion_curve": np.round(c.insertion, 4).tolist(),
            "replacement": curves.replacement,
        }
        | verdict.to_json()
    )


def _method_verdicts(faith: Any, t: Any) -> dict:
    """report.json's ``gradcam.faithfulness.verdicts``: each method's verdict over the images."""
    from reportgen.analyses.cam.faithfulness import method_verdict

    out = {}
    for m in faith.methods:
        verdict, judged = method_verdict(faith, m, t.faithfulness_margin, t.faithfulness_flat_band)
        out[m] = verdict.to_json() | {"images_judged": judged, "lead": verdict.lead}
    return out


def run(ctx: Context) -> SectionResult:
    opts = ctx.options
    images = ctx.analyses.images
    view: dict = {
        "images": [],
        "note": None,
        "head_note": None,
        "axes_note": None,
        "layer": None,
        "score": None,
        "methods": [],
    }
    if not images:
        view["note"] = "The model's input is not an image, so there is no class activation map."
        return SectionResult(json={"gradcam": {"note": view["note"]}}, view=view)
    found = ctx.analyses.cams
    head = found.head
    view["head_note"] = head.note
    json_images = [image_entry(im) | {"predictions": [], "gradcam": []} for im in images]
    if not found.results:
        view["note"] = found.note
        if head.units is None and not head.is_map:
            view["images"] = [
                image_view(im, i) | {"figure": None, "predictions": []} for i, im in enumerate(images)
            ]
        return SectionResult(json={"images": json_images, "gradcam": {"note": found.note}}, view=view)
    names, results = found.names, found.results
    ref = graph.anatomy(ctx.model).ref(found.layer)
    # The default layer's choice, said where it passed over layers off the image's axes (a Permute).
    axes_note = None if opts.gradcam_layer else graph.axes.passed_over(ctx.model)
    if axes_note:
        axes_note += " The maps are at the last layer that is one; --gradcam-layer picks another."
    view["axes_note"] = axes_note
    first = results[opts.cam[0]]
    outputs = first.outputs
    view["negligible_fraction"] = cam.NEGLIGIBLE
    view.update(
        layer=ref.path,
        score=head.score,
        kind=head.kind,
        methods=[
            {
                "name": n,
                "title": cam.METHODS[n].title,
                "paper": cam.METHODS[n].paper,
                "formula": cam.METHODS[n].formula,
            }
            for n in results
        ],
        target=target_text(head),
        output_name=head.output_name,
        multi_output=len(graph.anatomy(ctx.model).outputs) > 1,
    )
    classes = first.class_indices
    faith = ctx.get("faithfulness")
    measured = faith is not None and len(faith.images) == len(images)
    t = ctx.analyses.thresholds
    protocol = (faith.protocol() | {"verdicts": _method_verdicts(faith, t)}) if measured else None
    view["faithfulness"] = protocol
    view["faithfulness_note"] = (
        None
        if measured
        else (faith.note if faith is not None else "not measured: the faithfulness analysis failed")
    )
    for i, image in enumerate(images):
        labels = list(first.target.labels[i])
        values: list[float | None]
        if head.is_map:
            values = [float(v) for v in first.scores[i]]
            word = "score"
        else:
            values = [float(outputs[i, int(c)]) for c in classes[i]]
            word = "p" if head.is_classifier else "out"
            json_images[i]["predictions"] = [
                {
                    "index": int(c),
                    "label": imgs.label_for(int(c), names),
                    "probability": float(outputs[i, int(c)]) if head.is_classifier else None,
                }
                | ({} if head.is_classifier else {"value": float(outputs[i, int(c)])})
                for c in classes[i]
            ]
        entries = []
        for name, res in results.items():
            for j in range(res.heatmaps.shape[1]):
                entries.append(
                    {
                        "method": name,
                        "class_index": int(classes[i, j]) if classes is not None else None,
                        "label": labels[j],
                        "layer": ref.path,
                        "score": head.score,
                        "target": target_text(head),
                        "explained_value": float(res.scores[i, j]),
                        "peak": float(res.peaks[i, j]),
                        "contribution_scale": None if res.scales is None else float(res.scales[i, j]),
                        "negligible": bool(res.negligible[i, j]),
                        "heatmap": np.round(res.heatmaps[i, j].astype(np.float64), 4).tolist(),
                    }
                    | (
                        {"faithfulness": _faithfulness_entry(faith, faith.images[i], name, j, t)}
                        if measured
                        else {}
                    )
                )
        json_images[i]["gradcam"] = entries
        iv = image_view(image, i)
        iv["predictions"] = (
            [{"index": int(c), "label": labels[j], "value": values[j]} for j, c in enumerate(classes[i])]
            if classes is not None
            else [{"index": None, "label": labels[j], "value": values[j]} for j in range(len(labels))]
        )
        iv["correct"] = image.label is not None and not head.is_map and labels and labels[0] == image.label
        map_output = np.asarray(outputs[i]) if head.is_map else None
        iv["figure"] = Figure(
            "gradcam.image",
            image.pixels,
            true_label=image.label,
            labels=labels,
            values=values,
            word=word,
            maps=[
                {
                    "title": cam.METHODS[name].title,
                    "heatmaps": res.heatmaps[i],
                    "peaks": res.peaks[i],
                    "negligible": res.negligible[i],
                }
                for name, res in results.items()
            ],
            layer=ref.path,
            output_kind=head.kind,
            output=map_output,
        )
        iv["faithfulness"] = (
            _faithfulness_figure(faith.images[i], list(results), labels[0], head) if measured else None
        )
        iv["faithfulness_scores"] = (
            [
                {
                    "title": cam.METHODS[m].title,
                    **faith.images[i].scores(m, 0),
                    **_faithfulness_entry(faith, faith.images[i], m, 0, t),
                }
                for m in results
            ]
            if measured
            else []
        )
        iv["replacement"] = faith.images[i].replacement.replace("_", " ") if measured else None
        iv["empty"] = [labels[j] for j in range(len(labels)) if first.negligible[i, j]]
        view["images"].append(iv)
    view["figure_ids"] = {f"gradcam-{i}" for i in range(len(images))} | (
        {f"gradcam-faithfulness-{i}" for i in range(len(images))} if measured else set()
    )
    info = {
        "layer": ref.path,
        "layer_resolution": list(first.heatmaps.shape[-2:]),
        "score": head.score,
        "output": head.kind,
        "output_name": head.output_name,
        "target": target_text(head),
        "note": head.note,
        "axes_note": axes_note,
        "methods": list(results),
        "faithfulness": protocol if measured else _unmeasured(faith, view["faithfulness_note"]),
    }
    attention_json = attention_entries(ctx, images, json_images, view)
    out = {"images": json_images, "gradcam": info}
    if attention_json is not None:
        out["attention"] = attention_json
    return SectionResult(json=out, view=view)


def attention_entries(ctx: Context, images: list, json_images: list[dict], view: dict) -> dict | None:
    """A transformer's attention rollout and last-block heads beside the CAMs: report.json's ``attention`` and
    ``images[i].attention_rollout`` / ``attention_heads``, and the figures. None for a model without
    attention."""
    if "attention" in ctx.analyses.failed:
        view["attention"] = {
            "note": f"Attention could not be computed: {ctx.analyses.failed['attention'].message}",
            "images": [],
        }
        return {"note": view["attention"]["note"]}
    found = ctx.analyses.attention
    if found is None:  # not a transformer
        return None
    info = {
        "layers": found.layers,
        "method": f"attention rollout ({attention.PAPER})",
        "read_from": found.source(),
        "grid": found.grid.to_json() if found.grid is not None else None,
        "last_layer": found.last,
        "check_max_relative_error": found.check_error,
        "heads": [h.to_json() for h in found.stats],
        "note": found.note,
    }
    av: dict = {
        "note": found.note,
        "layers": found.layers,
        "last": found.last,
        "source": found.source(),
        "check_error": found.check_error,
        "images": [],
    }
    if found.rollout is not None:
        for i, image in enumerate(images):
            json_images[i]["attention_rollout"] = np.round(found.rollout[i].astype(np.float64), 5).tolist()
            json_images[i]["attention_heads"] = {
                "layer": found.last,
                "maps": [np.round(h.astype(np.float64), 5).tolist() for h in found.heads[i]],
            }
            av["images"].append(
                {
                    "index": i,
                    "name": image.name,
                    "figure": Figure("gradcam.attention", image.pixels, found.rollout[i], found.heads[i]),
                }
            )
    view["attention"] = av
    return info
