"""Digital: contrast, elastic_transform, pixelate, jpeg_compression (Hendrycks & Dietterich 2019, published
parameters; the elastic transform's are in pixels of a 224 image, scaled by k = min(H, W) / 224)."""

from __future__ import annotations

import io

import numpy as np
from scipy import ndimage

from reportgen.analyses.robustness.corruptions.base import register, scale


@register("digital", (0.4, 0.3, 0.2, 0.1, 0.05))
def contrast(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """(x - mean) c + mean, the mean per channel over the image."""
    c = contrast.parameters[severity - 1]
    means = x.mean(axis=(0, 1), keepdims=True)
    return np.clip((x - means) * c + means, 0, 1)


@register(
    "digital",
    (
        (244 * 2, 244 * 0.7, 244 * 0.1),
        (244 * 2, 244 * 0.08, 244 * 0.2),
        (244 * 0.05, 244 * 0.01, 244 * 0.02),
        (244 * 0.07, 244 * 0.01, 244 * 0.02),
        (244 * 0.12, 244 * 0.01, 244 * 0.02),
    ),
)
def elastic_transform(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """A random affine (three points moved by U(-affine, affine)), then a displacement field of U(-1, 1) noise
    smoothed by a Gaussian (sigma) and scaled by (alpha); bilinear, reflected borders. (alpha, sigma,
    affine)."""
    alpha, sigma, affine = elastic_transform.parameters[severity - 1]
    k = scale(x)
    # The displacement is ~ alpha / sigma pixels: alpha scaled by k^2 and sigma by k move each pixel by the
    # same share of the image at any size (at 224 pixels, k = 1: the published values).
    alpha, sigma, affine = alpha * k * k, sigma * k, affine * k
    h, w = x.shape[:2]
    center = np.float32((h, w)) // 2
    square = min(h, w) // 3
    pts1 = np.float32([center + square, [center[0] + square, center[1] - square], center - square])
    pts2 = pts1 + rng.uniform(-affine, affine, size=pts1.shape).astype(np.float32)
    # cv2.getAffineTransform(pts1, pts2) maps (col, row) points; cv2.warpAffine samples the source at M^-1.
    src = np.hstack([pts1, np.ones((3, 1), np.float32)]).astype(np.float64)
    M = np.linalg.solve(src, pts2.astype(np.float64)).T  # 2 x 3: [x', y'] = M [x, y, 1]
    A, t = M[:, :2], M[:, 2]
    inv = np.linalg.inv(A)
    # (row, col) = P (row', col') + o, with P the inverse in (col, row) order flipped to (row, col)
    swap = np.array([[0, 1], [1, 0]])
    P = swap @ inv @ swap
    o = swap @ (-inv @ t)
    warped = np.stack(
        [
            ndimage.affine_transform(x[..., c], P, offset=o, order=1, mode="mirror")
            for c in range(x.shape[-1])
        ],
        axis=-1,
    )
    dx = ndimage.gaussian_filter(rng.uniform(-1, 1, size=(h, w)), sigma, mode="reflect", truncate=3) * alpha
    dy = ndimage.gaussian_filter(rng.uniform(-1, 1, size=(h, w)), sigma, mode="reflect", truncate=3) * alpha
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    out = np.stack(
        [
            ndimage.map_coordinates(warped[..., c], (rows + dy, cols + dx), order=1, mode="reflect")
            for c in range(x.shape[-1])
        ],
        axis=-1,
    )
    return np.clip(out, 0, 1)


def _pil(x: np.ndarray):
    from PIL import Image

    u8 = np.uint8(np.clip(x, 0, 1) * 255 + 0.5)
    return Image.fromarray(u8[..., 0], "L") if x.shape[-1] == 1 else Image.fromarray(u8, "RGB")


def _array(img, channels: int) -> np.ndarray:
    a = np.asarray(img, dtype=np.float64) / 255.0
    return a[..., None] if channels == 1 else a


@register("digital", (0.6, 0.5, 0.4, 0.3, 0.25))
def pixelate(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Box-resized to c of its size and back (PIL ``BOX``)."""
    from PIL import Image

    c = pixelate.parameters[severity - 1]
    h, w = x.shape[:2]
    img = _pil(x).resize((max(1, int(w * c)), max(1, int(h * c))), Image.BOX).resize((w, h), Image.BOX)
    return _array(img, x.shape[-1])


@register("digital", (25, 18, 15, 10, 7))
def jpeg_compression(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Saved as JPEG at quality c (PIL) and read back."""
    from PIL import Image

    c = jpeg_compression.parameters[severity - 1]
    buf = io.BytesIO()
    _pil(x).save(buf, "JPEG", quality=c)
    buf.seek(0)
    return _array(Image.open(buf).convert("L" if x.shape[-1] == 1 else "RGB"), x.shape[-1])
