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
from reportgen.plots import HEATMAP_CMAP, Later, fig_to_uri, heatmap_overlay, pyplot
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


def overlay(pixels: np.ndarray, heatmap: np.ndarray) -> np.ndarray:
    """The heatmap, upsampled to the image, blended over it."""
    h, w = pixels.shape[:2]
    return heatmap_overlay(pixels, cam.upsample(heatmap, h, w))


def _tail(path: str, n: int) -> str:
    """A layer path's last ``n`` characters, cut at a ``/`` where one is near and marked with an ellipsis (a
    nested path's last 20 characters read "sformer_block_2/ln_1")."""
    if len(path) <= n:
        return path
    tail = path[-(n - 1) :]
    cut = tail.find("/")
    return "…" + (tail[cut + 1 :] if 0 <= cut < n // 2 else tail)


def _short(label: str, n: int = 22) -> str:
    return label if len(label) <= n else label[: n - 1] + "…"


def _title(rank: int, label: str, value: float | None, word: str) -> str:
    name, _, detail = label.partition(" (")
    text = f"{rank}. {_short(name, 18)}" + (f"\n({_short(detail, 20)}" if detail else "")
    return text + (f"\n{word} = {value:.3g}" if value is not None else "")


def output_picture(output: np.ndarray, head: cam.Head) -> np.ndarray:
    """A dense output as a picture: the winning class per pixel, or the mean over channels."""
    import matplotlib

    if head.kind == "pixel-softmax":
        winner = output.argmax(axis=-1)
        colours = (matplotlib.colormaps["tab20"](np.arange(20))[:, :3] * 255).astype(np.uint8)
        return colours[winner % 20]
    m = output if output.ndim == 2 else output.mean(axis=-1)
    lo, hi = float(np.min(m)), float(np.max(m))
    scaled = (m - lo) / (hi - lo) if hi > lo else np.zeros_like(m)
    return (matplotlib.colormaps["gray"](scaled)[..., :3] * 255).astype(np.uint8)


def image_figure(
    image: imgs.PreparedImage,
    labels: list[str],
    values: list[float | None],
    word: str,
    results: dict[str, cam.CamResult],
    index: int,
    layer: str,
    head: cam.Head,
    output: np.ndarray | None,
) -> str:
    """One picture per image: the input (and output map), each method's overlays in a row, raw maps below."""
    plt = pyplot()

    k = len(labels)
    methods = list(results)
    rows = len(methods) + (1 if len(methods) == 1 else 0)
    cols = k + 1
    width = 7.0 if cols >= 3 else 2.3 * cols + 0.6
    cell = min(1.55, (width - 0.6) / cols)
    fig, axes = plt.subplots(
        rows,
        cols,
        figsize=(width, rows * cell + 0.75),
        squeeze=False,
        gridspec_kw={"hspace": 0.12, "wspace": 0.08},
    )
    px = image.pixels
    axes[0, 0].imshow(px[..., 0] if px.shape[-1] == 1 else px, cmap="gray", vmin=0, vmax=255)
    axes[0, 0].set_title(
        "input" + (f"\ntrue: {_short(image.label, 16)}" if image.label is not None else ""), fontsize=7.5
    )
    for r in range(1, rows):  # the first column below the input: the output map, a caption, or nothing
        cell = axes[r, 0]
        if r == 1 and output is not None:
            cell.imshow(output_picture(output, head), interpolation="nearest")
            cell.set_title("model output", fontsize=7)
        elif r == rows - 1 and len(methods) == 1:
            hh, hw = results[methods[0]].heatmaps.shape[-2:]
            cell.text(
                0.5,
                0.5,
                f"raw heatmaps\n{_tail(layer, 20)}\n{hh}×{hw}",
                ha="center",
                va="center",
                fontsize=7,
                transform=cell.transAxes,
                wrap=True,
            )
            cell.set_axis_off()
        else:
            cell.set_axis_off()
    grey = px.mean(axis=-1) if px.ndim == 3 else px
    for r, name in enumerate(methods):
        res = results[name]
        nothing = res.negligible
        for j in range(k):
            ax = axes[r, j + 1]
            if nothing[index, j]:  # drawn as nothing, not stretched to full contrast
                ax.imshow(grey, cmap="gray", vmin=0, vmax=255, alpha=0.35)
                ax.text(
                    0.5,
                    0.5,
                    "no evidence\nat this layer",
                    transform=ax.transAxes,
                    ha="center",
                    va="center",
                    fontsize=6.5,
                    color="black",
                )
            else:
                ax.imshow(overlay(px, res.heatmaps[index, j]))
                ax.text(
                    0.03,
                    0.03,
                    f"peak {res.peaks[index, j]:.2g}",
                    transform=ax.transAxes,
                    color="white",
                    fontsize=5.5,
                    va="bottom",
                    ha="left",
                    bbox=dict(facecolor="black", alpha=0.55, pad=0.8, linewidth=0),
                )
            if r == 0:
                ax.set_title(_title(j + 1, labels[j], values[j], word), fontsize=7.5)
            if j == 0 and len(methods) > 1:
                ax.text(
                    0.03,
                    0.97,
                    cam.METHODS[name].title,
                    transform=ax.transAxes,
                    color="white",
                    fontsize=6.5,
                    va="top",
                    ha="left",
                    bbox=dict(facecolor="black", alpha=0.6, pad=1.0, linewidth=0),
                )
    if len(methods) == 1:
        res = results[methods[0]]
        for j in range(k):
            if res.negligible[index, j]:
                axes[1, j + 1].text(
                    0.5,
                    0.5,
                    "no evidence",
                    transform=axes[1, j + 1].transAxes,
                    ha="center",
                    va="center",
                    fontsize=6.5,
                )
                continue
            axes[1, j + 1].imshow(
                res.heatmaps[index, j], cmap=HEATMAP_CMAP, vmin=0, vmax=1, interpolation="nearest"
            )
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    sm = plt.cm.ScalarMappable(cmap=HEATMAP_CMAP, norm=plt.Normalize(0, 1))
    cb = fig.colorbar(sm, ax=axes.ravel().tolist(), fraction=0.025, pad=0.02)
    cb.set_label("evidence, a fraction of the map's peak\n(each map's peak on it)", fontsize=6.5)
    cb.ax.tick_params(labelsize=6.5)
    return fig_to_uri(fig, fmt="jpeg" if px.shape[0] * px.shape[1] > 96 * 96 else "png")


def faithfulness_figure(
    curves: Any, methods: list[str], label: str, word: str, replacement: str = "gaussian_blur"
) -> str:
    """One image's deletion and insertion curves of its first explained class: every method and both
    baselines on two small panels, the AUCs in the legend, the replacement in the titles."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(7.0, 1.9), sharey=True, gridspec_kw={"wspace": 0.08})
    frac = np.linspace(0.0, 1.0, len(curves.random[0].deletion))
    colours = plt.get_cmap("tab10").colors
    lines = [
        (cam.METHODS[m].title, curves.cams[m][0], dict(color=colours[i % 10], linewidth=1.5))
        for i, m in enumerate(methods)
    ]
    lines += [
        ("random map", curves.random[0], dict(color="0.55", linestyle="--", linewidth=1.1)),
        ("Sobel edges", curves.edge[0], dict(color="black", linestyle=":", linewidth=1.2)),
    ]
    for ax, part, what in (
        (axes[0], "deletion", "deleted (lower area = more faithful)"),
        (axes[1], "insertion", "inserted (higher area = more faithful)"),
    ):
        ax.set_title(f"{part}: {what.split(' ', 1)[1][1:-1].replace(' area', '')}", fontsize=7, pad=3)
        for name, curve, style in lines:
            ax.plot(frac, getattr(curve, part), **style)
        ax.set_xlim(0, 1)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel(
            f"fraction of pixels {what.split(' ', 1)[0]} ({replacement.replace('_', ' ')})", fontsize=7
        )
        ax.tick_params(labelsize=6.5)
        ax.grid(alpha=0.25, linewidth=0.5)
    axes[0].set_ylabel(f"{word}({_short(label, 18)})", fontsize=7)
    handles = axes[0].get_lines()
    fig.legend(
        handles,
        [f"{name}  {c.deletion_auc:.2f} / {c.insertion_auc:.2f}" for name, c, _s in lines],
        loc="center right",
        fontsize=6.3,
        frameon=False,
        title="AUC: deletion / insertion",
        title_fontsize=6.3,
        handlelength=2.0,
        labelspacing=0.35,
    )
    fig.subplots_adjust(left=0.075, right=0.71, bottom=0.22, top=0.88, wspace=0.1)
    return fig_to_uri(fig, dpi=110)


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
        iv["figure"] = Later(
            image_figure, image, labels, values, word, results, i, ref.path, head, map_output
        )
        iv["faithfulness"] = (
            Later(
                faithfulness_figure,
                faith.images[i],
                list(results),
                labels[0],
                _score_word(head),
                faith.images[i].replacement,
            )
            if measured
            else None
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
                    "figure": Later(attention_figure, image, found.rollout[i], found.heads[i], found.last),
                }
            )
    view["attention"] = av
    return info


def attention_figure(image: imgs.PreparedImage, rolled: np.ndarray, heads: np.ndarray, last: str) -> str:
    """The input, its attention rollout overlaid, then each head of the last block (own scale per map)."""
    plt = pyplot()

    n = 2 + heads.shape[0]
    cols = min(n, 8)
    rows = -(-n // cols)
    cell = min(1.3, 6.8 / cols)
    fig, axes = plt.subplots(
        rows,
        cols,
        figsize=(cols * cell + 0.2, rows * (cell + 0.3)),
        squeeze=False,
        gridspec_kw={"hspace": 0.35, "wspace": 0.08},
    )
    px = image.pixels
    axes[0, 0].imshow(px[..., 0] if px.shape[-1] == 1 else px, cmap="gray", vmin=0, vmax=255)
    axes[0, 0].set_title("input", fontsize=7)
    peak = float(rolled.max()) or 1.0
    low = float(rolled.min()) / peak
    axes[0, 1].imshow(overlay(px, rolled / peak))
    # The span, stated: a rollout of 0.83-1.0 of its maximum is nearly uniform, though all red on a 0-1 scale.
    axes[0, 1].set_title(f"rollout\n{low:.2f}–1.00 of max", fontsize=6.5)
    top = float(heads.max()) if heads.size else 1.0
    for h in range(heads.shape[0]):
        ax = axes.ravel()[2 + h]
        ax.imshow(heads[h], cmap=HEATMAP_CMAP, vmin=0, vmax=top or 1.0, interpolation="nearest")
        ax.set_title(f"head {h}", fontsize=7)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes.ravel()[n:]:
        ax.set_axis_off()
    sm = plt.cm.ScalarMappable(cmap=HEATMAP_CMAP, norm=plt.Normalize(0, top or 1.0))
    cb = fig.colorbar(sm, ax=axes.ravel().tolist(), fraction=0.02, pad=0.02)
    cb.set_label(
        "heads: attention to the patch\n(one scale for all; rollout: overlay\nas a fraction of its max)",
        fontsize=6,
    )
    cb.ax.tick_params(labelsize=6)
    return fig_to_uri(fig, fmt="png")
