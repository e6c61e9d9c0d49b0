"""Input images for the feature-map and Grad-CAM sections: load, fit, preprocess.

Everything an image goes through before it reaches the model happens here and
in :mod:`reportgen.preprocessing`, so the report can state it exactly:

1. **Load** (:func:`load_pixels`): PNG, JPEG, BMP, GIF (first frame) and ``.npy``
   arrays. The result is always 8-bit pixels, grey (H x W x 1) or RGB (H x W x 3):

   - 16-bit images are scaled to 8 bits (``value / 257``, so 65535 -> 255);
   - an alpha channel (RGBA, grey + alpha, palette transparency) is composited
     over white -- transparent areas are white, as a viewer shows them;
   - palette, CMYK and other modes are converted to RGB;
   - ``.npy`` arrays (H x W, H x W x 1/3/4, or a batch of one) are taken as
     pixels: ``uint8`` as they are, ``uint16`` scaled like a 16-bit PNG, floats in
     0..1 multiplied by 255, floats in 0..255 as they are; anything else is refused.

2. **Fit** (:func:`fit_to_input`) to the model's input height x width **keeping
   the aspect ratio**: the image is scaled (bicubic, antialiased) until it
   covers the target, then the centre is cropped -- as torchvision's
   ``Resize`` + ``CenterCrop``, and unlike ``load_img(target_size=...)``, which
   squashes the picture. Grey images are repeated to RGB for RGB models; RGB
   images are converted to grey (ITU-R 601 luma) for one-channel models. A model
   whose input size is not fixed (``None``) gets 224 x 224.

3. **Preprocess** with :class:`reportgen.preprocessing.Preprocessor`
   (``--preprocess``); the value range that reached the model is recorded.

Each step is recorded in :attr:`PreparedImage.steps` and shown in the report.
Bad input raises :class:`UserError` naming the file and the fix.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from reportgen.errors import UserError
from reportgen.preprocessing import Preprocessor

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".npy")
DEFAULT_SIZE = 224  # for models whose input height/width is not fixed
MIN_SIDE = 8  # smaller images carry no spatial information worth a feature map
MAX_SAMPLES = 4  # demo samples: one per class, up to this many
IMAGENET_CLASSES = Path(__file__).parent / "data" / "imagenet_classes.txt"
SAMPLE_PHOTO = "grace_hopper.jpg"


@dataclass
class PreparedImage:
    """One image as shown in the report and as fed to the model."""

    path: str  # file path, or a description for built-in samples
    label: str | None  # the true label when known (demo samples), else None
    pixels: np.ndarray  # uint8 H x W x C (C = model channels) after fit: what the report shows
    input: np.ndarray  # float32 H x W x C: one example of model input, after preprocessing
    preprocess: str  # description of the preprocessing mode
    value_range: tuple[float, float]  # min, max of ``input``
    mode: str = "unit"  # the preprocessing mode applied
    steps: list[str] = field(default_factory=list)  # conversions applied, in order
    original_size: tuple[int, int] | None = None  # width, height as loaded
    source: str = "option"  # where the preprocessing came from: option, model, measured or default
    stand_in: bool = False  # a photo reportgen picked because no image was given: not this model's data
    option: str = ""  # the preprocessing as a --preprocess value

    @property
    def guessed(self) -> bool:
        return self.source == "default"

    @property
    def name(self) -> str:
        """Short name for captions: the file's name, or the sample description."""
        return os.path.basename(self.path) if os.path.sep in self.path else self.path

    def describe(self) -> dict:
        """The ``preprocess`` entry of report.json for this image."""
        return {
            "mode": self.mode,
            "description": self.preprocess,
            "source": self.source,
            "option": self.option or self.mode,
            "steps": list(self.steps),
            "value_range": [float(self.value_range[0]), float(self.value_range[1])],
        }


# --- model input ---------------------------------------------------------------------

@dataclass(frozen=True)
class InputSpec:
    """What an image model expects: height, width, channels (channels last)."""

    height: int
    width: int
    channels: int


def image_input_spec(model: Any) -> InputSpec | None:
    """The model's image input, or None when no input is an image (1-D features, say).

    A model with one image input beside other inputs (image plus metadata)
    has an image input too; the other inputs are fed by :mod:`reportgen.inputs`.
    """
    from reportgen import graph

    spec = graph.image_input(model)
    if spec is None:
        return None
    _, h, w, c = spec.shape
    return InputSpec(int(h or DEFAULT_SIZE), int(w or DEFAULT_SIZE), int(c))


def require_image_input(model: Any, what: str) -> InputSpec:
    from reportgen import graph

    spec = image_input_spec(model)
    if spec is None:
        shapes = ", ".join(str(tuple(t.shape)) for t in graph.anatomy(model).inputs)
        raise UserError(
            f"{what}: the model's input {shapes or '(unknown)'} is not an image "
            "(expected an input of height x width x 1 or 3 channels); "
            f"drop {what} for this model"
        )
    return spec


# --- loading -------------------------------------------------------------------------

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
        return _float_pixels(arr, path, steps)[..., None] if arr.ndim == 2 else _float_pixels(arr, path, steps)
    if depth == 16:
        steps.append("16-bit to 8-bit per channel")
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        mode == "P" and "transparency" in img.info
    ) or (mode in ("L", "RGB") and "transparency" in img.info)
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
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise UserError(f"image '{path}': not a readable .npy array ({exc}); save it with numpy.save") from None
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


def load_pixels(path: str | os.PathLike, steps: list[str] | None = None) -> np.ndarray:
    """Read an image file as uint8 pixels H x W x 1 (grey) or H x W x 3 (RGB).

    Conversions applied on the way are appended to ``steps``.
    """
    from PIL import Image, UnidentifiedImageError

    steps = steps if steps is not None else []
    p = Path(path)
    if not p.exists():
        raise UserError(f"image '{p}' does not exist; check the --image path")
    if p.is_dir():
        raise UserError(f"image '{p}' is a folder; pass an image file to --image")
    if p.suffix.lower() == ".npy":
        pixels = _load_npy(p, steps)
    else:
        from PIL import ImageFile

        # WeasyPrint sets Pillow's process-wide LOAD_TRUNCATED_IMAGES; a
        # truncated input must fail here, not be padded with grey.
        lenient, ImageFile.LOAD_TRUNCATED_IMAGES = ImageFile.LOAD_TRUNCATED_IMAGES, False
        try:
            with Image.open(p) as img:
                img.load()
                pixels = _from_pil(img, p, steps)
        except UserError:
            raise
        except (UnidentifiedImageError, Image.DecompressionBombError) as exc:
            why = "is too large" if isinstance(exc, Image.DecompressionBombError) else "is not an image reportgen can read"
            raise UserError(f"image '{p}' {why}; use a PNG, JPEG, BMP, GIF or .npy file") from None
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


def check_size(pixels: np.ndarray, spec: InputSpec, name: str) -> None:
    h, w = pixels.shape[:2]
    need = min(MIN_SIDE, spec.height, spec.width)
    if h < need or w < need:
        raise UserError(
            f"image '{name}' is {w}x{h} pixels, too small to show what the model sees; "
            f"use an image at least {need}x{need} pixels (the model takes {spec.width}x{spec.height})"
        )


def fit_to_input(pixels: np.ndarray, spec: InputSpec, steps: list[str] | None = None) -> np.ndarray:
    """Scale to cover ``spec`` keeping the aspect ratio, centre-crop, match channels.

    Returns uint8 H x W x C with (H, W, C) = the model's input.
    """
    from PIL import Image

    steps = steps if steps is not None else []
    arr = np.asarray(pixels, dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[..., None]
    channels = arr.shape[-1]
    if spec.channels == 1 and channels == 3:
        arr = np.asarray(Image.fromarray(arr).convert("L"))[..., None]
        steps.append("RGB to grey (ITU-R 601 luma)")
    elif spec.channels == 3 and channels == 1:
        arr = np.repeat(arr, 3, axis=-1)
        steps.append("grey to RGB (channel repeated)")
    h, w = arr.shape[:2]
    th, tw = spec.height, spec.width
    if (h, w) != (th, tw):
        scale = max(th / h, tw / w)
        nh, nw = max(th, round(h * scale)), max(tw, round(w * scale))
        img = Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr)
        img = img.resize((nw, nh), Image.Resampling.BICUBIC)
        top, left = (nh - th) // 2, (nw - tw) // 2
        img = img.crop((left, top, left + tw, top + th))
        out = np.asarray(img, dtype=np.uint8)
        arr = out[..., None] if out.ndim == 2 else out
        if (nh, nw) == (th, tw):
            steps.append(f"resized {w}x{h} to {tw}x{th}")
        else:
            steps.append(f"resized {w}x{h} to {nw}x{nh} (aspect ratio kept), centre-cropped to {tw}x{th}")
    return np.ascontiguousarray(arr)


def prepare(
    pixels: np.ndarray,
    spec: InputSpec,
    preprocessor: Preprocessor,
    path: str,
    label: str | None = None,
    steps: Sequence[str] = (),
) -> PreparedImage:
    """Fit loaded pixels to the model and preprocess them."""
    steps = list(steps)
    check_size(pixels, spec, path)
    original = (int(pixels.shape[1]), int(pixels.shape[0]))
    fitted = fit_to_input(pixels, spec, steps)
    x = preprocessor.forward(fitted.astype(np.float32)).astype(np.float32)
    return PreparedImage(
        path=path,
        label=label,
        pixels=fitted,
        input=x,
        preprocess=preprocessor.describe(),
        value_range=(float(x.min()), float(x.max())),
        mode=preprocessor.mode,
        steps=steps,
        original_size=original,
        source=preprocessor.source,
        option=preprocessor.option_text(),
    )


def load_image(path: str, spec: InputSpec, preprocessor: Preprocessor) -> PreparedImage:
    steps: list[str] = []
    pixels = load_pixels(path, steps)
    return prepare(pixels, spec, preprocessor, str(path), None, steps)


def sample_photo_path() -> str:
    """Matplotlib's bundled photo of Grace Hopper: a real RGB photo, no network."""
    from matplotlib import cbook

    return str(cbook.get_sample_data(SAMPLE_PHOTO, asfileobj=False))


def _pick_samples(samples: Sequence) -> list:
    """One held-out sample per class, up to :data:`MAX_SAMPLES`, in the given order (unlabelled ones: all)."""
    if all(label is None for _p, label in samples):
        return list(samples)
    chosen, seen = [], set()
    for pixels, label in samples:
        key = str(label)
        if key in seen:
            continue
        seen.add(key)
        chosen.append((pixels, label))
        if len(chosen) == MAX_SAMPLES:
            break
    return chosen


def prepare_inputs(ctx: Any) -> list[PreparedImage]:
    """The images the report analyses, fitted and preprocessed (cached as ``ctx.images``).

    ``--image`` files if given; else the loaded model's held-out samples (demo);
    else Matplotlib's Grace Hopper photo for image models. Returns ``[]`` for a
    model whose input is not an image and no ``--image`` was given.
    """
    options, loaded = ctx.options, ctx.loaded
    paths = list(getattr(options, "images", ()) or ())
    spec = image_input_spec(loaded.model)
    if spec is None:
        if paths:
            require_image_input(loaded.model, "--image")
        return []
    preprocessor = ctx.preprocessor
    if paths:
        return [load_image(p, spec, preprocessor) for p in paths]
    folder = getattr(ctx, "folder", None)
    if folder is not None:
        return folder_sample(folder, spec, preprocessor, options.sample)
    samples = _pick_samples(getattr(loaded, "sample_images", None) or [])
    if samples:
        return [
            prepare(np.asarray(px), spec, preprocessor,
                    f"held-out sample {i + 1}" if label is not None else f"image {i + 1} (array)",
                    None if label is None else str(label))
            for i, (px, label) in enumerate(samples)
        ]
    photo = load_image(sample_photo_path(), spec, preprocessor)
    photo.stand_in = True
    return [photo]


def folder_sample(folder: Any, spec: InputSpec, preprocessor: Preprocessor, n: int) -> list[PreparedImage]:
    """The images of ``--images`` folders shown in the report: ``n`` of them, one per class in turn."""
    from reportgen.folders import sample_indices

    names = folder.class_names
    shown = []
    for i in sample_indices(folder, n * 2):
        if len(shown) == n:
            break
        try:
            image = load_image(folder.files[i], spec, preprocessor)
        except UserError:
            continue  # unreadable: the data-set pass counts and names it
        label = folder.labels[i]
        image.label = None if label is None else (names[label] if names and label < len(names) else str(label))
        shown.append(image)
    return shown


# --- class names ---------------------------------------------------------------------

def load_class_names(path: str | os.PathLike) -> list[str]:
    """Class names from a file: a JSON list, or one name per line (blank lines ignored).

    A Keras ``imagenet_class_index.json`` (``{"0": ["n01440764", "tench"], ...}``)
    is accepted too.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise UserError(f"--class-names: '{p}' does not exist; pass a text file with one class name per line") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"--class-names: '{p}' cannot be read ({exc}); pass a UTF-8 text or JSON file") from None
    stripped = text.strip()
    if stripped.startswith("[") or stripped.startswith("{"):
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise UserError(f"--class-names: '{p}' is not valid JSON ({exc.msg}, line {exc.lineno}); "
                            "write a JSON list of names or one name per line") from None
        if isinstance(data, dict):
            try:
                items = sorted(((int(k), v) for k, v in data.items()), key=lambda kv: kv[0])
            except ValueError:
                raise UserError(f"--class-names: '{p}' is a JSON object with non-integer keys; "
                                "write a JSON list of names") from None
            if [k for k, _ in items] != list(range(len(items))):
                raise UserError(f"--class-names: '{p}' does not number its classes 0..{len(items) - 1}; "
                                "write a JSON list of names")
            data = [v[-1] if isinstance(v, list) and v else v for _, v in items]
        if not isinstance(data, list) or not all(isinstance(n, (str, int, float)) for n in data):
            raise UserError(f"--class-names: '{p}' must hold a JSON list of names")
        names = [str(n) for n in data]
    else:
        names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names:
        raise UserError(f"--class-names: '{p}' holds no names; write one class name per line")
    return names


def imagenet_class_names() -> list[str]:
    """The 1000 ImageNet class names in Keras' ``imagenet_class_index.json`` order (shipped)."""
    return [line.strip() for line in IMAGENET_CLASSES.read_text(encoding="utf-8").splitlines() if line.strip()]


def output_units(model: Any, output: str | None = None) -> int | None:
    """Classes of the chosen output: a vector's length, or a per-pixel classifier's channels."""
    from reportgen.analyses.cam import classifier_head

    head = classifier_head(model, output)
    return head.classes if head.kind != "map" else None  # one sigmoid unit scores two classes


def class_names(ctx: Any) -> list[str] | None:
    """Names for the model's outputs: --class-names, the model's own, ImageNet's, or None.

    ImageNet names are used for keras.applications models and any model with
    exactly 1000 outputs. With None, labels read ``class 7``.
    """
    units = output_units(ctx.model, ctx.options.output)
    if ctx.options.class_names:
        names = load_class_names(ctx.options.class_names)
        if units is not None and len(names) != units:
            raise UserError(
                f"--class-names: '{ctx.options.class_names}' has {len(names)} names but the model "
                f"has {units} outputs; give exactly one name per output"
            )
        return names
    if ctx.loaded.class_names:
        return list(ctx.loaded.class_names)
    folder = getattr(ctx, "folder", None)
    if folder is not None and folder.class_names and (units is None or len(folder.class_names) <= units):
        return list(folder.class_names)  # the class folders, in Keras' alphanumeric order
    if units == 1000:
        return imagenet_class_names()
    return None


def label_for(index: int, names: Sequence[str] | None) -> str:
    if names is not None and 0 <= index < len(names):
        return str(names[index])
    return f"class {index}"
