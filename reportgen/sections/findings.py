"""Audit findings: what is wrong with the model, on page 1, each linked to its evidence.

Computed last (it reads the other sections' results), rendered first. The
checks themselves live in :mod:`reportgen.analyses.findings` and
:mod:`reportgen.analyses.sanity`; this module gathers their inputs (weights,
the fresh baseline, activations over the report's images, the patterns JSON),
points each finding at a figure that exists in this report, and draws the
evidence no other section shows (BatchNormalization channels, the Grad-CAM
sanity-check strip).
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from reportgen import config, graph
from reportgen.analyses import findings as F
from reportgen.analyses import sanity as S
from reportgen.context import Context, SectionResult
from reportgen.errors import UserError
from reportgen.plots import fig_to_uri, heatmap_overlay
from reportgen.render import slug

TITLE = "Findings"

KIND_LABELS = {
    "nonfinite_weights": "NaN/Inf weights",
    "dead_filter": "dead filter",
    "dead_unit": "dead unit",
    "inactive_unit": "inactive unit",
    "inactive_layer": "inactive layer",
    "untrained_layer": "untrained layer",
    "duplicate_filters": "duplicate filters",
    "exploding_scale": "exploding scale",
    "vanishing_scale": "vanishing scale",
    "saturation": "saturation",
    "bn_gamma": "BN gamma ~ 0",
    "bn_variance": "BN variance ~ 0",
    "gradcam_sanity": "Grad-CAM sanity",
    "pattern_not_rising": "pattern not rising",
}


def validate(ctx: Context) -> None:
    """Bad thresholds fail before any analysis runs."""
    config.load(ctx.options.config)


# --- inputs -------------------------------------------------------------------------

def _image_inputs(ctx: Context) -> tuple[np.ndarray | None, list]:
    """The report's prepared images as one batch (None when there are none)."""
    wanted = {"features", "gradcam"} & set(ctx.options.sections)
    if not wanted and "features" not in ctx.results and "gradcam" not in ctx.results:
        return None, []
    images = list(ctx.images)
    if not images:
        return None, []
    return np.stack([np.asarray(im.input, dtype=np.float32) for im in images]), images


def _available_anchors(ctx: Context) -> set[str]:
    """Figure ids the other sections put in this report (by the shared anchor convention)."""
    ids: set[str] = set()

    def json_of(name: str) -> dict:
        res = ctx.results.get(name)
        return res.json if res is not None and isinstance(res.json, dict) else {}

    for name in ("weights", "kernels", "patterns"):
        block = json_of(name).get(name)
        if isinstance(block, dict):
            ids.update(f"{name}-{slug(p)}" for p in block)
    for image in json_of("features").get("images", []) or []:
        if isinstance(image, dict) and isinstance(image.get("features"), dict):
            ids.update(f"features-{slug(p)}" for p in image["features"])
    return ids


def _point(findings: list[dict], available: set[str], own: set[str]) -> list[dict]:
    """Each finding's anchor: its kind's figure if this report has it, else the weights figure, else none."""
    out = []
    for f in findings:
        anchor = f.get("anchor")
        if anchor not in available and anchor not in own:
            fallback = f"weights-{slug(f['layer'])}" if f.get("layer") else None
            anchor = fallback if fallback in available else None
        out.append({**f, "anchor": anchor})
    return out


# --- figures ------------------------------------------------------------------------

def bn_figure(path: str, layer: Any, t: config.Thresholds) -> str:
    """|gamma| and moving variance per channel, log scale, flagged channels in red."""
    panels = []
    if getattr(layer, "gamma", None) is not None:
        panels.append(("|gamma|", np.abs(np.asarray(layer.gamma.numpy(), dtype=np.float64)), t.bn_gamma))
    panels.append(("moving variance", np.asarray(layer.moving_variance.numpy(), dtype=np.float64), t.bn_variance))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.4 * len(panels), 2.2), squeeze=False)
    for ax, (name, values, limit) in zip(axes[0], panels):
        shown = np.where(np.isfinite(values), values, np.nan)
        floor = max(limit / 10.0, 1e-12)
        heights = np.clip(np.nan_to_num(shown, nan=floor), floor, None)
        colours = np.where(values <= limit, "#b3261e", "#1f5fa8")
        ax.bar(np.arange(values.size), heights, width=1.0, color=colours, linewidth=0)
        ax.axhline(limit, color="#b3261e", linestyle="--", linewidth=0.8, label=f"threshold {limit:g}")
        ax.set_yscale("log")
        ax.set_xlabel("channel", fontsize=8)
        ax.set_ylabel(name, fontsize=8)
        ax.set_title(f"{path}: {name}", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6.5, frameon=False, loc="lower right")
    fig.tight_layout()
    return fig_to_uri(fig, dpi=100)


def sanity_figure(result: S.SanityResult, pixels: list[np.ndarray], labels: list[str] | None = None) -> str:
    """The cascade as a strip per image: original heatmap, then each randomisation step."""
    from reportgen.analyses.gradcam import upsample

    n = len(result.original)
    cols = 1 + len(result.steps)
    fig, axes = plt.subplots(n, cols, figsize=(min(7.2, 1.25 * cols + 0.4), 1.25 * n + 0.5), squeeze=False)
    for i in range(n):
        px = np.asarray(pixels[i])
        h, w = px.shape[:2]
        maps = [result.original[i]] + [result.heatmaps[s, i] for s in range(len(result.steps))]
        for j, heat in enumerate(maps):
            ax = axes[i, j]
            ax.imshow(heatmap_overlay(px, upsample(heat, h, w)), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                title = "original" if j == 0 else f"random: {result.steps[j - 1]}"
                ax.set_title(title, fontsize=6.5)
            if j > 0:
                ax.set_xlabel(f"ρ = {result.correlations[j - 1, i]:.2f}", fontsize=7, labelpad=2)
            else:
                name = labels[i] if labels else f"class {int(result.class_indices[i])}"
                ax.set_ylabel(f"image {i + 1}\n{name}", fontsize=7)
    fig.suptitle(f"Grad-CAM at {result.layer} as weights are re-initialised from the top down "
                 "(cumulative)", fontsize=8)
    fig.tight_layout()
    return fig_to_uri(fig, dpi=110)


# --- the section --------------------------------------------------------------------

def _class_labels(ctx: Context, result: S.SanityResult) -> list[str]:
    from reportgen.images import class_names, label_for

    try:
        names = class_names(ctx)
    except UserError:
        names = None
    return [label_for(int(c), names)[:18] for c in result.class_indices]


def _sanity(ctx: Context, t: config.Thresholds, x: np.ndarray | None, images: list) -> tuple[dict, dict | None, list]:
    """Run the Grad-CAM sanity check when Grad-CAM is part of the report."""
    if "gradcam" not in ctx.options.sections:
        return {"status": "not run: the gradcam section was not selected"}, None, []
    if t.sanity_steps == 0:
        return {"status": "not run: sanity_steps = 0 in the configuration"}, None, []
    if x is None:
        return {"status": "not run: no input images"}, None, []
    from reportgen.analyses import gradcam

    try:
        target = gradcam.resolve_layer(ctx.model, ctx.options.gradcam_layer).path
        head = gradcam.classifier_head(ctx.model)
        if head.units is None:
            return {"status": "not run: " + (head.note or "the model has no class scores")}, None, []
        k = min(t.sanity_images, len(x))
        result = S.cascade(ctx.model, ctx.baseline, target, x[:k], max_steps=t.sanity_steps,
                           seed=ctx.options.seed, progress=ctx.progress)
    except UserError as exc:
        return {"status": f"not run: {exc}"}, None, []
    data = {"status": "run", **result.as_json(), "threshold": t.sanity_correlation}
    view = {
        "figure": sanity_figure(result, [im.pixels for im in images[:k]], _class_labels(ctx, result))
        if result.steps else None,
        "layer": target,
        "steps": [{"label": s, "layers": len(ls), "mean": float(m)}
                  for s, ls, m in zip(result.steps, result.step_layers, result.mean_correlations)],
        "statistic": result.statistic,
        "threshold": t.sanity_correlation,
        "images": k,
    }
    return data, view, S.check_sanity(result, t.sanity_correlation)


def table_rows(found: list[dict], group_over: int = 3) -> list[dict]:
    """The page-1 table: one row per finding, but one row per (severity, kind, layer)
    when a layer has more than ``group_over`` findings of a kind (report.json keeps each)."""
    groups: dict[tuple, list[dict]] = {}
    for f in found:
        groups.setdefault((f["severity"], f["kind"], f["layer"]), []).append(f)
    rows, done = [], set()
    for f in found:
        key = (f["severity"], f["kind"], f["layer"])
        group = groups[key]
        label = KIND_LABELS.get(f["kind"], f["kind"])
        if len(group) <= group_over:
            rows.append({**f, "label": label, "filters": None})
            continue
        if key in done:
            continue
        done.add(key)
        listed = [g for g in group if g["filter"] is not None]
        extra = sum(int(g["value"] or 0) for g in group if g["filter"] is None)  # capped remainder
        count = len(listed) + extra
        shown = ", ".join(str(g["filter"]) for g in listed[:12]) + (" …" if count > 12 else "")
        first = listed[0] if listed else f
        rows.append({**first, "label": label, "filters": f"{shown} ({count})",
                     "message": f"{count} filters/units of {f['layer']}, e.g. {first['message']}"})
    return rows


def run(ctx: Context) -> SectionResult:
    t = config.load(ctx.options.config)
    model = ctx.model
    rng = np.random.default_rng(ctx.options.seed)
    found = F.weight_findings(model, ctx.baseline, t, rng)

    x, images = _image_inputs(ctx)
    if x is not None:
        found += F.activation_findings(model, x, t, already=found)

    patterns = ctx.results.get("patterns")
    if patterns is not None:
        found += F.check_patterns(patterns.json.get("patterns", {}), t)

    sanity_json, sanity_view, sanity_findings = _sanity(ctx, t, x, images)
    found += sanity_findings

    # Evidence figures drawn here: BN channels with findings.
    refs = graph.walk(model)
    by_path = {r.path: r.layer for r in refs}
    bn_layers = sorted({f["layer"] for f in found if f["kind"] in ("bn_gamma", "bn_variance")},
                       key=[r.path for r in refs].index)
    bn_figures = [{"layer": p, "id": f"findings-bn-{slug(p)}", "figure": bn_figure(p, by_path[p], t)}
                  for p in bn_layers]
    own = {b["id"] for b in bn_figures} | ({"findings-sanity"} if sanity_view else set())

    order = [r.path for r in refs]
    found = F.apply_severity(found, t)
    # Long runs of one kind in one layer (an untrained MobileNet has thousands of
    # silent units) end in one entry whose `filters` lists the rest.
    found = F.sort_findings(F.cap(found, t.max_per_layer), order)
    found = _point(found, _available_anchors(ctx), own)
    summary = F.summarise(found)
    shown = found

    view = {
        "summary": summary,
        "total": len(found),
        "findings": table_rows(shown),
        "sanity": sanity_view,
        "sanity_status": sanity_json.get("status"),
        "bn_figures": bn_figures,
        "thresholds": [(k, v) for k, v in t.as_dict().items() if k not in ("severity", "source")],
        "severity": t.severity,
        "config_source": t.source,
        "images": 0 if x is None else int(x.shape[0]),
        "fail_on": ctx.options.fail_on,
    }
    json = {
        "findings": found,
        "findings_summary": summary,
        "findings_config": t.as_dict(),
        "gradcam_sanity": sanity_json,
    }
    return SectionResult(json=json, view=view)
