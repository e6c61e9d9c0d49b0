"""Grad-CAM: the top predictions for each image and where in the image they come from.

Target layer: the last conv layer before the classifier (found automatically,
nested models included) or ``--gradcam-layer``. All images go through one
batch (:func:`reportgen.analyses.gradcam.compute`).
"""

from __future__ import annotations


import numpy as np

from reportgen import images as imgs
from reportgen.analyses import gradcam as gc
from reportgen.context import Context, SectionResult
from reportgen.errors import UserError
from reportgen.plots import HEATMAP_CMAP, fig_to_uri, heatmap_overlay
from reportgen.sections.features import image_entry, image_view

TITLE = "Grad-CAM"


def validate(ctx: Context) -> None:
    opts = ctx.options
    if opts.top_k < 1:
        raise UserError(f"--top-k must be at least 1 (got {opts.top_k})")
    if opts.gradcam_layer:
        imgs.require_image_input(ctx.model, "--gradcam-layer")
        gc.resolve_layer(ctx.model, opts.gradcam_layer)
    imgs.class_names(ctx)  # a bad --class-names file fails now, before any analysis
    ctx.images  # noqa: B018  (loads and checks every --image)


def overlay(pixels: np.ndarray, heatmap: np.ndarray) -> np.ndarray:
    """The heatmap, upsampled to the image, blended over it."""
    h, w = pixels.shape[:2]
    return heatmap_overlay(pixels, gc.upsample(heatmap, h, w))


def _title(rank: int, pred: dict) -> str:
    label = pred["label"]
    if len(label) > 22:
        label = label[:21] + "…"
    value = pred["probability"] if pred["probability"] is not None else pred["value"]
    word = "p" if pred["probability"] is not None else "out"
    return f"{rank}. {label}\n{word} = {value:.3g}"


def image_figure(image: imgs.PreparedImage, preds: list[dict], heatmaps: np.ndarray, layer: str) -> str:
    """One picture per image: input + overlays on top, raw layer-resolution heatmaps below."""
    import matplotlib.pyplot as plt

    k = len(preds)
    cols = k + 1
    width = 7.0 if cols >= 3 else 2.3 * cols + 0.6
    cell = min(1.55, (width - 0.6) / cols)
    fig, axes = plt.subplots(2, cols, figsize=(width, 2 * cell + 0.75), squeeze=False,
                             gridspec_kw={"hspace": 0.06, "wspace": 0.08})
    px = image.pixels
    axes[0, 0].imshow(px[..., 0] if px.shape[-1] == 1 else px, cmap="gray", vmin=0, vmax=255)
    title = "input" + (f"\ntrue: {image.label}" if image.label is not None else "")
    axes[0, 0].set_title(title, fontsize=7.5)
    hh, hw = heatmaps.shape[-2:]
    axes[1, 0].text(0.5, 0.5, f"raw heatmaps\n{layer}\n{hh}×{hw}", ha="center", va="center",
                    fontsize=7, transform=axes[1, 0].transAxes, wrap=True)
    for j, pred in enumerate(preds):
        axes[0, j + 1].imshow(overlay(px, heatmaps[j]))
        axes[0, j + 1].set_title(_title(j + 1, pred), fontsize=7.5)
        axes[1, j + 1].imshow(heatmaps[j], cmap=HEATMAP_CMAP, vmin=0, vmax=1, interpolation="nearest")
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    axes[1, 0].set_axis_off()
    sm = plt.cm.ScalarMappable(cmap=HEATMAP_CMAP, norm=plt.Normalize(0, 1))
    cb = fig.colorbar(sm, ax=axes.ravel().tolist(), fraction=0.025, pad=0.02)
    cb.set_label("Grad-CAM (0 = none, 1 = strongest)", fontsize=7)
    cb.ax.tick_params(labelsize=6.5)
    return fig_to_uri(fig, fmt="jpeg" if px.shape[0] * px.shape[1] > 96 * 96 else "png")


def _prediction(index: int, outputs: np.ndarray, head: gc.Head, names: list[str] | None) -> dict:
    value = float(outputs[index])
    return {
        "index": int(index),
        "label": imgs.label_for(int(index), names),
        "probability": value if head.is_classifier else None,
        "value": value,
    }


def run(ctx: Context) -> SectionResult:
    opts = ctx.options
    images = ctx.images
    view: dict = {"images": [], "note": None, "head_note": None, "layer": None, "score": None}
    if not images:
        view["note"] = "The model's input is not an image, so there is no Grad-CAM."
        return SectionResult(json={"gradcam": {"note": view["note"]}}, view=view)
    head = gc.classifier_head(ctx.model)
    view["head_note"] = head.note
    json_images = [image_entry(im) | {"predictions": [], "gradcam": []} for im in images]
    if head.units is None:
        view["note"] = head.note
        view["images"] = [image_view(im, i) | {"figure": None, "predictions": []} for i, im in enumerate(images)]
        return SectionResult(json={"images": json_images, "gradcam": {"note": head.note}}, view=view)
    try:
        ref = gc.resolve_layer(ctx.model, opts.gradcam_layer)
    except UserError as exc:
        if opts.gradcam_layer:
            raise
        view["note"] = str(exc)
        return SectionResult(json={"images": json_images, "gradcam": {"note": view["note"]}}, view=view)
    names = imgs.class_names(ctx)
    batch = np.stack([im.input for im in images])
    result = gc.compute(ctx.model, ref.path, batch, top_k=opts.top_k)
    view["layer"], view["score"] = ref.path, head.score
    view["kind"] = head.kind
    bar = ctx.progress(range(len(images)), desc="grad-cam") if ctx.progress else range(len(images))
    for i in bar:
        image = images[i]
        preds = [_prediction(c, result.outputs[i], head, names) for c in result.class_indices[i]]
        json_images[i]["predictions"] = [
            {k: p[k] for k in ("index", "label", "probability")} | ({} if head.is_classifier else {"value": p["value"]})
            for p in preds
        ]
        json_images[i]["gradcam"] = [
            {
                "class_index": int(c),
                "label": imgs.label_for(int(c), names),
                "layer": ref.path,
                "score": head.score,
                "peak": float(result.peaks[i, j]),
                "heatmap": np.round(result.heatmaps[i, j].astype(np.float64), 4).tolist(),
            }
            for j, c in enumerate(result.class_indices[i])
        ]
        iv = image_view(image, i)
        iv["predictions"] = preds
        iv["correct"] = (image.label is not None and preds and preds[0]["label"] == image.label)
        iv["figure"] = image_figure(image, preds, result.heatmaps[i], ref.path)
        iv["empty"] = [p["label"] for j, p in enumerate(preds) if result.peaks[i, j] <= 0]
        view["images"].append(iv)
    info = {"layer": ref.path, "layer_resolution": list(result.heatmaps.shape[-2:]), "score": head.score,
            "output": head.kind, "note": head.note}
    return SectionResult(json={"images": json_images, "gradcam": info}, view=view)
