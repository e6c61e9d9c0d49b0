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
from dataclasses import dataclass
import time
import traceback
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterable

from reportgen.names import VERSION
from reportgen import render
from reportgen import sections as registry
from reportgen.analyses.overview import generated_at
from reportgen.context import Context, LoadedModel, Options, SectionError, SectionResult
from reportgen.errors import BadInput, UserError, one_line

# The exit statuses, in one place (README, docs/reference.md): bad input (2) and internal errors (4) are
# raised before a report exists; a written report's status comes from :func:`exit_status`.
EXIT_OK, EXIT_FINDINGS, EXIT_BAD_INPUT, EXIT_SECTION_FAILED, EXIT_INTERNAL, EXIT_INTERRUPTED = (
    0,
    1,
    2,
    3,
    4,
    130,
)


def exit_status(data: dict, fail_on: str | None) -> int:
    """A written report's exit status: 3 when a section failed (it wins: a failed section may hide findings),
    1 when a finding at or above ``fail_on`` exists, else 0."""
    if data.get("section_errors"):
        return EXIT_SECTION_FAILED
    from reportgen.finding_kinds import exceeds

    if exceeds(data.get("findings") or [], fail_on):
        return EXIT_FINDINGS
    return EXIT_OK


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
        chosen.discard("robustness")  # ... and a robustness section
    return [name for name in registry.ORDER if name in chosen]


def section_needs(module: Any, options: Options) -> tuple[str, ...]:
    """What a section declares it needs (``NEEDS``: a tuple, or a function of the options)."""
    needs = getattr(module, "NEEDS", ())
    return tuple(needs(options) if callable(needs) else needs)


def run_sections(
    loaded: LoadedModel, options: Options, progress: Callable[..., Any] | None = None
) -> Context:
    """Validate every selected section, compute the analyses they need (one scheduler, dependency order),
    then let each describe its results; results land in ``ctx.results``, failures in ``ctx.errors``.

    No section reads another's results: each reads the typed analyses it
    declares, so sections run in report order. A failed analysis fails the
    sections that need it (a section's ``OPTIONAL`` needs only leave its
    checks out).
    """
    from reportgen import warned

    ctx = Context(loaded=loaded, options=options, progress=progress)
    with warned.caught() as kept:
        _run_sections(ctx, options)
    ctx.keras_warnings = kept.messages
    return ctx


def _run_sections(ctx: Context, options: Options) -> None:
    from reportgen import backend, scheduler
    from reportgen.graph import forward

    loaded = ctx.loaded
    names = selected_sections(options)
    modules = {name: registry.module(name) for name in names}
    needs = {name: section_needs(mod, options) for name, mod in modules.items()}
    wanted = ["feeds"] + [n for name in names for n in needs[name]]  # --input is checked in every report
    if "head" in scheduler.schedule(wanted):
        wanted.append("class_names")  # settings.class_names says which names label the outputs
    with backend.precision(), forward.float32(loaded.model) as policies:
        ctx.float32_policies = policies
        validate_common(ctx)
        # The analyses that read the user's files first (bad input: exit 2 before any expensive work), then
        # each section's own checks over them, then everything else.
        ctx.analyses = scheduler.compute(loaded, options, wanted, ctx.progress, only_early=True)
        for name, mod in modules.items():
            validate = getattr(mod, "validate", None)
            if validate is not None:
                validate(ctx)
        ctx.analyses = scheduler.compute(loaded, options, wanted, ctx.progress, given=ctx.analyses)
        failed = ctx.analyses.failed
        for name in names:
            optional = set(getattr(modules[name], "OPTIONAL", ()))
            broken = [n for n in needs[name] if n in failed and n not in optional]
            started = time.perf_counter()
            try:
                if broken:
                    why = failed[broken[0]]
                    ctx.errors.append(
                        SectionError(name, why.error, f"analysis '{broken[0]}': {why.message}", why.traceback)
                    )
                    ctx.results[name] = SectionResult(json={}, view={})
                    continue
                ctx.results[name] = modules[name].run(ctx)
            except (BadInput, KeyboardInterrupt):
                raise
            except Exception as exc:  # one section's bug, limit or odd model must not sink the report
                ctx.errors.append(
                    SectionError(name, type(exc).__name__, one_line(exc), traceback.format_exc())
                )
                ctx.results[name] = SectionResult(json={}, view={})
            finally:
                ctx.timings[name] = time.perf_counter() - started
    _attribute(ctx, names, needs)


def _attribute(ctx: Context, names: list[str], needs: dict[str, tuple[str, ...]]) -> None:
    """Each analysis' seconds counted in the first section that needs it (findings last: it reads the
    others)."""
    from reportgen.scheduler import schedule

    counted: set[str] = set()
    spent = ctx.analyses.timings
    for name in [n for n in names if n != "findings"] + [n for n in names if n == "findings"]:
        for analysis in schedule(needs[name]):
            if analysis not in counted:
                counted.add(analysis)
                ctx.timings[name] = ctx.timings.get(name, 0.0) + spent.get(analysis, 0.0)


def validate_common(ctx: Context) -> None:
    """Input every section may read, checked before any analysis runs: ``--output`` (the other files --
    ``--input``, ``--image``, ``--images``, ``--class-names`` -- are read by the early analyses)."""
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
        "reportgen_version": VERSION,
        "generated": generated,
        "sections": names,
        "settings": {},
        "notes": page_notes,
        "section_errors": [e.to_json() for e in ctx.errors],
        "timings": {n: round(ctx.timings[n], 2) for n in names if n in ctx.timings},
        "analysis_timings": {n: round(v, 2) for n, v in ctx.analyses.timings.items()},
    }
    for name in names:
        render.deep_merge(data, ctx.results[name].json)
    data["settings"] = _settings(ctx)
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
    from reportgen import graph

    variables = page_variables(
        ctx.loaded.name, ctx.loaded.source + (f", {said}" if said else ""), generated
    ) | {
        "model_kind": graph.model_kind(ctx.model),
        "notes": page_notes,
        "weights_state": state,
        "weights_said": said,
        "sections": [
            {
                "name": n,
                "title": registry.module(n).TITLE,
                "view": ctx.results[n].view,
                "error": failed[n].to_json() if n in failed else None,
            }
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
                    # Beside one layer's figure, that layer's line: the whole roll-up (dozens of layers) is on
                    # page 1.
                    label = kind.label if kind else f["kind"].replace("_", " ")
                    value = item.get("value")
                    shown = "" if value is None else f" (value {value:.3g})"
                    groups.setdefault(anchor, {}).setdefault((f["severity"], f["kind"]), []).append(
                        {
                            **f,
                            **item,
                            "message": f"{label}{shown}: one of the {len(f['items'])} layers of this "
                            "finding, listed under Findings.",
                        }
                    )
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
            lines.append(
                {
                    "severity": severity,
                    "kind": kind,
                    "message": f"{len(group)} × {kind.replace('_', ' ')}{what}. "
                    f"For example: {group[0]['message']}",
                }
            )
        out[anchor] = lines
    return out


def page_variables(title: str, source: str, generated: str | None = None) -> dict:
    """What every page template (base.html.j2) needs."""
    return {
        "reportgen_version": VERSION,
        "generated": generated or generated_at(),
        "model_name": title,
        "model_source": source,
        "model_kind": "model",
        "findings_by_anchor": {},
        "section_errors": [],
    }


def _per_layer(values: dict[str, Any], rule: str) -> Any:
    """One value where every layer used the same, else {layer: value}; ``rule`` when no layer used it."""
    values = {p: v for p, v in values.items() if v is not None}
    if not values:
        return rule
    distinct = {repr(v) for v in values.values()}
    return next(iter(values.values())) if len(distinct) == 1 else values


def _settings(ctx: Context) -> dict:
    """The options this report ran with, each as the value used: no null stands for "the default".

    A default that depends on the model is resolved by the analysis that uses it (the CAM layer, the
    pattern steps of each layer, the explained output); ``settings`` is written from those results, read
    forward from :class:`~reportgen.scheduler.Results`, or says why an option did not apply.
    """
    from reportgen.options import option_fields

    options = ctx.options
    found = ctx.analyses
    ran = set(ctx.results)

    def unused(section: str) -> str:
        return f"not used: the {section} section did not run"

    def result(name: str, section: str) -> Any:
        """The analysis' result when its section ran and it succeeded, else None."""
        return found.get(name) if section in ran else None

    out: dict[str, Any] = {}
    for f in option_fields():
        if f.metadata.get("record", True):
            value = getattr(options, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
    out["cam"] = list(options.cam)
    loaded = ctx.loaded
    out["weights"] = (
        loaded.weights
        if loaded.weights not in (None, "code")
        else "as the code set them"
        if loaded.weights == "code"
        else "as stored in the model file"
        if loaded.sha256
        else "as the model object holds them"
    )
    if options.input_shape is None:
        out["input_shape"] = "as the model declares it"
    if options.kernel_channel is None:
        grids = result("kernel_grids", "kernels")
        out["kernel_channel"] = (
            {p: g["channel"] for p, g in grids.grids.items()} if grids is not None else unused("kernels")
        )
    pre = found.get("preprocessor")
    if pre is not None:
        out["preprocess"] = pre.option_text()
        out["preprocess_source"] = pre.source
    else:
        out["preprocess_source"] = (
            "option" if options.preprocess != "auto" else "not used: no image reached the model"
        )
    head = found.get("head")
    out["output"] = (
        head.output_name if head is not None else (options.output or "not used: nothing was explained")
    )
    if options.gradcam_layer is None:
        cams = result("cams", "gradcam")
        out["gradcam_layer"] = (
            (cams.layer if cams is not None else None) or "none: the model has no layer to explain"
            if "gradcam" in ran
            else unused("gradcam")
        )
    if options.layers is None:
        maps = result("feature_maps", "features")
        out["layers"] = (
            [L.path for L in maps.layers]
            if maps is not None
            else []
            if "features" in ran
            else unused("features")
        )
    if options.faithfulness_steps is None:
        faith = result("faithfulness", "gradcam")
        out["faithfulness_steps"] = (
            (faith.steps or faith.note if faith is not None else None) or "not measured"
            if "gradcam" in ran
            else unused("gradcam")
        )
    if options.robustness_sample is None:
        r = result("robustness", "robustness")
        out["robustness_sample"] = (
            (r.sample if r is not None else None) or "not used: the model's output is not class scores"
            if "robustness" in ran
            else unused("robustness")
        )
    patterns = result("patterns", "patterns")
    layers = patterns.layers if patterns is not None else {}
    if options.pattern_filters is None:
        from reportgen.analyses.patterns.layers import filters_wanted

        out["pattern_filters"] = (
            patterns.filters
            if patterns is not None
            else filters_wanted(ctx.model, None)  # the analysis failed: the default it would have used
            if "patterns" in ran
            else unused("patterns")
        )
    if options.pattern_layers is None:
        out["pattern_layers"] = list(layers) if "patterns" in ran else unused("patterns")
    if options.pattern_size is None:
        out["pattern_size"] = _per_layer({p: lp.result.size for p, lp in layers.items()}, unused("patterns"))
    if options.pattern_steps is None:
        out["pattern_steps"] = _per_layer(
            {p: lp.result.steps for p, lp in layers.items()}, unused("patterns")
        )
    if options.class_names is None:
        names = found.get("class_names")
        out["class_names"] = (
            f"{len(names)} names: the model's, the class folders' or ImageNet's"
            if names
            else "none: outputs are labelled 'class N'"
        )
    if options.config is None:
        t = found.get("thresholds")
        out["config"] = (
            (t.source if t is not None else "defaults") if "findings" in ran else unused("findings")
        )
    if options.fail_on is None:
        out["fail_on"] = "off: the exit status does not depend on findings"
    return out


def errors_log(ctx: Context) -> str | None:
    """The tracebacks of the failed sections, for ``errors.log``."""
    if not ctx.errors:
        return None
    parts = [f"reportgen {VERSION}: {len(ctx.errors)} section(s) failed for {ctx.loaded.source}\n"]
    for e in ctx.errors:
        parts.append(f"=== section '{e.section}': {e.error}: {e.message}\n{e.traceback}")
    return "\n".join(parts)


@dataclass
class Built:
    """One computed report: the context (the analyses' results), report.json's dict and the page's
    variables."""

    ctx: Context
    data: dict
    variables: dict


def compute(loaded: LoadedModel, options: Options) -> Built:
    """Run the analyses and describe them: report.json's dict and the page's variables, nothing written.

    The one pipeline: the command line (:func:`build_report`) and the Python API
    (:class:`reportgen.api.Report`) both go through here and :func:`write`.
    """
    ctx = run_sections(loaded, options, progress_factory(options.quiet))
    data, variables = assemble(ctx)
    return Built(ctx, data, variables)


def write(built: Built, out_root: Path, formats: Iterable[str], name: str) -> Path:
    """Write ``out_root/<name>/report.*`` (and ``errors.log`` when a section failed) all at once."""
    render.check_out_dir(Path(out_root))
    extra = {"errors.log": errors_log(built.ctx)} if built.ctx.errors else {}
    if "dataset" in built.data:  # a reviewed data set: the model card, pre-filled from report.json
        from reportgen import model_card

        extra["model_card.md"] = model_card.render(built.data, name)
    return render.write_report(
        Path(out_root),
        name,
        built.data,
        "report.html.j2",
        built.variables,
        formats,
        progress_factory(built.ctx.options.quiet),
        extra_files=extra,
    )


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
    built = compute(loaded, options)
    return write(built, out_root, formats, name or loaded.name), built.data


__all__ = [
    "compute",
    "write",
    "build_report",
    "run_sections",
    "assemble",
    "exit_status",
    "UserError",
    "EXIT_SECTION_FAILED",
]
