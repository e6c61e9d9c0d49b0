"""Audit findings: what is wrong with the model, on page 1, each linked to its evidence.

Computed last, rendered first. The checks live in
:mod:`reportgen.analyses.findings` and declare what they read: the weight
facts (always), how units behave on the report's images (when it has images),
the pattern ascent (when the patterns section ran) and the CAM sanity check
(run here for each CAM method of the report). This module gathers those
inputs, applies the configured severities, caps and roll-ups, and describes the
evidence no other section shows (BatchNormalization channels, the sanity
strips; :mod:`reportgen.painters.findings` draws them). Which figure each
finding links to is settled when the report is assembled
(:func:`reportgen.report.assemble`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from reportgen import config, graph
from reportgen.analyses import findings as F
from reportgen.analyses import sanity as S
from reportgen.anchors import anchor_id
from reportgen.context import Context, SectionResult
from reportgen.figures import Figure

TITLE = "Findings"


def NEEDS(options: Any) -> tuple[str, ...]:
    """The weight facts always; the units on the images, the CAMs' sanity check and the patterns when the
    report has them (a failed one only leaves its checks out)."""
    needs = ["weights", "weight_findings", "thresholds"]
    if options.image_dirs or {"features", "gradcam"} & set(options.sections):
        needs += ["images", "activity"]
    if options.image_dirs:
        needs.append("dataset")
    if "gradcam" in options.sections:
        needs += ["cams", "sanity", "faithfulness", "attention"]
    if "patterns" in options.sections:
        needs.append("patterns")
    if wants_robustness(options):
        needs.append("robustness")
    return tuple(needs)


def wants_robustness(options: Any) -> bool:
    """Whether the robustness section runs: named, or in the default set with --images
    (report.selected_sections)."""
    from reportgen.options import SECTION_NAMES

    return "robustness" in options.sections and (
        bool(options.image_dirs) or tuple(options.sections) != tuple(SECTION_NAMES)
    )


OPTIONAL = (
    "dataset",
    "activity",
    "cams",
    "sanity",
    "faithfulness",
    "patterns",
    "attention",
    "robustness",
)  # checks that need a failed one are left out


def validate(ctx: Context) -> None:
    """Bad thresholds fail before any analysis runs."""
    config.load(ctx.options.config)


# --- the section --------------------------------------------------------------------


def _bn_figure(path: str, lw: Any, t: config.Thresholds) -> Figure:
    """|gamma| and moving variance per channel against their thresholds."""
    return Figure("findings.bn", path, lw.gamma, lw.moving_variance, t.bn_gamma, t.bn_variance)


def _sanity_figure(result: S.SanityResult, pixels: list[np.ndarray], labels: list[str], title: str) -> Figure:
    """The cascade as a strip per image: the original map, then each randomisation step's."""
    names = [
        labels[i] if labels else (f"class {int(c)}" if c >= 0 else "output map")
        for i, c in enumerate(result.class_indices)
    ]
    return Figure(
        "findings.sanity",
        result.original,
        result.heatmaps,
        result.correlations,
        list(result.steps),
        pixels,
        names,
        result.layer,
        title,
    )


def _class_labels(ctx: Context, result: S.SanityResult) -> list[str]:
    from reportgen.images import label_for

    names = ctx.get("class_names")
    return [label_for(int(c), names)[:18] if c >= 0 else "output map" for c in result.class_indices]


def _sanity(ctx: Context, t: config.Thresholds) -> tuple[dict, list[dict], list[S.SanityResult]]:
    """The sanity check of each CAM method (an analysis that needs the CAMs): JSON, views, results."""
    from reportgen.analyses import cam

    if "gradcam" not in ctx.options.sections:
        return {"status": "not run: the gradcam section was not selected"}, [], []
    done = ctx.get("sanity")
    if done is None:
        return {"status": "not run: the class activation maps failed (see the gradcam section)"}, [], []
    if done.status != "run":
        return {"status": done.status}, [], []
    images, k, layer = ctx.analyses.images, done.images, ctx.analyses.cams.layer
    results, views, blocks = [], [], []
    for name, result in zip(ctx.options.cam, done.results):
        results.append(result)
        title = cam.METHODS[name].title
        blocks.append({**result.as_json(t.sanity_correlation), "threshold": t.sanity_correlation})
        views.append(
            {
                "method": name,
                "title": title,
                "id": "findings-sanity" if not views else f"findings-sanity-{name}",
                "figure": _sanity_figure(
                    result, [im.pixels for im in images[:k]], _class_labels(ctx, result), title
                )
                if result.steps
                else None,
                "layer": layer,
                "steps": [
                    {"label": s, "layers": len(ls), "mean": float(m)}
                    for s, ls, m in zip(result.steps, result.step_layers, result.mean_correlations)
                ],
                "statistic": result.statistic,
                "threshold": t.sanity_correlation,
                "verdict": blocks[-1]["verdict"],
                "why": blocks[-1]["why"],
                "images": k,
            }
        )
    first = blocks[0]
    data = {"status": "run", **first, "methods": blocks}
    return data, views, results


def _members(f: dict) -> set[tuple]:
    """(kind, layer, filter) of every finding an entry stands for (a capped sum lists its filters)."""
    if f.get("items"):
        return {
            (f["kind"], i["layer"], x)
            for i in f["items"]
            for x in ([i["filter"]] if i["filter"] is not None else []) + list(i.get("filters") or [])
        }
    return {
        (f["kind"], f["layer"], x)
        for x in ([f["filter"]] if f["filter"] is not None else []) + list(f.get("filters") or [])
    }


def _cause_keys(f: dict) -> set[tuple]:
    c = f["caused_by"]
    return {
        (c["kind"], c["layer"], x)
        for x in ([c["filter"]] if c.get("filter") is not None else []) + list(c.get("filters") or [])
    }


def cause_text(f: dict) -> str:
    """ "caused by the dead filter 3 of conv2" for a finding with ``caused_by``."""
    c = f["caused_by"]
    label = F.KINDS[c["kind"]].label if c["kind"] in F.KINDS else c["kind"].replace("_", " ")
    noun = "filters" if c["kind"] == "dead_filter" else "units"
    if c.get("filter") is not None:
        return f"caused by the {label} {c['filter']} of {c['layer']}"
    filters = list(c.get("filters") or [])
    shown = ", ".join(str(x) for x in filters[:12]) + (" …" if len(filters) > 12 else "")
    return f"caused by the {label.split(' ', 1)[0]} {noun} {shown} of {c['layer']}"


def table_rows(found: list[dict], group_over: int = 3) -> list[dict]:
    """The page-1 table: one row per finding, but one row per (severity, kind, layer)
    when a layer has more than ``group_over`` findings of a kind (report.json keeps each).

    A finding another one explains (``caused_by``) is not a problem of its own:
    its row comes right under its cause's row, marked ``caused`` and saying
    what caused it; it stays a row of its own only when its cause is not in
    the table (that kind switched off in the configuration).
    """
    rows = [
        {**r, "caused": False, "cause_text": None}
        for r in _grouped_rows([f for f in found if not f.get("caused_by")], group_over)
    ]
    caused = [f for f in found if f.get("caused_by")]
    if not caused:
        return rows
    members = [r["members"] for r in rows]
    under: dict[int, list[dict]] = {}
    alone: list[dict] = []
    for f in caused:
        keys = _cause_keys(f)
        at = next((i for i, m in enumerate(members) if keys and keys <= m), None)
        if at is None:
            alone.append(f)
        else:
            under.setdefault(at, []).append(f)
    out = []
    for i, row in enumerate(rows):
        out.append(row)
        for r in _grouped_rows(under.get(i, []), group_over):
            out.append({**r, "caused": True, "cause_text": _group_cause_text(r, under[i])})
    for r in _grouped_rows(alone, group_over):
        out.append({**r, "caused": False, "cause_text": _group_cause_text(r, alone)})
    return out


def _group_cause_text(row: dict, found: list[dict]) -> str:
    """The cause line of a (possibly grouped) row of caused findings."""
    if row.get("filters") is None:
        return cause_text(row)
    mine = [
        f
        for f in found
        if (f["severity"], f["kind"], f["layer"]) == (row["severity"], row["kind"], row["layer"])
    ]
    layers = {f["caused_by"]["layer"] for f in mine}
    kinds = {f["caused_by"]["kind"] for f in mine}
    if len(layers) == 1 and len(kinds) == 1:
        filters = [
            x
            for f in mine
            for x in ([f["caused_by"]["filter"]] if f["caused_by"].get("filter") is not None else [])
            + list(f["caused_by"].get("filters") or [])
        ]
        return cause_text(
            {"caused_by": {"kind": kinds.pop(), "layer": layers.pop(), "filter": None, "filters": filters}}
        )
    return "each caused by a finding listed above (report.json: caused_by)"


def value_means(f: dict) -> str:
    """What the Value column's number is, in a few words (kinds say it in finding_kinds; a roll-up row's value
    is a count)."""
    if f.get("value") is None:
        return ""
    if f.get("items") or (f.get("filter") is None and f.get("threshold") is None):
        return "how many"
    kind = F.KINDS.get(f["kind"])
    return kind.value if kind is not None else ""


def _grouped_rows(found: list[dict], group_over: int) -> list[dict]:
    groups: dict[tuple, list[dict]] = {}
    for f in found:
        groups.setdefault((f["severity"], f["kind"], f["layer"]), []).append(f)
    rows, done = [], set()
    for f in found:
        key = (f["severity"], f["kind"], f["layer"])
        group = groups[key]
        label = F.KINDS[f["kind"]].label
        layer_text = (
            f["layer"]
            if f["layer"] is not None
            else (f"{len(f['layers'])} layers" if f.get("layers") else None)
        )
        if len(group) <= group_over or f["layer"] is None:
            rows.append(
                {
                    **f,
                    "label": label,
                    "filters": None,
                    "layer_text": layer_text,
                    "members": _members(f),
                    "value_means": value_means(f),
                }
            )
            continue
        if key in done:
            continue
        done.add(key)
        listed = [g for g in group if g["filter"] is not None]
        extra = sum(int(g["value"] or 0) for g in group if g["filter"] is None)  # capped remainder
        count = len(listed) + extra
        shown = ", ".join(str(g["filter"]) for g in listed[:12]) + (" …" if count > 12 else "")
        first = listed[0] if listed else f
        rows.append(
            {
                **first,
                "label": label,
                "filters": f"{shown} ({count})",
                "layer_text": layer_text,
                "value_means": value_means(first) + (" (the first)" if first["value"] is not None else ""),
                "members": set().union(*(_members(g) for g in group)),
                "message": f"{count} filters/units of {f['layer']}, e.g. {first['message']}",
            }
        )
    return rows


def collect(ctx: Context, t: config.Thresholds) -> tuple[list[dict], dict, list[dict], list[str]]:
    """Every check whose inputs this report has; (raw findings, sanity JSON, sanity views, kinds checked)."""
    inputs: dict[str, Any] = {"weights": ctx.analyses.weights}
    if ctx.get("activity") is not None:
        inputs["activity"] = ctx.analyses.activity
    if "patterns" in ctx.options.sections and ctx.get("patterns") is not None:
        inputs["patterns"] = ctx.analyses.patterns.results
    if (
        "gradcam" in ctx.options.sections
        and ctx.get("attention") is not None
        and ctx.analyses.attention
        and ctx.analyses.attention.stats
    ):
        inputs["attention"] = ctx.analyses.attention
    if ctx.options.image_dirs and ctx.get("dataset") is not None:
        inputs["dataset"] = ctx.analyses.dataset
    sanity_json, sanity_views, sanity_results = _sanity(ctx, t)
    if sanity_results:
        inputs["sanity"] = sanity_results
    if (
        "gradcam" in ctx.options.sections
        and ctx.get("faithfulness") is not None
        and ctx.analyses.faithfulness.images
    ):
        inputs["faithfulness"] = ctx.analyses.faithfulness
    if wants_robustness(ctx.options) and ctx.get("robustness") is not None:
        inputs["robustness"] = ctx.analyses.robustness
    return F.run_checks(ctx.model, inputs, t), sanity_json, sanity_views, F.checked_kinds(inputs)


def run(ctx: Context) -> SectionResult:
    t = ctx.analyses.thresholds
    found, sanity_json, sanity_views, checked = collect(ctx, t)
    # Evidence figures drawn here: BN channels with findings.
    order = [r.path for r in graph.walk(ctx.model)]
    bn_layers = sorted(
        {f["layer"] for f in found if f["kind"] in ("bn_gamma", "bn_variance")}, key=order.index
    )
    bn_figures = [
        {"layer": p, "id": anchor_id("findings-bn", p), "figure": _bn_figure(p, ctx.analyses.weights[p], t)}
        for p in bn_layers
    ]
    # Long runs of one kind in one layer (an untrained MobileNet has thousands of silent units)
    # end in one entry whose `filters` lists the rest; a kind over many layers in one entry listing them.
    found = F.finish(found, t, order)
    summary = F.summarise(found)
    n_images = (
        ctx.analyses.activity.images
        if ctx.options.image_dirs
        else (len(ctx.analyses.images) if ({"features", "gradcam"} & set(ctx.options.sections)) else 0)
    )
    need = None
    if 0 < n_images < t.inactive_min_images:
        need = (
            f"Dead units are judged on at least {t.inactive_min_images} images; this report has {n_images}, "
            f"so no unit is called inactive. Give {t.inactive_min_images} "
            "or more with --image, or a folder with --images."
        )
    view = {
        "summary": summary,
        "total": len(found),
        "findings": found,
        "explained": sum(1 for f in found if f.get("caused_by")),
        "sanity": sanity_views,
        "stand_in": bool(sanity_views) and any(getattr(im, "stand_in", False) for im in ctx.analyses.images),
        "sanity_status": sanity_json.get("status"),
        "bn_figures": bn_figures,
        "thresholds": [(k, v) for k, v in t.as_dict().items() if k not in ("severity", "source")],
        "severity": t.severity,
        "config_source": t.source,
        "images": n_images,
        "images_needed": need,
        "fail_on": ctx.options.fail_on,
        "figure_ids": {b["id"] for b in bn_figures} | {v["id"] for v in sanity_views if v["figure"]},
    }
    json = {
        "findings": found,
        "findings_summary": summary,
        "findings_checked": checked,
        "findings_config": t.as_dict(),
        "gradcam_sanity": sanity_json,
    }
    return SectionResult(json=json, view=view)


def present(view: dict, findings: list[dict]) -> None:
    """The page-1 table rows of the report's findings, once their anchors are settled."""
    view["findings"] = table_rows(findings)
    view["total"] = len(findings)
    view["explained"] = sum(1 for f in findings if f.get("caused_by"))
