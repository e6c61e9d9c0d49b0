"""``model_card.md``: Hugging Face's model-card headings, pre-filled from report.json.

Written beside a report that reviewed ``--images`` folders (the dataset
section). Everything here is read from report.json, so the card never says
more than the report measured; what no report can measure (who made the
model, what it is for, its training data) stays a headed blank marked
``[author: ...]`` for the author to fill in. The headings follow the Hugging
Face model card template (huggingface_hub's ``modelcard_template.md``).
"""

from __future__ import annotations

from typing import Any

BLANK = "[author: {what}]"


def _pct(v: Any) -> str:
    return "n/a" if v is None else f"{100.0 * float(v):.1f}%"


def _num(v: Any, digits: int = 3) -> str:
    return "n/a" if v is None else f"{float(v):.{digits}f}"


def _blank(what: str) -> str:
    return BLANK.format(what=what)


def _cell(text: Any) -> str:
    """A table cell: pipes and line breaks would end the cell or the row."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def render(data: dict, name: str) -> str:
    """The card's Markdown for report.json's ``data`` of the model ``name``."""
    ds = data.get("dataset") or {}
    model = data.get("model") or {}
    versions = data.get("versions") or {}
    findings = data.get("findings") or []
    out: list[str] = [
        f"# Model Card for {name}",
        "",
        f"<!-- Pre-filled by reportgen {data.get('reportgen_version', '')} on "
        f"{data.get('generated', '')} "
        "from report.json; every [author: ...] is for you to fill in. -->",
        "",
    ]

    out += [
        "## Model Details",
        "",
        "### Model Description",
        "",
        _blank("what the model does, in a paragraph"),
        "",
    ]
    out += [
        f"- **Developed by:** {_blank('who')}",
        "- **Model type:** "
        + (
            f"{model.get('kind', '')} Keras model, {model.get('total_params', 0):,} parameters "
            f"({model.get('trainable_params', 0):,} trainable), input {model.get('input_shape')}, output "
            f"{model.get('output_shape')}"
            if model
            else _blank("architecture (run the overview section to fill it)")
        ),
        f"- **License:** {_blank('license')}",
        f"- **Finetuned from model:** {model.get('architecture') or _blank('base model, if any')}",
        f"- **File:** `{model.get('source', '')}`, SHA-256 `{model.get('sha256', '')}`"
        if model
        else f"- **File:** {_blank('file and checksum (the overview section records them)')}",
        "",
    ]

    out += [
        "## Uses",
        "",
        "### Direct Use",
        "",
        _blank("intended use and users"),
        "",
        "### Out-of-Scope Use",
        "",
        _blank("uses it is not meant for"),
        "",
    ]

    out += ["## Bias, Risks, and Limitations", ""]
    weak = [g for g in (ds.get("segments") or []) if g.get("weak")]
    worst = sorted(
        ((n, c) for n, c in (ds.get("per_class") or {}).items() if c.get("recall") is not None),
        key=lambda t: t[1]["recall"],
    )[:3]
    measured = []
    if worst:
        measured.append(
            "Weakest classes by recall: "
            + ", ".join(
                f"{_cell(n)} ({_pct(c['recall'])} of {c.get('support', c.get('images'))})" for n, c in worst
            )
            + "."
        )
    if weak:
        measured.append(
            "Accuracy drops on: "
            + ", ".join(
                f"{g['property']} {g['lower']:.3g}-{g['upper']:.3g} "
                f"({_pct(g['accuracy'])}, {g['images']} images)"
                for g in weak
            )
            + "."
        )
    cal = ds.get("calibration")
    if cal:
        measured.append(
            f"Confidence: mean {_pct(cal['mean_confidence'])} against accuracy {_pct(cal['accuracy'])} "
            f"(ECE {_num(cal['ece'])})."
        )
    out += (
        ["Measured on the evaluation images:", ""] + [f"- {m}" for m in measured] + [""] if measured else []
    )
    out += [
        _blank("risks and limitations beyond these images"),
        "",
        "### Recommendations",
        "",
        _blank("what users should know"),
        "",
    ]

    out += ["## Evaluation", "", "### Testing Data, Factors & Metrics", "", "#### Testing Data", ""]
    if ds:
        out += [
            f"{ds.get('images', 0):,} images from {', '.join(f'`{f}`' for f in ds.get('folders', []))}, "
            f"{ds.get('labelled_images', 0):,} labelled by their class folder"
            + (f"; {len(ds.get('skipped') or [])} unreadable files skipped" if ds.get("skipped") else "")
            + ".",
            "",
            _blank("where these images come from, and whether the model saw any of them in training"),
            "",
        ]
    else:
        out += [_blank("evaluation data"), ""]
    out += [
        "#### Factors",
        "",
        "Image properties measured per image: brightness, contrast, sharpness (variance of "
        "the Laplacian), size and aspect, grey or colour"
        + (
            f" (the same for every image: {', '.join(ds['properties_uniform'])})"
            if ds.get("properties_uniform")
            else ""
        )
        + "; accuracy by their quartile bins is in report.json (`dataset.segments`).",
        "",
        _blank("other factors: subgroups, capture conditions"),
        "",
        "#### Metrics",
        "",
        "Accuracy, top-k accuracy, per-class precision, "
        "recall and F1 with their macro and weighted averages; "
        "expected calibration error (15 equal-width bins), "
        "Brier score, negative log-likelihood and the fitted "
        "temperature; label issues by confident learning; near-duplicates by perceptual hash and the model's "
        "embedding.",
        "",
        "### Results",
        "",
    ]
    if ds.get("accuracy") is not None:
        rows = [("accuracy", _pct(ds["accuracy"]))]
        rows += [(f"top-{k} accuracy", _pct(v)) for k, v in (ds.get("top_k_accuracy") or {}).items()]
        summ = ds.get("summary") or {}
        for avg in ("macro", "weighted"):
            if avg in summ:
                rows.append(
                    (
                        f"{avg} precision / recall / F1",
                        " / ".join(_pct(summ[avg][m]) for m in ("precision", "recall", "f1")),
                    )
                )
        if cal:
            rows += [
                ("expected calibration error", _num(cal["ece"])),
                ("Brier score", _num(cal["brier"])),
                ("negative log-likelihood", _num(cal["nll"])),
                (
                    "temperature (fitted on these images)",
                    f"{_num(cal['temperature'], 2)} (ECE after: {_num(cal['ece_after_temperature'])})",
                ),
            ]
        if ds.get("label_issues_count") is not None:
            rows.append(
                (
                    "label issues (confident learning)",
                    f"{ds['label_issues_count']} of {ds['labelled_images']}",
                )
            )
        rows.append(
            (
                "near-duplicate pairs",
                f"{ds.get('duplicates_count', 0)} "
                f"({ds.get('duplicates_across_folders', 0)} "
                f"across folders, {ds.get('duplicates_conflicting_labels', 0)} with "
                "different labels)",
            )
        )
        out += ["| metric | value |", "| --- | --- |"] + [f"| {a} | {b} |" for a, b in rows] + [""]
        per = ds.get("per_class") or {}
        if per:
            out += ["| class | images | precision | recall | F1 |", "| --- | ---: | ---: | ---: | ---: |"]
            out += [
                f"| {_cell(n)} | {c.get('support', c.get('images'))} | {_pct(c.get('precision'))} | "
                f"{_pct(c.get('recall', c.get('accuracy')))} | {_pct(c.get('f1'))} |"
                for n, c in per.items()
            ]
            out.append("")
    else:
        out += [
            "No accuracy: " + (ds.get("calibration_note") or "the report has no labelled images") + ".",
            "",
        ]
    out += ["#### Summary", "", _blank("what these results mean for the intended use"), ""]

    out += ["## Model Examination", ""]
    if findings:
        out += [f"reportgen's findings ({len(findings)}; report.json `findings`), one line per kind:", ""]
        by_kind: dict[str, list[dict]] = {}
        for f in findings:  # most severe first, as report.json orders them
            by_kind.setdefault(f["kind"], []).append(f)
        for kind, group in by_kind.items():
            f = group[0]
            more = f" (and {len(group) - 1} more of this kind)" if len(group) > 1 else ""
            out.append(
                f"- **{f['severity']}** `{kind}`"
                + (f" ({_cell(f['layer'])})" if f.get("layer") else "")
                + f": {_cell(f['message'])}{more}"
            )
        out.append("")
    else:
        out += [
            "No findings"
            + (
                " (the findings section ran)."
                if "findings" in data.get("sections", [])
                else ": the findings section did not run."
            ),
            "",
        ]
    if ds.get("cam_layer"):
        out += [
            f"Grad-CAM at `{ds['cam_layer']}`: the mean map per class and the most confident mistakes are in "
            "the report.",
            "",
        ]

    out += ["## Technical Specifications", "", "### Model Architecture and Objective", ""]
    if model:
        out += [
            f"{model.get('kind', '')} model `{model.get('keras_name', name)}`; inputs "
            + ", ".join(f"`{i.get('name')}` {i.get('shape')}" for i in model.get("inputs", []))
            + "; outputs "
            + ", ".join(f"`{o.get('name')}` {o.get('shape')}" for o in model.get("outputs", []))
            + ".",
            "",
        ]
    else:
        out += [_blank("architecture (the overview section records it)"), ""]
    out += [
        _blank("training objective"),
        "",
        "### Compute Infrastructure",
        "",
        _blank("hardware and training time"),
        "",
        "#### Software",
        "",
    ]
    if versions:
        out += [", ".join(f"{k} {v}" for k, v in versions.items()), ""]
    else:
        out += [_blank("software versions"), ""]
    out += [
        "## Model Card Authors",
        "",
        _blank("names"),
        "",
        "## Model Card Contact",
        "",
        _blank("contact"),
        "",
    ]
    return "\n".join(out)
