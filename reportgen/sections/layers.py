"""Layer table: types, output shapes, parameters, kernel and bias shapes, graph operations too.

A deep model (NASNetLarge: 1,040 layers) is first summed up by stage -- runs
of layers at one spatial size, with their parameters -- and its full table
is kept in the HTML (folded) and in report.json, not printed page after page.
"""

from __future__ import annotations

from reportgen import graph
from reportgen.analyses.layer_table import layer_rows
from reportgen.context import Context, SectionResult

TITLE = "Layers"
NEEDS = ()
FULL_TABLE_ROWS = 150  # more rows than this: a stage summary first, the full table folded


def stage_summary(rows: list[dict]) -> list[dict]:
    """Top-level layers grouped into stages (runs at one spatial size)."""
    from reportgen.analyses import layer_table

    return layer_table.stage_summary(rows)


def run(ctx: Context) -> SectionResult:
    rows = layer_rows(ctx.model)
    total = sum(r["params"] for r in rows if r["depth"] == 0)
    public = [
        {
            k: r[k]
            for k in (
                "name",
                "class_name",
                "output_shape",
                "params",
                "kernel_shape",
                "bias_shape",
                "activation",
            )
        }
        | {"depth": r["depth"], "trainable": r["trainable"], "operation": r["operation"]}
        for r in rows
    ]
    big = len(rows) > FULL_TABLE_ROWS
    an = graph.anatomy(ctx.model)
    return SectionResult(
        json={"layers": public},
        view={
            "rows": rows,
            "total": total,
            "big": big,
            "stages": stage_summary(rows) if big else None,
            "operations": sum(1 for r in rows if r["operation"]),
            "subclassed": an.subclassed,
        },
    )
