"""Overview: model identity, parameter counts, inputs and outputs, precision, versions."""

from __future__ import annotations

from reportgen.analyses.overview import describe_model, generated_at, versions
from reportgen.context import Context, SectionResult

TITLE = "Overview"
NEEDS = ()


def run(ctx: Context) -> SectionResult:
    model = describe_model(ctx.loaded)
    vers = versions()
    feeds = None
    if len(model["inputs"]) > 1:
        feeds = ctx.analyses.feeds.describe()
    from reportgen import graph

    dtypes = sorted(
        {
            str(getattr(layer, "compute_dtype", "float32"))
            for layer in graph.layer_tree(ctx.model).values()
            if getattr(layer, "weights", None)
        }
        or {"float32"}
    )
    precision = None
    if ctx.float32_policies:
        precision = (
            f"The model computes in {', '.join(ctx.float32_policies)}; reportgen computed every "
            "number, gradient and pattern in float32 (its weights are stored in float32)."
        )
    if dtypes != ["float32"]:
        precision = (
            f"Layers with 16-bit weights compute in {', '.join(d for d in dtypes if d != 'float32')}: "
            "their numbers are as precise as their weights."
        )
    json = {
        "model": model | {"computed_in": ", ".join(dtypes), "policies_replaced": list(ctx.float32_policies)},
        "versions": vers,
    }
    if feeds:
        json["model"]["inputs_fed"] = feeds
    return SectionResult(
        json=json,
        view={
            "model": model,
            "versions": vers,
            "generated": generated_at(),
            "options": ctx.options,
            "feeds": feeds,
            "precision": precision,
        },
    )
