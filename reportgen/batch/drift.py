"""Weight drift between checkpoints: each kernel layer's relative L2 change against the first model
(``reportgen compare``'s measure), the index's drift block and its trend plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from reportgen.errors import UserError, one_line

ARCHITECTURES_DIFFER = "not a checkpoint of the first model's architecture"


def model_drift(reference: Any, model: Any, seed: int = 0) -> dict[str, dict]:
    """Per kernel layer, ``reportgen compare``'s drift of ``model`` from ``reference`` (two keras.Models):
    ``relative_l2_change`` = ||W - W_ref|| / ||W_ref|| (None for NaN/Inf), ``std_ratio`` and
    ``bias_relative_l2_change``. UserError when the architectures differ."""
    import numpy as np

    from reportgen.compare import check_same_architecture, drift

    try:
        matched = check_same_architecture(reference, model, "the first model", "this model")
    except UserError as exc:
        detail = str(exc).removeprefix("compare: ").split("; compare two versions")[0]
        raise UserError(f"{ARCHITECTURES_DIFFER}: {detail}") from None
    rng = np.random.default_rng(seed)
    keep = ("relative_l2_change", "std_ratio", "bias_relative_l2_change")
    out = {}
    for path, la, lb in matched:
        d = drift(la, lb, rng)
        out[path] = {k: d[k] for k in keep}
    return out


def drift_table(
    names: Sequence[str], per_model: Sequence[tuple[dict | None, str | None] | None]
) -> tuple[dict | None, str | None]:
    """The drift block of index.json from each model's (drift, error) (None: the model failed).

    Drift is shown only when every model that ran is a checkpoint of the first
    model's architecture; otherwise the note says why not.
    """
    if len(names) < 2:
        return None, None
    if per_model[0] is None:
        return (
            None,
            f"No weight drift: the first model, {names[0]}, which the others are compared with, failed.",
        )
    ran = [(n, p) for n, p in zip(names, per_model) if p is not None]
    if len(ran) < 2:
        return None, "No weight drift: fewer than two models ran."
    for name, (d, error) in ran:
        if d is None:
            return None, f"No weight drift: {name}: {error or 'not computed'}"
    layers = list(ran[0][1][0])
    table: dict = {
        "reference": names[0],
        "metric": "relative L2 change ||W_k - W_0|| / ||W_0|| of each kernel layer against the first model",
        "models": [n for n, _ in ran],
        "layers": layers,
    }
    for key in ("relative_l2_change", "std_ratio", "bias_relative_l2_change"):
        table[key] = {p: [d[p][key] for _, (d, _) in ran] for p in layers}
    return table, None


def drift_from_checkpoints(
    names: Sequence[str],
    checkpoints: Sequence[Path | None],
    seed: int = 0,
    unsafe: bool = False,
    input_shape: tuple[int, ...] | None = None,
) -> tuple[dict | None, str | None]:
    """The drift block from model files, loaded one at a time beside the first (Keras safe mode on
    unless ``unsafe``)."""
    if len(names) < 2:
        return None, None
    missing = [n for n, c in zip(names, checkpoints) if c is None]
    if missing:
        shown = ", ".join(missing[:3]) + (" ..." if len(missing) > 3 else "")
        return None, (
            f"No weight drift: no model file for {shown} (ReportCallback(save_model=True) saves "
            "one beside each report; reports of model files find their source by its SHA-256)."
        )
    from reportgen.loading import load

    try:
        reference = load(str(checkpoints[0]), unsafe=unsafe, input_shape=input_shape)
    except UserError as exc:
        return None, f"No weight drift: {names[0]}: {exc}"
    per_model: list = []
    for i, path in enumerate(checkpoints):
        try:
            model = reference if i == 0 else load(str(path), unsafe=unsafe, input_shape=input_shape)
            per_model.append((model_drift(reference.model, model.model, seed), None))
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            per_model.append((None, one_line(exc, typed=True)))
        model = None
    return drift_table(list(names), per_model)


def drift_figure(drift: dict) -> str:
    """The drift trend: one line per layer (up to 12 layers), else a heatmap layer x checkpoint."""
    import matplotlib.pyplot as plt
    import numpy as np

    from reportgen.plots import fig_to_uri

    names, layers = drift["models"], drift["layers"]
    values = np.array(
        [[np.nan if v is None else float(v) for v in drift["relative_l2_change"][p]] for p in layers],
        dtype=np.float64,
    ).reshape(len(layers), len(names))
    x = np.arange(len(names))
    step = max(1, -(-len(names) // 20))  # at most 20 checkpoint labels
    if len(layers) <= 12:
        fig, ax = plt.subplots(figsize=(6.8, 3.4))
        for path, row in zip(layers, values):
            ax.plot(x, row, marker="o", markersize=3, linewidth=1.2, label=path)
        ax.set_ylabel("relative L2 change vs. the first", fontsize=8)
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=6.5, ncol=2 if len(layers) > 6 else 1, frameon=False, loc="best")
        ax.grid(alpha=0.3)
    else:
        fig, ax = plt.subplots(figsize=(6.8, min(9.0, 1.2 + 0.16 * len(layers))))
        im = ax.imshow(values, aspect="auto", cmap="viridis", interpolation="nearest")
        ystep = max(1, -(-len(layers) // 50))
        ax.set_yticks(np.arange(0, len(layers), ystep))
        ax.set_yticklabels([layers[i][-32:] for i in range(0, len(layers), ystep)], fontsize=5.5)
        cb = fig.colorbar(im, ax=ax, fraction=0.04)
        cb.set_label("relative L2 change vs. the first", fontsize=7)
        cb.ax.tick_params(labelsize=6.5)
    ax.set_xticks(x[::step])
    ax.set_xticklabels(
        [names[i][-24:] for i in range(0, len(names), step)], rotation=45, ha="right", fontsize=6.5
    )
    ax.tick_params(axis="y", labelsize=7)
    ax.set_title(f"Weight drift of each kernel layer against {names[0][-40:]}", fontsize=9)
    fig.tight_layout()
    return fig_to_uri(fig, dpi=110)
