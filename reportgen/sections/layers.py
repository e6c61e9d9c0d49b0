"""Layer table: types, output shapes, parameters, kernel and bias shapes."""

from __future__ import annotations

from reportgen.analyses.layer_table import layer_rows
from reportgen.context import Context, SectionResult

TITLE = "Layers"


def run(ctx: Context) -> SectionResult:
    rows = layer_rows(ctx.model)
    total = sum(r["params"] for r in rows if r["depth"] == 0)
    public = [
        {k: r[k] for k in ("name", "class_name", "output_shape", "params", "kernel_shape", "bias_shape", "activation")}
        | {"depth": r["depth"], "trainable": r["trainable"], "operation": r["operation"]}
        for r in rows
    ]
    return SectionResult(json={"layers": public}, view={"rows": rows, "total": total})
