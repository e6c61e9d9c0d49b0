"""Overview: model identity, parameter counts, inputs and outputs, precision, versions."""

from __future__ import annotations

from reportgen.analyses.overview import describe_model, generated_at, versions
from reportgen.context import Context, SectionResult

TITLE = "Overview"


def run(ctx: Context) -> SectionResult:
    model = describe_model(ctx.loaded)
    vers = versions()
    feeds = None
    if len(model["inputs"]) > 1:
        feeds = ctx.feeds.describe()
    precision = None
    if ctx.float32_policies:
        precision = (f"The model computes in {', '.join(ctx.float32_policies)}; reportgen computed every "
                     "number, gradient and pattern in float32 (weights are stored in float32 either way).")
    json = {"model": model | {"computed_in": "float32", "policies_replaced": list(ctx.float32_policies)},
            "versions": vers}
    if feeds:
        json["model"]["inputs_fed"] = feeds
    return SectionResult(
        json=json,
        view={"model": model, "versions": vers, "generated": generated_at(), "options": ctx.options,
              "feeds": feeds, "precision": precision},
    )
