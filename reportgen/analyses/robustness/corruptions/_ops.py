"""Helpers the corruptions share, in NumPy and SciPy (no OpenCV, scikit-image or ImageMagick).

Each says which library call of the paper's source it stands for.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage


def gaussian(x: np.ndarray, sigma: float) -> np.ndarray:
    """``skimage.filters.gaussian(x, sigma, multichannel=True)``: each channel blurred, ``nearest`` borders,
    truncated at 4 sigma."""
    if sigma <= 0:
        return x.copy()
    sig = (sigma, sigma, 0) if x.ndim == 3 else sigma
    return ndimage.gaussian_filter(x, sig, mode="nearest", truncate=4.0)


def cv2_gaussian_kernel(size: int, sigma: float) -> np.ndarray:
    """``cv2.getGaussianKernel(size, sigma)`` (1-D, sums to 1)."""
    i = np.arange(size) - (size - 1) / 2.0
    k = np.exp(-(i**2) / (2.0 * sigma**2))
    return k / k.sum()


def correlate_reflect101(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """``cv2.filter2D(x, -1, kernel)`` per channel: correlation, borders ``BORDER_REFLECT_101`` (SciPy's
    mirror)."""
    return np.stack(
        [ndimage.correlate(x[..., c], kernel, mode="mirror") for c in range(x.shape[-1])], axis=-1
    )


def disk(radius: float, alias_blur: float) -> np.ndarray:
    """The paper's ``disk``: an aliased disk of ``radius`` normalised to 1, then ``cv2.GaussianBlur`` (3 x 3,
    or 5 x 5 for radius > 8) with ``alias_blur`` as sigma, borders reflect-101."""
    if radius <= 8:
        L = np.arange(-8, 8 + 1)
        ksize = 3
    else:
        r = int(math.ceil(radius))
        L = np.arange(-r, r + 1)
        ksize = 5
    X, Y = np.meshgrid(L, L)
    aliased = np.array((X**2 + Y**2) <= radius**2, dtype=np.float64)
    aliased /= aliased.sum()
    g = cv2_gaussian_kernel(ksize, alias_blur)
    out = ndimage.correlate1d(aliased, g, axis=0, mode="mirror")
    return ndimage.correlate1d(out, g, axis=1, mode="mirror")


def clipped_zoom(img: np.ndarray, zoom_factor: float) -> np.ndarray:
    """The paper's ``clipped_zoom`` for H x W images: crop the centre 1/zoom, zoom it back (bilinear,
    ``scipy.ndimage.zoom(order=1)``), trim the extra pixels equally on both sides."""
    h, w = img.shape[:2]
    ch, cw = int(np.ceil(h / zoom_factor)), int(np.ceil(w / zoom_factor))
    top, left = (h - ch) // 2, (w - cw) // 2
    crop = img[top : top + ch, left : left + cw]
    # Each channel zoomed in 2-D: the same numbers as zooming (z, z, 1) in 3-D (the channel axis maps to
    # itself, weight exactly 1), in half the time.
    out = np.stack(
        [ndimage.zoom(crop[..., c], (zoom_factor, zoom_factor), order=1) for c in range(crop.shape[-1])],
        axis=-1,
    )
    th, tw = (out.shape[0] - h) // 2, (out.shape[1] - w) // 2
    return out[th : th + h, tw : tw + w]


def _shift(image: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """Shift by (dx, dy) pixels, the uncovered border filled with the edge row/column (ImageMagick's edge)."""
    out = image
    if dx:
        out = np.roll(out, dx, axis=1)
        if dx > 0:
            out[:, :dx] = out[:, dx : dx + 1]
        else:
            out[:, dx:] = out[:, dx - 1 : dx]
    if dy:
        out = np.roll(out, dy, axis=0)
        if dy > 0:
            out[:dy] = out[dy : dy + 1]
        else:
            out[dy:] = out[dy - 1 : dy]
    return out


def motion_blur(x: np.ndarray, radius: float, sigma: float, angle: float) -> np.ndarray:
    """ImageMagick's ``MotionBlurImage(radius, sigma, angle)`` (the paper calls it through Wand), as the
    ``imagecorruptions`` package re-implements it in NumPy: a one-sided Gaussian kernel of width 2 radius + 1
    along ``angle`` degrees, each tap a copy shifted by a whole pixel."""
    width = int(radius) * 2 + 1
    k = np.exp(-(np.arange(width) ** 2) / (2.0 * sigma**2))
    k /= k.sum()
    point = (width * math.sin(math.radians(angle)), width * math.cos(math.radians(angle)))
    hypot = math.hypot(*point)
    out = np.zeros_like(x, dtype=np.float64)
    for i in range(width):
        dy = -math.ceil(i * point[0] / hypot - 0.5)
        dx = -math.ceil(i * point[1] / hypot - 0.5)
        if abs(dy) >= x.shape[0] or abs(dx) >= x.shape[1]:
            break
        out += k[i] * _shift(x.copy(), dx, dy)
    return out


def rgb2hsv(rgb: np.ndarray) -> np.ndarray:
    """``skimage.color.rgb2hsv``: H, S, V in [0, 1]."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    v = rgb.max(axis=-1)
    delta = v - rgb.min(axis=-1)
    s = np.where(v > 0, delta / np.where(v > 0, v, 1), 0.0)
    safe = np.where(delta > 0, delta, 1)
    h = np.where(v == r, (g - b) / safe, np.where(v == g, 2.0 + (b - r) / safe, 4.0 + (r - g) / safe))
    h = np.where(delta > 0, (h / 6.0) % 1.0, 0.0)
    return np.stack([h, s, v], axis=-1)


def hsv2rgb(hsv: np.ndarray) -> np.ndarray:
    """``skimage.color.hsv2rgb``."""
    h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    hi = np.floor(h * 6) % 6
    f = h * 6 - np.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    choices = [
        np.stack(c, axis=-1) for c in ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))
    ]
    out = np.zeros_like(hsv)
    for i, c in enumerate(choices):
        out = np.where((hi == i)[..., None], c, out)
    return out


def grey(x: np.ndarray) -> np.ndarray:
    """``cv2.cvtColor(x, COLOR_RGB2GRAY)`` (ITU-R 601 weights) as (H, W, 1); a grey image as it is."""
    if x.shape[-1] == 1:
        return x
    return (x[..., 0] * 0.299 + x[..., 1] * 0.587 + x[..., 2] * 0.114)[..., None]


def plasma_fractal(mapsize: int, wibbledecay: float, rng: np.random.Generator) -> np.ndarray:
    """The paper's diamond-square height map, side ``mapsize`` (a power of two), in [0, 1]."""
    assert mapsize & (mapsize - 1) == 0
    maparray = np.empty((mapsize, mapsize), dtype=np.float64)
    maparray[0, 0] = 0
    stepsize = mapsize
    wibble = 100.0

    def wibbledmean(array: np.ndarray) -> np.ndarray:
        return array / 4 + wibble * rng.uniform(-wibble, wibble, array.shape)

    while stepsize >= 2:
        corner = maparray[0:mapsize:stepsize, 0:mapsize:stepsize]
        square = corner + np.roll(corner, shift=-1, axis=0)
        square += np.roll(square, shift=-1, axis=1)
        maparray[stepsize // 2 : mapsize : stepsize, stepsize // 2 : mapsize : stepsize] = wibbledmean(square)
        dr = maparray[stepsize // 2 : mapsize : stepsize, stepsize // 2 : mapsize : stepsize]
        ul = maparray[0:mapsize:stepsize, 0:mapsize:stepsize]
        lt = dr + np.roll(dr, 1, axis=0) + ul + np.roll(ul, -1, axis=1)
        maparray[0:mapsize:stepsize, stepsize // 2 : mapsize : stepsize] = wibbledmean(lt)
        tt = dr + np.roll(dr, 1, axis=1) + ul + np.roll(ul, -1, axis=0)
        maparray[stepsize // 2 : mapsize : stepsize, 0:mapsize:stepsize] = wibbledmean(tt)
        stepsize //= 2
        wibble /= wibbledecay
    maparray -= maparray.min()
    return maparray / maparray.max()


def next_power_of_2(n: int) -> int:
    return 1 if n <= 1 else 2 ** (int(n) - 1).bit_length()
