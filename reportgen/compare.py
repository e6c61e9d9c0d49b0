"""``reportgen compare A B``: which layers moved between two versions of one model.

Fine-tuning, a retraining run or a suspicious checkpoint: the reviewer wants to
know which layers changed and by how much. Per kernel layer (Conv, Dense):

- relative L2 change ``||W_b - W_a|| / ||W_a||`` (0: untouched; ~1.4 for two
  independent random draws of the same initialiser);
- the std ratio ``std(W_b) / std(W_a)`` (did the scale grow or shrink?);
- the bias' relative change, when there is a bias;
- a histogram of both on shared bins.

and a ranking of the layers that moved most. Two models of different
architecture (layer paths or kernel shapes differ) are refused: their weights
cannot be compared.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from reportgen import graph
from reportgen.analyses.weights import bias_values, kernel_values, shared_edges
from reportgen.errors import UserError
from reportgen.plots import fig_to_uri, pyplot

PANELS_PER_FIGURE = 12  # histogram panels per composite figure (4 columns x 3 rows)
HIST_SAMPLES = 2_000_000  # values per model for histograms of huge layers (VGG16's fc1: 103M)
BINS = 60


def _kernel_shapes(layer: Any) -> tuple:
    return tuple((name, tuple(v.shape)) for name, v in graph.kernel_variables(layer).items())


def check_same_architecture(model_a: Any, model_b: Any, name_a: str = "A", name_b: str = "B") -> list[tuple]:
    """Matched kernel layers [(path, layer_a, layer_b)]; UserError when the architectures differ."""
    refs_a, refs_b = graph.kernel_layers(model_a), graph.kernel_layers(model_b)
    paths_a, paths_b = [r.path for r in refs_a], [r.path for r in refs_b]
    fix = "compare two versions of one architecture (e.g. before and after fine-tuning)"
    if not refs_a:
        raise UserError(f"compare: '{name_a}' has no Conv or Dense layer with a kernel; {fix}")
    if paths_a != paths_b:
        only_a = [p for p in paths_a if p not in paths_b]
        only_b = [p for p in paths_b if p not in paths_a]
        if only_a or only_b:
            detail = "; ".join(
                x
                for x in (
                    f"only in {name_a}: {', '.join(only_a[:5])}{' ...' if len(only_a) > 5 else ''}"
                    if only_a
                    else "",
                    f"only in {name_b}: {', '.join(only_b[:5])}{' ...' if len(only_b) > 5 else ''}"
                    if only_b
                    else "",
                )
                if x
            )
        else:
            detail = "the same layers in a different order"
        raise UserError(f"compare: the models differ in architecture ({detail}); {fix}")
    for ra, rb in zip(refs_a, refs_b):
        sa, sb = _kernel_shapes(ra.layer), _kernel_shapes(rb.layer)
        if sa != sb:
            show = lambda s: ", ".join(f"{n} {tuple(shape)}" for n, shape in s)  # noqa: E731
            raise UserError(
                f"compare: layer '{ra.path}' has {show(sa)} in {name_a} but {show(sb)} in "
                f"{name_b}, so the architectures differ; {fix}"
            )
    return [(ra.path, ra.layer, rb.layer) for ra, rb in zip(refs_a, refs_b)]


def _relative_change(a: np.ndarray, b: np.ndarray) -> float | None:
    """||b - a|| / ||a|| over finite pairs; None when either holds NaN/Inf or a is zero."""
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        return None
    a, b = a.astype(np.float64), b.astype(np.float64)
    na = float(np.linalg.norm(a))
    diff = float(np.linalg.norm(b - a))
    if na == 0.0:
        return 0.0 if diff == 0.0 else None
    return diff / na


def _sample(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return values if values.size <= HIST_SAMPLES else rng.choice(values, HIST_SAMPLES, replace=False)


def drift(layer_a: Any, layer_b: Any, rng: np.random.Generator) -> dict:
    """The drift of one kernel layer from A to B."""
    wa, wb = kernel_values(layer_a), kernel_values(layer_b)
    fa, fb = wa[np.isfinite(wa)], wb[np.isfinite(wb)]
    std_a = float(fa.std(dtype=np.float64)) if fa.size else None
    std_b = float(fb.std(dtype=np.float64)) if fb.size else None
    ba, bb = bias_values(layer_a), bias_values(layer_b)
    sa, sb = _sample(fa, rng), _sample(fb, rng)
    edges = shared_edges(sa, sb, bins=BINS)
    return {
        "parameters": int(wa.size),
        "relative_l2_change": _relative_change(wa, wb),
        "std_a": std_a,
        "std_b": std_b,
        "std_ratio": (std_b / std_a) if std_a and std_b is not None else None,
        "mean_a": float(fa.mean(dtype=np.float64)) if fa.size else None,
        "mean_b": float(fb.mean(dtype=np.float64)) if fb.size else None,
        "changed_fraction": float(np.mean(wa != wb)) if wa.size else 0.0,
        "bias_relative_l2_change": _relative_change(ba, bb) if ba is not None and bb is not None else None,
        "nonfinite_a": int(wa.size - fa.size),
        "nonfinite_b": int(wb.size - fb.size),
        "histogram": {
            "edges": edges.tolist(),
            "a": np.histogram(sa, bins=edges)[0].astype(int).tolist(),
            "b": np.histogram(sb, bins=edges)[0].astype(int).tolist(),
            "sampled": bool(fa.size > HIST_SAMPLES or fb.size > HIST_SAMPLES),
        },
    }


def ranking(layers: dict[str, dict]) -> list[str]:
    """Layer paths, the most moved first (relative L2 change; NaN/Inf layers first of all)."""

    def key(item: tuple[str, dict]) -> tuple:
        v = item[1]["relative_l2_change"]
        return (0, 0.0) if v is None else (1, -v)

    return [p for p, _ in sorted(layers.items(), key=key)]


# --- figures ------------------------------------------------------------------------


def ranking_figure(layers: dict[str, dict], order: list[str], top: int = 30) -> str:
    """Horizontal bars: relative L2 change per layer, most moved on top."""
    shown = order[:top]
    values = [layers[p]["relative_l2_change"] for p in shown]
    heights = [np.nan if v is None else v for v in values]
    fig, ax = pyplot().subplots(figsize=(6.6, 0.8 + 0.24 * len(shown)))
    y = np.arange(len(shown))
    finite = [h for h in heights if np.isfinite(h)]
    ax.barh(y, np.nan_to_num(heights, nan=0.0), color="#1f5fa8", height=0.7)
    for yi, v in zip(y, values):
        label = "NaN/Inf" if v is None else f"{v:.3g}"
        ax.text(
            (0 if v is None else v),
            yi,
            " " + label,
            va="center",
            fontsize=6.5,
            color="#b3261e" if v is None else "#222",
        )
    ax.set_yticks(y)
    ax.set_yticklabels(shown, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("relative L2 change ||B − A|| / ||A||", fontsize=8)
    ax.tick_params(axis="x", labelsize=7)
    ax.set_xlim(0, (max(finite) if finite and max(finite) > 0 else 1.0) * 1.18)
    title = "Which layers moved most" + (f" (top {top} of {len(order)})" if len(order) > top else "")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig_to_uri(fig, dpi=100)


def overlay_figure(layers: dict[str, dict], paths: list[str], name_a: str, name_b: str) -> str:
    """Up to 12 small panels: the kernel values of A and B on shared bins."""
    cols = min(4, len(paths))
    rows = -(-len(paths) // cols)
    fig, axes = pyplot().subplots(rows, cols, figsize=(1.75 * cols + 0.3, 1.55 * rows + 0.4), squeeze=False)
    for ax in axes.ravel()[len(paths) :]:
        ax.set_axis_off()
    for ax, path in zip(axes.ravel(), paths):
        entry = layers[path]
        h = entry["histogram"]
        edges = np.asarray(h["edges"])
        ax.stairs(h["a"], edges, fill=True, alpha=0.45, color="#9aa5b1", label=name_a)
        ax.stairs(h["b"], edges, color="#1f5fa8", linewidth=1.0, label=name_b)
        change = entry["relative_l2_change"]
        ax.set_title(f"{path}\nΔ {('NaN/Inf' if change is None else f'{change:.3g}')}", fontsize=6.5)
        ax.tick_params(labelsize=5.5)
        ax.set_yticks([])
    handles, labels = axes.ravel()[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=2, fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.93 if rows > 1 else 0.85))
    return fig_to_uri(fig, dpi=110)


# --- the report ---------------------------------------------------------------------


def _who(loaded: Any) -> dict:
    return {"name": loaded.name, "source": loaded.source, "sha256": loaded.sha256}


def build(loaded_a: Any, loaded_b: Any, options: Any) -> tuple[dict, dict]:
    """(report.json data, template variables) for ``templates/compare.html.j2``."""
    name_a, name_b = loaded_a.name, loaded_b.name
    if name_a == name_b:
        name_a, name_b = f"A ({name_a})", f"B ({name_b})"
    matched = check_same_architecture(loaded_a.model, loaded_b.model, name_a, name_b)
    rng = np.random.default_rng(getattr(options, "seed", 0))
    progress = None
    if not getattr(options, "quiet", True):
        from reportgen.report import progress_factory

        progress = progress_factory(False)
    items = progress(matched, desc="weight drift", total=len(matched)) if progress else matched
    layers = {path: drift(la, lb, rng) for path, la, lb in items}
    order = ranking(layers)
    identical = all(
        v["relative_l2_change"] == 0.0 and (v["bias_relative_l2_change"] in (None, 0.0))
        for v in layers.values()
    )
    paths = list(layers)
    overlays = [
        {
            "id": f"compare-overlay-{i // PANELS_PER_FIGURE + 1}",
            "layers": paths[i : i + PANELS_PER_FIGURE],
            "figure": overlay_figure(layers, paths[i : i + PANELS_PER_FIGURE], "A", "B"),
        }
        for i in range(0, len(paths), PANELS_PER_FIGURE)
    ]
    data = {
        "compare": {
            "a": _who(loaded_a),
            "b": _who(loaded_b),
            "layers": layers,
            "ranking": order,
            "identical": identical,
        }
    }
    view = {
        "a": _who(loaded_a),
        "b": _who(loaded_b),
        "layers": layers,
        "ranking": order,
        "rows": [{"path": p, "rank": order.index(p) + 1, **layers[p]} for p in order],
        "identical": identical,
        "ranking_figure": ranking_figure(layers, order),
        "overlays": overlays,
        "total_parameters": sum(v["parameters"] for v in layers.values()),
    }
    return data, view
