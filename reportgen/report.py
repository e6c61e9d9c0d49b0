"""The pipeline: validate every selected section, run each on its own, render one report.

A section that raises does not sink the report: the others still run, the
report is written, the failed section shows its error in one line (HTML, PDF
and report.json's ``section_errors``), the traceback goes to ``errors.log``
beside the report, and the command exits with status 3. Bad input is found
before any section runs (each section's ``validate``) and stays exit 2 with
nothing written.
"""

from __future__ import annotations

import sys
import time
import traceback
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterable

import reportgen
from reportgen import render
from reportgen import sections as registry
from reportgen.analyses.overview import generated_at
from reportgen.context import Context, LoadedModel, Options, SectionError, SectionResult
from reportgen.errors import BadInput, UserError, one_line

EXIT_SECTION_FAILED = 3


def progress_factory(quiet: bool) -> Callable[..., Any]:
    """tqdm on stderr, hidden by --quiet (and when stderr is not a terminal, tqdm still prints plainly)."""
    from tqdm.auto import tqdm

    return partial(tqdm, file=sys.stderr, disable=quiet, leave=False, dynamic_ncols=True)


def selected_sections(options: Options) -> list[str]:
    """The sections to run, in report order.

    ``findings`` is part of the default set; an explicit ``--sections`` list
    runs it only when named, or when ``--fail-on`` needs it to gate.
    """
    chosen = set(options.sections)
    if options.fail_on:
        chosen.add("findings")
    if not options.image_dirs and options.sections == registry.ORDER:
        chosen.discard("dataset")  # by default, only a report given --images has a data-set section
    return [name for name in registry.ORDER if name in chosen]


def run_sections(loaded: LoadedModel, options: Options, progress: Callable[..., Any] | None = None) -> Context:
    """Validate, then run, every selected section; results land in ``ctx.results``, failures in ``ctx.errors``."""
    from reportgen import backend, forward

    ctx = Context(loaded=loaded, options=options, progress=progress)
    names = selected_sections(options)
    modules = {name: registry.module(name) for name in names}
    with backend.precision(), forward.float32(loaded.model) as policies:
        ctx.float32_policies = policies
        validate_common(ctx)
        for name, mod in modules.items():
            validate = getattr(mod, "validate", None)
            if validate is not None:
                validate(ctx)
        compute_order = [n for n in names if n != "findings"] + [n for n in names if n == "findings"]
        bar = progress(compute_order, desc="analyses") if progress else compute_order
        for name in bar:
            if progress is not None and hasattr(bar, "set_postfix_str"):
                bar.set_postfix_str(name)
            started = time.perf_counter()
            try:
                ctx.results[name] = modules[name].run(ctx)
            except (BadInput, KeyboardInterrupt):
                raise
            except Exception as exc:  # one section's bug, limit or odd model must not sink the report
                ctx.errors.append(SectionError(name, type(exc).__name__, one_line(exc), traceback.format_exc()))
                ctx.results[name] = SectionResult(json={}, view={})
            finally:
                ctx.timings[name] = time.perf_counter() - started
    return ctx


def validate_common(ctx: Context) -> None:
    """Input every section may read, checked before any runs: ``--input`` files, ``--output``."""
    ctx.feeds  # noqa: B018  (an --input that names no input, or a file of the wrong shape: exit 2 now)
    if ctx.options.output is not None:
        from reportgen.analyses.cam import output_index

        output_index(ctx.model, ctx.options.output)


def assemble(ctx: Context) -> tuple[dict, dict]:
    """report.json and the template variables from the section results."""
    names = [n for n in registry.ORDER if n in ctx.results]
    generated = generated_at()
    failed = {e.section: e for e in ctx.errors}
    from reportgen import notes

    page_notes = notes.page_notes(ctx)
    state = notes.weights_state(ctx)
    data: dict = {
        "reportgen_version": reportgen.__version__,
        "generated": generated,
        "sections": names,
        "settings": _settings(ctx),
        "notes": page_notes,
        "section_errors": [e.to_json() for e in ctx.errors],
        "timings": {n: round(ctx.timings[n], 2) for n in names if n in ctx.timings},
    }
    for name in names:
        render.deep_merge(data, ctx.results[name].json)
    if state is not None and "model" in data:  # the overview's block: a report without it has no model block
        data["model"]["weights_state"] = state["state"]
        data["model"]["weights_state_detail"] = state
    if "findings" in data:
        available: set[str] = set()
        for res in ctx.results.values():
            available |= set(res.view.get("figure_ids", ()))
        data["findings"] = point_anchors(data["findings"], available)
        registry.module("findings").present(ctx.results["findings"].view, data["findings"])
    by_anchor = findings_by_anchor(data.get("findings", []))
    said = notes.weights_text(ctx.loaded, state)
    variables = page_variables(ctx.loaded.name, ctx.loaded.source + (f", {said}" if said else ""), generated) | {
        "notes": page_notes,
        "weights_state": state,
        "weights_said": said,
        "sections": [
            {"name": n, "title": registry.module(n).TITLE, "view": ctx.results[n].view,
             "error": failed[n].to_json() if n in failed else None}
            for n in names
        ],
        "section_errors": [e.to_json() for e in ctx.errors],
        "findings_by_anchor": by_anchor,
    }
    return data, variables


def point_anchors(findings: list[dict], available: set[str]) -> list[dict]:
    """Each finding's anchor: its kind's figure if this report has it, else the layer's weight
    histogram, else none (the section was not selected, or the layer's figure was not drawn)."""
    from reportgen.anchors import anchor_id

    out = []
    for f in findings:
        anchor = f.get("anchor")
        if anchor not in available:
            layer = f.get("layer") or (f.get("layers") or [None])[0]
            fallback = anchor_id("weights", layer) if layer else None
            anchor = fallback if fallback in available else None
        out.append({**f, "anchor": anchor})
    return out


def findings_by_anchor(findings: list[dict], spell_out: int = 2) -> dict[str, list[dict]]:
    """Findings to show beside each figure, one line per (severity, kind) when many.

    A feature-map grid can carry dozens of "unit N is silent" findings; beside
    the figure they read better as one line naming the filters. A finding
    rolled up over many layers is shown beside each of its layers' figures.
    """
    from reportgen.analyses.findings import KINDS

    groups: dict[str, dict[tuple, list[dict]]] = {}
    for f in findings:
        anchors = [f.get("anchor")]
        if f.get("items"):
            kind = KINDS.get(f["kind"])
            anchors = [kind.anchor(item["layer"]) if kind else None for item in f["items"]]
            for item, anchor in zip(f["items"], anchors):
                if anchor:
                    # Beside one layer's figure, that layer's line: the whole roll-up (dozens of layers) is on page 1.
                    label = kind.label if kind else f["kind"].replace("_", " ")
                    value = item.get("value")
                    shown = "" if value is None else f" (value {value:.3g})"
                    groups.setdefault(anchor, {}).setdefault((f["severity"], f["kind"]), []).append(
                        {**f, **item, "message": f"{label}{shown}: one of the {len(f['items'])} layers of this "
                                                 "finding, listed under Findings."})
            continue
        if f.get("anchor"):
            groups.setdefault(f["anchor"], {}).setdefault((f["severity"], f["kind"]), []).append(f)
    out: dict[str, list[dict]] = {}
    for anchor, kinds in groups.items():
        lines = []
        for (severity, kind), group in kinds.items():
            if len(group) <= spell_out:
                lines.extend(group)
                continue
            filters = [str(g["filter"]) for g in group if g.get("filter") is not None]
            listed = ", ".join(filters[:24]) + (", …" if len(filters) > 24 else "")
            what = f" (filters/units {listed})" if filters else ""
            lines.append({"severity": severity, "kind": kind,
                          "message": f"{len(group)} × {kind.replace('_', ' ')}{what}. For example: {group[0]['message']}"})
        out[anchor] = lines
    return out


def page_variables(title: str, source: str, generated: str | None = None) -> dict:
    """What every page template (base.html.j2) needs."""
    return {
        "reportgen_version": reportgen.__version__,
        "generated": generated or generated_at(),
        "model_name": title,
        "model_source": source,
        "findings_by_anchor": {},
        "section_errors": [],
    }


def _settings(ctx: Context) -> dict:
    """The options this report ran with; where a choice was resolved (the explained output, the
    preprocessing), the value used, with ``preprocess_source`` saying where it came from."""
    options = ctx.options
    keys = ("max_filters", "kernel_channel", "preprocess", "feature_channels", "gradcam_layer", "top_k",
            "pattern_filters", "pattern_size", "pattern_steps", "pattern_style", "seed", "output")
    out = {k: getattr(options, k) for k in keys}
    out["cam"] = list(options.cam)
    if "preprocessor" in vars(ctx):
        out["preprocess"] = ctx.preprocessor.option_text()
        out["preprocess_source"] = ctx.preprocessor.source
    if "head" in vars(ctx):
        out["output"] = ctx.head.output_name
    return out


def errors_log(ctx: Context) -> str | None:
    """The tracebacks of the failed sections, for ``errors.log``."""
    if not ctx.errors:
        return None
    parts = [f"reportgen {reportgen.__version__}: {len(ctx.errors)} section(s) failed for {ctx.loaded.source}\n"]
    for e in ctx.errors:
        parts.append(f"=== section '{e.section}': {e.error}: {e.message}\n{e.traceback}")
    return "\n".join(parts)


def build_report(
    loaded: LoadedModel,
    options: Options,
    out_root: Path,
    formats: Iterable[str] = render.FORMATS,
    name: str | None = None,
) -> tuple[Path, dict]:
    """Run the analyses and write ``out_root/<model name>/report.*``; returns (folder, json).

    ``json["section_errors"]`` lists the sections that failed (the CLI exits 3).
    """
    render.check_out_dir(Path(out_root))
    progress = progress_factory(options.quiet)
    ctx = run_sections(loaded, options, progress)
    data, variables = assemble(ctx)
    extra = {"errors.log": errors_log(ctx)} if ctx.errors else {}
    folder = render.write_report(Path(out_root), name or loaded.name, data, "report.html.j2", variables, formats,
                                 progress, extra_files=extra)
    return folder, data


__all__ = ["build_report", "run_sections", "assemble", "UserError", "EXIT_SECTION_FAILED"]
