"""Where a vision transformer attends: attention rollout, the last block's heads, heads that look nowhere.

keras-hub's ViT runs every block inside one encoder layer and never returns
attention scores, and Keras' ``MultiHeadAttention`` refuses
``return_attention_scores=True`` while flash attention is on. So the scores
are computed here from each attention layer's own query and key projections,
on the inputs it received in one forward pass of the report's images:
``softmax(Q K^T / sqrt(d))`` per head. The same scores, times the values and
through the output projection, must give the layer's own output; the largest
relative difference is kept (:attr:`Attention.check_error`), so the report
states how exactly the scores it shows are the ones the model used.

- **Attention rollout** (Abnar & Zuidema 2020): each block's heads averaged,
  the identity added for the residual stream, rows renormalised, the blocks
  multiplied from the first to the last; the class token's row over the
  patches is the map (the mean row where the model has no class token).
- **The last block's heads**: each head's attention from the class token (or
  the mean query) to the patches, on the patch grid.
- **Head statistics** on the given images: the normalised entropy of each
  head's attention rows (1 = uniform over every token) and the mass each
  token keeps on itself (1 = attends only to itself), for the findings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from reportgen import graph
from reportgen.graph import forward
from reportgen.graph.inputs import Feeds, model_inputs

PAPER = "Abnar & Zuidema 2020"


@dataclass
class HeadStats:
    """One head of one attention layer, averaged over the images and the query tokens."""

    layer: str
    head: int
    entropy: float  # normalised: 1 = uniform attention over every token
    self_mass: float  # the attention each token keeps on itself

    def to_json(self) -> dict:
        return {
            "layer": self.layer,
            "head": self.head,
            "entropy": round(self.entropy, 4),
            "self_mass": round(self.self_mass, 4),
        }


@dataclass
class Attention:
    """The attention of a transformer's blocks on the report's images (nothing for a model without any)."""

    layers: list[str] = field(default_factory=list)  # the attention layers, in call order
    grid: graph.TokenGrid | None = None
    rollout: np.ndarray | None = None  # (N, h, w), each map summing to 1 over the patches
    heads: np.ndarray | None = (
        None  # (N, H, h, w): the last block's heads, from the class token (or mean query)
    )
    check_error: float | None = None  # max |recomputed output - layer output| / max |layer output|
    stats: list[HeadStats] = field(default_factory=list)
    note: str | None = None  # why there is no rollout

    @property
    def last(self) -> str | None:
        return self.layers[-1] if self.layers else None

    def source(self) -> str | None:
        """Which row of the attention the maps read; None where no map is drawn (nothing is read)."""
        if self.rollout is None and self.heads is None:
            return None
        if self.grid is None or not self.grid.prefix:
            return "the mean over every token's row (the model has no class token)"
        return "the class token's row"


def attention_layers(model: Any) -> list[graph.LayerRef]:
    """The ``MultiHeadAttention`` layers that work on a token stream laid on a patch grid, in call order."""
    import keras

    blocks = graph.token_blocks(model)
    return [
        r
        for r in graph.walk(model)
        if isinstance(r.layer, keras.layers.MultiHeadAttention)
        and any(r.path.startswith(b.path + "/") for b in blocks)
    ]


def how_it_attends(layer: Any) -> str | None:
    """What is known of a custom attention layer's reach, from its own attributes; None when nothing is."""
    window = getattr(layer, "window_size", None)
    if window:
        w = window if isinstance(window, int) else "x".join(str(v) for v in window)
        return f"each token attends only within its {w} window"
    ratio = getattr(layer, "sr_ratio", None)
    if isinstance(ratio, int) and ratio > 1 and getattr(layer, "sr", None) is not None:
        return f"every token attends to keys and values reduced {ratio}x{ratio} by a strided conv"
    if ratio == 1:
        return "every token attends to every token"
    return None


def windows_of_blocks(found: Sequence[graph.LayerRef], blocks: Sequence[graph.LayerRef]) -> str | None:
    """What ``blocks`` say of the reach of the attention layers in ``found`` where the blocks, not the layers,
    hold the window (ViTDet's ``window_size``, 0 for a block that attends globally); None when they say
    nothing."""
    sizes = [
        getattr(b.layer, "window_size", None)
        for b in blocks
        if any(r.path.startswith(b.path + "/") for r in found)
    ]
    if not sizes or not all(isinstance(s, int) and not isinstance(s, bool) for s in sizes):
        return None
    ways = [
        f"within its {w}x{w} window in {sizes.count(w)} of the {len(sizes)} blocks"
        for w in sorted({s for s in sizes if s > 0})
    ]
    if sizes.count(0):
        ways.append(f"to every token in {sizes.count(0)} of the {len(sizes)} blocks")
    return "each token attends " + " and ".join(ways)


def not_recomputed_note(found: Sequence[graph.LayerRef], blocks: Sequence[graph.LayerRef] = ()) -> str:
    """Why no rollout is drawn for attention layers that are not Keras ``MultiHeadAttention``: true of each
    model (Swin's windows, MiT's spatial reduction, ViTDet's windowed and global blocks; of DINOv3's nothing
    more than that), no family's wording on another's."""
    kinds = sorted({r.class_name for r in found})
    ways = sorted({w for r in found if (w := how_it_attends(r.layer))})
    if not ways and (held := windows_of_blocks(found, blocks)):
        ways = [held]
    ratios = sorted(
        {int(r.layer.sr_ratio) for r in found if isinstance(getattr(r.layer, "sr_ratio", None), int)}
    )
    if ratios:
        ways = [
            f"spatial-reduction attention: each block's keys and values are its tokens reduced by a strided "
            f"conv, by {', '.join(f'{v}x{v}' for v in ratios)} across the stages (1x1: no reduction)"
        ]
    said = f" ({'; '.join(ways)})" if ways else ""
    return (
        f"The blocks' attention layers ({', '.join(kinds) or 'none found'}) are not Keras MultiHeadAttention "
        f"layers{said}; reportgen recomputes attention scores "
        "only from MultiHeadAttention's own query and key "
        "projections, so attention rollout and the heads are not shown."
    )


def _grid_of(model: Any, ref: graph.LayerRef) -> graph.TokenGrid | None:
    blocks = [b for b in graph.token_blocks(model) if ref.path.startswith(b.path + "/")]
    return blocks[0].grid if blocks else None


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def scores(layer: Any, query: Any, value: Any, key: Any) -> np.ndarray:
    """``softmax(Q K^T / sqrt(d))``: (N, heads, T, S), from the layer's own projections of its inputs."""
    from reportgen import backend

    q = backend.numpy(layer.query_dense(query)).astype(np.float64)  # (N, T, H, d)
    k = backend.numpy(layer.key_dense(key)).astype(np.float64)  # (N, S, H, d)
    logits = np.einsum("nthd,nshd->nhts", q, k) / np.sqrt(float(q.shape[-1]))
    return _softmax(logits)


def recomputed_output(layer: Any, probs: np.ndarray, value: Any) -> np.ndarray:
    """The layer's output from ``probs``: the values weighed by them, through the output projection."""
    from reportgen import backend

    v = backend.numpy(layer.value_dense(value)).astype(np.float64)  # (N, S, H, d)
    context = np.einsum("nhts,nshd->nthd", probs, v).astype(np.float32)
    return backend.numpy(layer.output_dense(backend.tensor(context))).astype(np.float64)


def rollout(per_layer: Sequence[np.ndarray], joint: np.ndarray | None = None) -> np.ndarray:
    """Abnar & Zuidema's rollout: (N, T, T), the product over blocks of ``(mean over heads + I)``, rows
    renormalised (continuing ``joint``, the product of the blocks before, when given)."""
    n, _h, t, _s = per_layer[0].shape
    if joint is None:
        joint = np.broadcast_to(np.eye(t), (n, t, t)).copy()
    for a in per_layer:
        mixed = a.mean(axis=1) + np.eye(t)
        mixed /= mixed.sum(axis=-1, keepdims=True)
        joint = mixed @ joint
    return joint


def _rows(a: np.ndarray, grid: graph.TokenGrid) -> np.ndarray:
    """Attention to the patches from the class token (the first token), else the mean over the queries: (...,
    h, w)."""
    rows = a[..., 0, :] if grid.prefix else a.mean(axis=-2)
    patches = rows[..., grid.prefix :]
    return patches.reshape(patches.shape[:-1] + (grid.height, grid.width))


def _stats(path: str, a: np.ndarray) -> list[HeadStats]:
    t = a.shape[-1]
    p = np.clip(a, 1e-12, 1.0)
    entropy = -(p * np.log(p)).sum(axis=-1) / np.log(t)  # (N, H, T)
    own = np.diagonal(a, axis1=-2, axis2=-1)  # (N, H, T)
    return [
        HeadStats(path, h, float(entropy[:, h].mean()), float(own[:, h].mean())) for h in range(a.shape[1])
    ]


def analyse(model: Any, x: np.ndarray, feeds: Feeds | None = None) -> Attention | None:
    """Every attention layer's scores on the batch ``x`` (one forward pass), the rollout, the last heads, the
    stats; None for a model that is not a transformer on a patch grid (a CNN, a CNN with attention gates)."""
    from reportgen import backend

    blocks = graph.token_blocks(model)
    if not blocks:
        return None
    refs = attention_layers(model)
    if not refs:
        found = [
            r
            for r in graph.walk(model)
            if "attention" in r.class_name.lower() and any(r.path.startswith(b.path + "/") for b in blocks)
        ]
        return Attention(grid=blocks[-1].grid, note=not_recomputed_note(found, blocks))
    grid = _grid_of(model, refs[-1])
    seen: dict[str, tuple] = {}

    def keep_inputs(
        layer: Any, call: Any, query: Any, value: Any = None, key: Any = None, *args: Any, **kwargs: Any
    ) -> Any:
        path = next(r.path for r in refs if r.layer is layer)
        value = kwargs.pop("value", value)
        key = kwargs.pop("key", key)
        seen[path] = (query, value, value if key is None else key, kwargs)
        return call(query, value, key, *args, **kwargs)

    taps = {r.path: forward.Tap(replace=keep_inputs) for r in refs}
    with backend.no_grad():
        trace = forward.run(model, model_inputs(feeds, backend.tensor(np.asarray(x, np.float32))), taps)
    out = Attention(layers=[r.path for r in refs], grid=grid)
    errors: list[float] = []
    joint, last, tokens = None, None, set()
    for ref in refs:  # one layer's scores held at a time: (N, heads, T, T) is large for long token sequences
        if ref.path not in seen:
            continue
        query, value, key, kwargs = seen[ref.path]
        if kwargs.get("attention_mask") is not None or kwargs.get("use_causal_mask"):
            out.note = f"'{ref.path}' is called with an attention mask: the scores shown ignore it."
        if tuple(getattr(ref.layer, "attention_axes", None) or (1,)) != (1,):
            out.note = f"'{ref.path}' attends over other axes than the token sequence; no rollout is drawn."
            return out
        a = scores(ref.layer, query, value, key)
        mine = recomputed_output(ref.layer, a, value)
        theirs = trace.captured[ref.path]
        theirs = backend.numpy(theirs[0] if isinstance(theirs, (tuple, list)) else theirs).astype(np.float64)
        errors.append(float(np.abs(mine - theirs).max() / max(float(np.abs(theirs).max()), 1e-12)))
        out.stats.extend(_stats(ref.path, a))
        tokens.add(a.shape[-1])
        if len(tokens) == 1:
            joint = rollout([a], joint)
        last = a
    if last is None:
        out.note = "No attention layer ran on these images."
        return out
    out.check_error = max(errors)
    if grid is not None and tokens == {grid.tokens}:
        out.rollout = _rows(joint, grid)
        out.heads = _rows(last, grid)
    else:
        out.note = "The attention layers' token counts differ from the patch grid's; no rollout is drawn."
    return out
