"""The pipeline: validate every selected section, run them, render one report."""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterable

import reportgen
from reportgen import render
from reportgen import sections as registry
from reportgen.analyses.overview import generated_at
from reportgen.context import Context, LoadedModel, Options
from reportgen.errors import UserError


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
    return [name for name in registry.ORDER if name in chosen]


def run_sections(loaded: LoadedModel, options: Options, progress: Callable[..., Any] | None = None) -> Context:
    """Validate, then run, every selected section; results land in ``ctx.results``."""
    ctx = Context(loaded=loaded, options=options, progress=progress)
    names = selected_sections(options)
    modules = {name: registry.module(name) for name in names}
    for name, mod in modules.items():
        validate = getattr(mod, "validate", None)
        if validate is not None:
            validate(ctx)
    compute_order = [n for n in names if n != "findings"] + [n for n in names if n == "findings"]
    bar = progress(compute_order, desc="analyses") if progress else compute_order
    for name in bar:
        if progress is not None and hasattr(bar, "set_postfix_str"):
            bar.set_postfix_str(name)
        ctx.results[name] = modules[name].run(ctx)
    return ctx


def assemble(ctx: Context) -> tuple[dict, dict]:
    """report.json and the template variables from the section results."""
    names = [n for n in registry.ORDER if n in ctx.results]
    generated = generated_at()
    data: dict = {
        "reportgen_version": reportgen.__version__,
        "generated": generated,
        "sections": names,
        "settings": _settings(ctx.options),
    }
    for name in names:
        render.deep_merge(data, ctx.results[name].json)
    by_anchor = findings_by_anchor(data.get("findings", []))
    variables = page_variables(ctx.loaded.name, ctx.loaded.source, generated) | {
        "sections": [
            {"name": n, "title": registry.module(n).TITLE, "view": ctx.results[n].view} for n in names
        ],
        "findings_by_anchor": by_anchor,
    }
    return data, variables


def findings_by_anchor(findings: list[dict], spell_out: int = 2) -> dict[str, list[dict]]:
    """Findings to show beside each figure, one line per (severity, kind) when many.

    A feature-map grid can carry dozens of "unit N is silent" findings; beside
    the figure they read better as one line naming the filters.
    """
    groups: dict[str, dict[tuple, list[dict]]] = {}
    for f in findings:
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
    }


def _settings(options: Options) -> dict:
    keys = ("max_filters", "kernel_channel", "preprocess", "feature_channels", "gradcam_layer", "top_k",
            "pattern_filters", "pattern_size", "pattern_steps", "pattern_style", "seed")
    return {k: getattr(options, k) for k in keys}


def build_report(
    loaded: LoadedModel,
    options: Options,
    out_root: Path,
    formats: Iterable[str] = render.FORMATS,
) -> tuple[Path, dict]:
    """Run the analyses and write ``out_root/<model name>/report.*``; returns (folder, json)."""
    render.check_out_dir(Path(out_root))
    progress = progress_factory(options.quiet)
    ctx = run_sections(loaded, options, progress)
    data, variables = assemble(ctx)
    folder = render.write_report(Path(out_root), loaded.name, data, "report.html.j2", variables, formats, progress)
    return folder, data


__all__ = ["build_report", "run_sections", "assemble", "UserError"]
