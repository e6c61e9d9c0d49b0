"""Decoding image files to 8-bit pixels: PNG, JPEG, BMP, GIF (first frame) and ``.npy`` arrays.

The result is always grey (H x W x 1) or RGB (H x W x 3) ``uint8``: 16-bit
images scaled to 8 bits, transparency composited over white, palette and CMYK
converted to RGB, ``.npy`` floats in 0..1 multiplied by 255. Each conversion is
appended to the caller's ``steps``; bad input raises :class:`UserError`.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Any

import numpy as np

from reportgen import guard
from reportgen.errors import UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".npy")


def _png_bit_depth(path: Path) -> int | None:
    """Bit depth from a PNG header (Pillow reduces 16-bit RGB to 8 bits silently)."""
    try:
        with open(path, "rb") as f:
            head = f.read(26)
    except OSError:
        return None
    if len(head) >= 26 and head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
        return head[24]
    return None


def _from_pil(img: Any, path: Path, steps: list[str]) -> np.ndarray:
    from PIL import Image

    n_frames = getattr(img, "n_frames", 1)
    if n_frames > 1:
        img.seek(0)
        steps.append(f"first frame of {n_frames}")
    depth = _png_bit_depth(path)
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img).astype(np.float64)
        if mode == "I" and (depth is None or depth <= 8) and arr.max() <= 255:
            scaled = arr
        else:
            scaled = arr / 257.0
            steps.append("16-bit to 8-bit (value / 257)")
        return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)[..., None]
    if mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        return (
            _float_pixels(arr, path, steps)[..., None] if arr.ndim == 2 else _float_pixels(arr, path, steps)
        )
    if depth == 16:
        steps.append("16-bit to 8-bit per channel")
    has_alpha = (
        mode in ("RGBA", "LA", "PA", "RGBa", "La")
        or (mode == "P" and "transparency" in img.info)
        or (mode in ("L", "RGB") and "transparency" in img.info)
    )
    if has_alpha:
        rgba = img.convert("RGBA")
        alpha = np.asarray(rgba)[..., 3]
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        composed = Image.alpha_composite(background, rgba)
        if alpha.min() < 255:
            steps.append("transparency composited over white")
        else:
            steps.append("alpha channel dropped (fully opaque)")
        grey_source = mode in ("LA", "La", "L")
        img = composed.convert("L" if grey_source else "RGB")
    elif mode in ("L", "1"):
        img = img.convert("L")
    elif mode != "RGB":
        img = img.convert("RGB")
        if mode != "P":
            steps.append(f"{mode} to RGB")
    arr = np.asarray(img, dtype=np.uint8)
    return arr[..., None] if arr.ndim == 2 else arr


def _float_pixels(arr: np.ndarray, path: Path, steps: list[str]) -> np.ndarray:
    if not np.all(np.isfinite(arr)):
        raise UserError(f"image '{path}': the array holds NaN or infinite values; save finite pixel values")
    lo, hi = float(arr.min()), float(arr.max())
    if lo >= 0 and hi <= 1.0:
        steps.append("values 0..1 multiplied by 255")
        return np.clip(np.rint(arr * 255.0), 0, 255).astype(np.uint8)
    if lo >= 0 and hi <= 255.0:
        return np.clip(np.rint(arr), 0, 255).astype(np.uint8)
    raise UserError(
        f"image '{path}': array values span {lo:g}..{hi:g}; save pixels in 0..255 or 0..1 "
        "(reportgen applies --preprocess itself)"
    )


def _load_npy(path: Path, steps: list[str]) -> np.ndarray:
    from PIL import Image

    # The header alone first: a 228-byte file may declare 240 GB, which np.load would try to allocate.
    guard.npy_declared(
        path, "image", "use a smaller image (height x width x 1, 3 or 4)", pixels=Image.MAX_IMAGE_PIXELS
    )
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise UserError(
            f"image '{path}': not a readable .npy array ({exc}); save it with numpy.save"
        ) from None
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "uifb":
        raise UserError(f"image '{path}': the array is not numeric; save pixel values with numpy.save")
    if arr.ndim == 4 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[-1] not in (1, 3, 4):
        raise UserError(
            f"image '{path}': array shape {arr.shape} is not an image; "
            "save height x width, or height x width x 1, 3 or 4 channels"
        )
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * 255
    if arr.dtype == np.uint8:
        pixels = arr
    elif arr.dtype.kind in "ui":
        if arr.min() < 0:
            raise UserError(f"image '{path}': negative pixel values; save pixels in 0..255")
        if arr.max() <= 255:
            pixels = arr.astype(np.uint8)
        elif arr.max() <= 65535:
            steps.append("16-bit to 8-bit (value / 257)")
            pixels = np.clip(np.rint(arr / 257.0), 0, 255).astype(np.uint8)
        else:
            raise UserError(f"image '{path}': values above 65535; save 8- or 16-bit pixels")
    else:
        pixels = _float_pixels(arr.astype(np.float64), path, steps)
    if pixels.shape[-1] == 4:
        alpha = pixels[..., 3:4].astype(np.float64) / 255.0
        rgb = pixels[..., :3].astype(np.float64) * alpha + 255.0 * (1.0 - alpha)
        pixels = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
        steps.append("transparency composited over white")
    return pixels


def _check_pixels(img: Any, path: Path) -> None:
    """Refuse an image whose header declares more pixels than Pillow's ``MAX_IMAGE_PIXELS``
    (Pillow itself only warns below twice that, and decodes)."""
    from PIL import Image

    width, height = img.size
    cap = Image.MAX_IMAGE_PIXELS
    if cap and width * height > cap:
        raise guard.Refused(
            f"image '{path}' declares {width}x{height} pixels, over the {cap:,} reportgen "
            "decodes; use a smaller image",
            "over the size cap",
        )


def check_image(path: str | os.PathLike) -> None:
    """Everything about an ``--image`` file that can be known without decoding it, checked before any work:
    there, a regular readable file under the cap, and its header (a .npy's declared array, an image's
    declared pixels) within the caps. The pixels are decoded only where a section needs them."""
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    if not guard.present(p):
        raise UserError(f"image '{p}' does not exist; check the --image path")
    if os.path.isdir(p):
        raise UserError(f"image '{p}' is a folder; pass an image file to --image")
    guard.check_file(p, "image", "use a PNG, JPEG, BMP, GIF or .npy file", guard.IMAGE_FILE_CAP)
    if p.suffix.lower() == ".npy":
        guard.npy_declared(
            p, "image", "use a smaller image (height x width x 1, 3 or 4)", pixels=Image.MAX_IMAGE_PIXELS
        )
        return
    try:
        with Image.open(p) as img:
            _check_pixels(img, p)
    except guard.Refused:
        raise
    except Image.DecompressionBombError:
        raise guard.Refused(
            f"image '{p}' declares more pixels than reportgen decodes; use a smaller image",
            "over the size cap",
        ) from None
    except UnidentifiedImageError:
        raise UserError(
            f"image '{p}' is not an image reportgen can read (no PNG, JPEG, BMP or GIF header); use a "
            "PNG, JPEG, BMP, GIF or .npy file"
        ) from None
    except Exception:  # noqa: BLE001  (a damaged image body is told with its reason when it is decoded)
        return


def load_pixels(path: str | os.PathLike, steps: list[str] | None = None) -> np.ndarray:
    """Read an image file as uint8 pixels H x W x 1 (grey) or H x W x 3 (RGB).

    Conversions applied on the way are appended to ``steps``.
    """
    from PIL import Image, UnidentifiedImageError

    steps = steps if steps is not None else []
    p = Path(path)
    if not guard.present(p):
        raise UserError(f"image '{p}' does not exist; check the --image path")
    if os.path.isdir(p):
        raise UserError(f"image '{p}' is a folder; pass an image file to --image")
    # A FIFO would block, /dev/zero never end: refused (and, in a folder, skipped and counted) before reading.
    guard.check_file(p, "image", "use a PNG, JPEG, BMP, GIF or .npy file", guard.IMAGE_FILE_CAP)
    if p.suffix.lower() == ".npy":
        pixels = _load_npy(p, steps)
    else:
        from PIL import ImageFile

        # WeasyPrint sets Pillow's process-wide LOAD_TRUNCATED_IMAGES; a
        # truncated input must fail here, not be padded with grey.
        lenient, ImageFile.LOAD_TRUNCATED_IMAGES = ImageFile.LOAD_TRUNCATED_IMAGES, False
        try:
            with Image.open(p) as img:
                _check_pixels(img, p)  # by the header, before a pixel is decoded
                img.load()
                pixels = _from_pil(img, p, steps)
        except UserError:
            raise
        except Image.DecompressionBombError:
            raise guard.Refused(
                f"image '{p}' declares more pixels than reportgen decodes; use a smaller image",
                "over the size cap",
            ) from None
        except UnidentifiedImageError:
            raise UserError(
                f"image '{p}' is not an image reportgen can read; use a PNG, JPEG, BMP, GIF or .npy file"
            ) from None
        except (OSError, ValueError, SyntaxError, struct.error) as exc:
            raise UserError(
                f"image '{p}' cannot be read ({' '.join(str(exc).split()) or type(exc).__name__}); "
                "use an intact PNG, JPEG, BMP, GIF or .npy file"
            ) from None
        finally:
            ImageFile.LOAD_TRUNCATED_IMAGES = lenient
    h, w = pixels.shape[:2]
    if h == 0 or w == 0:
        raise UserError(f"image '{p}' is empty ({w}x{h} pixels); use a real image")
    return pixels
