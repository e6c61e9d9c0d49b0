"""Overview: model identity, parameter counts, shapes, versions."""

from __future__ import annotations

from reportgen.analyses.overview import describe_model, generated_at, versions
from reportgen.context import Context, SectionResult

TITLE = "Overview"


def run(ctx: Context) -> SectionResult:
    model = describe_model(ctx.loaded)
    vers = versions()
    return SectionResult(
        json={"model": model, "versions": vers},
        view={"model": model, "versions": vers, "generated": generated_at(), "options": ctx.options},
    )
