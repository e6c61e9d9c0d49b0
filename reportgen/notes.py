"""What a report rests on, said on page 1: the notes of report.json and the page's opening lines.

A page never claims more than it knows. Where an input, a preprocessing or a
choice (which output is explained) was a default or a guess rather than the
user's word or a measurement, the report says so once, on page 1, and names
the flag that changes it. Each note is ``{kind, message}``; the kinds are a
public interface (docs/reference.md, docs/report.schema.json):

- ``stand_in_image``: the image sections show a photo reportgen picked, not
  the model's data;
- ``preprocess_guessed``: nothing said how pixels were scaled, so the report
  guessed;
- ``preprocess_from_model``: the preprocessing is the model's own keras-hub
  image converter, read from the model (not the user's word, not a guess:
  said so that a reader knows where the numbers came from);
- ``input_size``: the model takes any image size; the size the report fed
  and where it came from (the keras-hub converter's ``image_size``, or
  reportgen's default);
- ``output_chosen``: the model has several outputs and the report picked one;
- ``keras_warning``: Keras warned while the report ran, with a warning
  reportgen does not know to be harmless (:mod:`reportgen.warned`).

The model's ``weights_state`` is measured here too: the same per-layer test as
the ``untrained_layer`` finding says whether the weights are trained, fresh or
partly fresh, so a model whose code loaded trained weights is not called
"freshly built".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reportgen.context import Context

NOTE_KINDS = (
    "stand_in_image",
    "preprocess_guessed",
    "preprocess_from_model",
    "input_size",
    "output_chosen",
    "keras_warning",
)
PREPROCESS_FLAGS = "--preprocess unit|tf|caffe|torch|none, scale=S,offset=O or mean=R,G,B,std=R,G,B"


def _computed(ctx: Context, name: str) -> bool:
    """Whether the report computed ``name``: notes read the results, and never start an analysis."""
    return ctx.analyses.ran(name)


def weights_state(ctx: Context) -> dict | None:
    """The measured state of the model's weights, when this report computed the weight facts."""
    weights, t = ctx.get("weights"), ctx.get("thresholds")
    if weights is None or t is None:
        return None  # not computed, or failed: the weights section reports its own failure
    from reportgen.analyses.findings.weights import weights_state as measure

    try:
        return measure(weights, t)
    except Exception:  # noqa: BLE001  (a model whose facts cannot be judged: the state is not said)
        return None


def weights_text(loaded: Any, state: dict | None) -> str | None:
    """The words for the title when code set the weights (no ``--weights``): what was measured."""
    if loaded.weights != "code":
        return None
    if state is None or state["state"] == "unknown":
        return "weights as the code set them (not measured: run the weights section)"
    return {
        "trained": "trained weights, loaded by the code",
        "fresh": "freshly initialised weights (the code loaded none)",
        "partly fresh": f"partly trained weights: {state['layers_fresh']} of {state['layers_judged']} layers "
        "look freshly initialised",
    }[state["state"]]


def _stand_in(ctx: Context) -> list[dict]:
    images = ctx.get("images") or []
    if not any(getattr(im, "stand_in", False) for im in images):
        return []
    return [
        {
            "kind": "stand_in_image",
            "message": "The image sections show a stand-in photo "
            "(Grace Hopper, from Matplotlib's sample data), "
            "not this model's data; pass --image or --images.",
        }
    ]


def _preprocess(ctx: Context) -> list[dict]:
    if not _computed(ctx, "preprocessor"):
        return []
    pre = ctx.analyses.preprocessor
    if pre.source == "model" and pre.converter:
        text = pre.describe().split(":")[0]
        return [
            {
                "kind": "preprocess_from_model",
                "message": "The preprocessing is the model's own: its "
                f"keras-hub {pre.converter}, saved with it, "
                f"turns pixels into model input as {text}, and the report scales images the same way. "
                f"To override it, pass --preprocess.",
            }
        ]
    if not pre.guessed:
        return []
    why = f" {pre.why[0].upper()}{pre.why[1:]}." if pre.why else ""
    measure = "" if ctx.options.image_dirs else " With labelled --images folders reportgen measures it."
    return [
        {
            "kind": "preprocess_guessed",
            "message": f"The preprocessing was guessed: {pre.describe().split(':')[0]}, the tutorials' "
            f"convention; nothing in the model says how its training images were scaled.{why} "
            f"If it was trained on another range, pass {PREPROCESS_FLAGS}.{measure}",
        }
    ]


def _output(ctx: Context) -> list[dict]:
    if ctx.options.output is not None or not _computed(ctx, "head"):
        return []
    from reportgen import graph

    outputs = graph.anatomy(ctx.model).outputs
    if len(outputs) < 2:
        return []
    head = ctx.analyses.head
    kinds = {
        "softmax": "a softmax classifier",
        "sigmoid": "sigmoid class scores",
        "pixel-softmax": "a per-pixel classifier",
        "map": "a map",
        "none": "raw (linear) outputs",
    }
    others = ", ".join(f"'{o.name}' {list(o.shape)}" for i, o in enumerate(outputs) if i != head.output)
    return [
        {
            "kind": "output_chosen",
            "message": f"The model has {len(outputs)} outputs; this report explains '{head.output_name}' "
            f"({kinds.get(head.kind, head.kind)}), chosen because class scores come before linear "
            f"outputs. The others: {others}. Pick one with --output NAME.",
        }
    ]


def _size(ctx: Context) -> list[dict]:
    images = ctx.get("images") or []
    if not images:
        return []
    from reportgen.images import image_input_spec

    spec = image_input_spec(ctx.model)
    if spec is None or spec.size_from == "model":
        return []
    return [
        {
            "kind": "input_size",
            "message": f"The model takes images of any size; the report feeds {spec.describe_size()}.",
        }
    ]


def _warnings(ctx: Context) -> list[dict]:
    said = list(getattr(ctx, "keras_warnings", None) or [])
    return [
        {
            "kind": "keras_warning",
            "message": "Keras warned while the report ran (reportgen "
            "does not know this warning, so it cannot "
            f"say whether it matters): {text}",
        }
        for text in said
    ]


def page_notes(ctx: Context) -> list[dict]:
    """The notes of report.json's ``notes``, in page order."""
    return _stand_in(ctx) + _preprocess(ctx) + _size(ctx) + _output(ctx) + _warnings(ctx)
