"""Tokens as maps: a transformer's patch tokens laid back on the image's patch grid.

A vision transformer cuts the image into patches (a strided ``Conv2D``), turns
each into a token and prepends a few tokens of its own: one class token (ViT),
a class and a distillation token (DeiT), a class token and register tokens
(DINOv2), none (Swin, whose windows merge patches stage by stage). Every
section that shows "where" in the image -- feature maps, CAMs, patterns --
reads a ``(N, tokens, channels)`` output through :class:`TokenGrid`: drop the
prefix, reshape the rest to ``(N, height, width, channels)``. This is
pytorch-grad-cam's ``reshape_transform`` for ViT, made once for every section.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

MAX_PREFIX = 8  # class + distillation + register tokens seen in practice: 1 (ViT) .. 5 (DINOv2, 4 registers)


@dataclass(frozen=True)
class TokenGrid:
    """How a token sequence lies on the patch grid: ``prefix`` extra tokens, then ``height x width``
    patches."""

    prefix: int
    height: int
    width: int

    @property
    def tokens(self) -> int:
        return self.prefix + self.height * self.width

    def to_map(self, x: Any) -> Any:
        """``(N, tokens, C)`` -> ``(N, height, width, C)``: the patch tokens, prefix dropped
        (differentiable)."""
        from keras import ops

        patches = x[:, self.prefix :, :] if self.prefix else x
        return ops.reshape(patches, (-1, self.height, self.width, int(x.shape[-1])))

    def from_map(self, m: Any) -> Any:
        """``(N, height, width, C)`` -> ``(N, tokens, C)`` with zeros at the prefix: a perturbation of the
        patches only."""
        from keras import ops

        flat = ops.reshape(m, (-1, self.height * self.width, int(m.shape[-1])))
        if not self.prefix:
            return flat
        zeros = ops.zeros_like(flat[:, : self.prefix, :])
        return ops.concatenate([zeros, flat], axis=1)

    def map_shape(self, shape: Sequence) -> tuple:
        """The map's shape for a token output of ``shape`` (batch dimension kept)."""
        return (shape[0], self.height, self.width, shape[-1])

    def describe(self) -> str:
        extra = {0: "", 1: " after 1 class token"}.get(
            self.prefix, f" after {self.prefix} class/register tokens"
        )
        return f"{self.height}x{self.width} patch grid{extra}"

    def to_json(self) -> dict:
        return {"prefix_tokens": self.prefix, "height": self.height, "width": self.width}


def fit(tokens: int, grids: Sequence[tuple[int, int]]) -> TokenGrid | None:
    """The grid a sequence of ``tokens`` lies on, from the patch grids seen before it.

    Each base grid is tried at full size and halved up to five times (Swin
    merges 2x2 patches per stage); the first whose patch count leaves between
    0 and :data:`MAX_PREFIX` extra tokens wins.
    """
    for gh, gw in reversed(list(grids)):
        for k in range(6):
            if gh % (1 << k) or gw % (1 << k):
                break
            h, w = gh >> k, gw >> k
            prefix = tokens - h * w
            if 0 <= prefix <= MAX_PREFIX and h * w > 1:
                return TokenGrid(prefix, h, w)
    return None
