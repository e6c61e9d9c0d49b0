"""Every option of a report, defined once: ``reportgen.Options``.

Each field carries its command-line flag, help, metavar, group, parser and
bounds as dataclass metadata. The command line (:mod:`reportgen.cli`) is
generated from these fields, ``Report(**kwargs)`` takes the same names, and a
value is checked by the same parser on either path, so a name can never be
valid on one and unknown on the other. Keras-free: ``--help`` and bad flags
answer without importing a backend.

A default that depends on the model (``--gradcam-layer``, ``--pattern-steps``,
``--preprocess auto``) is ``None`` or ``auto`` here; the report resolves it in
one place and ``settings`` in report.json records the value it used.
"""

from __future__ import annotations

import argparse
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, Callable, Sequence

from reportgen.names import CAM_METHODS, PATTERN_STYLES, PREPROCESS_MODES

SECTION_NAMES = (
    "findings",
    "overview",
    "dataset",
    "robustness",
    "layers",
    "weights",
    "kernels",
    "features",
    "gradcam",
    "patterns",
)
# The common corruptions reportgen implements, in the paper's order (Hendrycks & Dietterich 2019; frost left
# out: reportgen.analyses.robustness.corruptions says why). Here, Keras-free, for --corruptions.
CORRUPTIONS = (
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "defocus_blur",
    "glass_blur",
    "motion_blur",
    "zoom_blur",
    "snow",
    "fog",
    "brightness",
    "contrast",
    "elastic_transform",
    "pixelate",
    "jpeg_compression",
)
FORMATS = ("html", "pdf", "json")


# --- parsers: text -> value, each raising ValueError with the reason --------------------------------


def at_least(minimum: int) -> Callable[[str], int]:
    """A whole number no smaller than ``minimum``."""

    def parse(text: Any) -> int:
        if isinstance(text, bool):
            raise ValueError(f"'{text}' is not a whole number")
        try:
            value = int(text) if not isinstance(text, float) or float(text).is_integer() else None
        except (TypeError, ValueError):
            value = None
        if value is None:
            raise ValueError(f"'{text}' is not a whole number")
        if value < minimum:
            raise ValueError(f"'{text}' must be at least {minimum}")
        return value

    parse.__name__ = f"at_least_{minimum}"
    return parse


positive = at_least(1)
non_negative = at_least(0)


def comma_list(known: Sequence[str], what: str) -> Callable[[Any], tuple[str, ...]]:
    """A comma-separated list (or a sequence) of known names, duplicates dropped."""

    def parse(text: Any) -> tuple[str, ...]:
        items = text.split(",") if isinstance(text, str) else list(text)
        names = tuple(dict.fromkeys(str(n).strip() for n in items if str(n).strip()))
        unknown = [n for n in names if n not in known]
        if unknown or not names:
            raise ValueError(f"unknown {what} '{(unknown or [text])[0]}'; choose from {','.join(known)}")
        return names

    return parse


def preprocess(text: Any) -> str:
    from reportgen.names import parse_preprocess

    parse_preprocess(str(text))
    return str(text).strip()


def shape(text: Any) -> tuple[int, ...]:
    if isinstance(text, (list, tuple)):
        dims = tuple(int(d) for d in text)
    else:
        try:
            dims = tuple(int(p) for p in str(text).replace("x", ",").split(",") if p.strip())
        except ValueError:
            raise ValueError(f"'{text}' is not H,W,C (whole numbers, e.g. 224,224,3)") from None
    if not dims or any(d < 1 for d in dims):
        raise ValueError(f"'{text}' must be positive whole numbers, as H,W,C")
    return dims


def budgets(text: Any) -> tuple[float, ...]:
    """Comma-separated L-infinity budgets in pixel units (0-255), each above 0 and at most 255."""
    items = text.split(",") if isinstance(text, str) else list(text)
    values = []
    for item in items:
        if isinstance(item, str) and not item.strip():
            continue
        try:
            v = float(item)
        except (TypeError, ValueError):
            raise ValueError(f"'{item}' is not a number (budgets are pixel units, e.g. 1,2,4,8)") from None
        if not (0 < v <= 255):
            raise ValueError(f"'{item}' must be above 0 and at most 255 (pixel units)")
        values.append(v)
    if not values:
        raise ValueError(f"'{text}' holds no budget; give e.g. 1,2,4,8")
    return tuple(dict.fromkeys(sorted(values)))


def one_of(choices: Sequence[str]) -> Callable[[Any], str]:
    def parse(text: Any) -> str:
        if text not in choices:
            raise ValueError(f"'{text}' is not one of {', '.join(choices)}")
        return str(text)

    return parse


def _text(value: Any) -> str:
    return str(value)


# --- the definition ---------------------------------------------------------------------------------


def option(
    default: Any,
    help: str,
    *,
    flag: str | None = None,
    metavar: str | None = None,
    group: str = "report",
    parse: Callable[[Any], Any] | None = None,
    many: str | None = None,
    cli: bool = True,
    record: bool = True,
) -> Any:
    """A field of :class:`Options` with what the command line and ``settings`` need to know of it.

    ``many``: ``"append"`` (repeat the flag), ``"extend"`` (several values after it) or None.
    ``record``: whether report.json's ``settings`` lists it (what changes the report's content).
    """
    meta = {
        "help": help,
        "flag": flag,
        "metavar": metavar,
        "group": group,
        "parse": parse,
        "many": many,
        "cli": cli,
        "record": record,
    }
    if isinstance(default, (list, dict, set)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class Options:
    """Everything a user can choose for a report: the command line's flags and ``Report()``'s keywords."""

    # what to write
    sections: tuple[str, ...] = option(
        SECTION_NAMES,
        "comma-separated sections (default: all): " + ",".join(SECTION_NAMES),
        metavar="LIST",
        parse=comma_list(SECTION_NAMES, "section"),
    )
    formats: tuple[str, ...] = option(
        FORMATS,
        "html, pdf or json; repeat for several (default: all three)",
        flag="--format",
        metavar="FMT",
        group="output",
        parse=one_of(FORMATS),
        many="append",
        record=False,
    )
    out: str = option(
        "reports", "output folder (default: reports)", metavar="DIR", group="output", record=False
    )
    quiet: bool = option(False, "hide the progress bars", group="output", record=False)
    # the model
    weights: str = option(
        "imagenet",
        "weights for an architecture given by name (default: imagenet, downloaded and "
        "cached by Keras), or a .weights.h5 file for a module:callable",
        metavar="imagenet|none|PATH",
        group="model",
    )
    unsafe: bool = option(
        False, "turn Keras safe mode off to load a TRUSTED file whose Lambda layers carry code", group="model"
    )
    input_shape: tuple[int, ...] | None = option(
        None,
        "build a model that was saved or returned unbuilt with this input shape",
        metavar="H,W,C",
        group="model",
        parse=shape,
    )
    # several models
    jobs: int | None = option(
        None,
        "reports built at once: N worker processes (default 1: one after the other, in "
        "this process); with --executor ray, at most N tasks at once (a local Ray instance gets "
        "N CPUs). With one model: the robustness section's images over N workers",
        metavar="N",
        group="several models",
        parse=positive,
        record=False,
    )
    executor: str = option(
        "process",
        "process: this machine (default); ray: one Ray task per model (pip install 'reportgen[ray]')",
        metavar="process|ray",
        group="several models",
        parse=one_of(("process", "ray")),
        record=False,
    )
    ray_address: str | None = option(
        None,
        "the Ray cluster to use with --executor ray (default: $RAY_ADDRESS, else a "
        "local Ray instance for this run); its nodes need reportgen installed and must "
        "see the model files and --out under the same paths",
        metavar="ADDR",
        group="several models",
        record=False,
    )
    # kernel grids
    max_filters: int = option(
        64, "filters shown per layer (default 64)", metavar="N", group="kernel grids", parse=positive
    )
    kernel_channel: int | None = option(
        None,
        "input channel shown in the kernel grids (default: each layer's "
        "channel with the largest kernel norm)",
        metavar="C",
        group="kernel grids",
        parse=non_negative,
    )
    # images, feature maps and CAMs
    images: tuple[str, ...] = option(
        (),
        "input image (PNG, JPEG, BMP, GIF, .npy); repeatable",
        flag="--image",
        metavar="PATH",
        group="images, feature maps, Grad-CAM",
        many="append",
    )
    image_dirs: tuple[str, ...] = option(
        (),
        "a folder of images, read recursively, class sub-folders as labels; "
        "repeatable. Statistics cover every image, the other sections show --sample "
        "of them",
        flag="--images",
        metavar="DIR",
        group="images, feature maps, Grad-CAM",
        many="append",
    )
    sample: int = option(
        8,
        "images of the --images folders shown in the image sections (default 8)",
        metavar="N",
        group="images, feature maps, Grad-CAM",
        parse=positive,
    )
    preprocess: str = option(
        "auto",
        f"input preprocessing: {', '.join(PREPROCESS_MODES)}, scale=S,offset=O (pixels "
        "x S + O) or mean=R,G,B,std=R,G,B (on 0-255 pixels). Default auto: the architecture's "
        "own; raw pixels for a model that scales them itself; with labelled --images, the "
        "convention with the best accuracy; else /255, and the report says it guessed",
        metavar="MODE",
        group="images, feature maps, Grad-CAM",
        parse=preprocess,
    )
    class_names: str | None = option(
        None,
        "class names, one per line or a JSON list",
        metavar="FILE",
        group="images, feature maps, Grad-CAM",
    )
    layers: tuple[str, ...] | None = option(
        None,
        "layers whose feature maps are shown",
        metavar="NAME",
        group="images, feature maps, Grad-CAM",
        many="extend",
    )
    feature_channels: int = option(
        64,
        "channels per feature-map grid (default 64)",
        metavar="N",
        group="images, feature maps, Grad-CAM",
        parse=positive,
    )
    gradcam_layer: str | None = option(
        None,
        "CAM target layer (default: the last conv layer with a map on the way to the explained output)",
        metavar="NAME",
        group="images, feature maps, Grad-CAM",
    )
    top_k: int = option(
        3,
        "predictions explained per image (default 3)",
        metavar="K",
        group="images, feature maps, Grad-CAM",
        parse=positive,
    )
    cam: tuple[str, ...] = option(
        ("gradcam",),
        "comma-separated CAM methods, side by side (default gradcam): " + ",".join(CAM_METHODS),
        metavar="LIST",
        group="images, feature maps, Grad-CAM",
        parse=comma_list(CAM_METHODS, "method"),
    )
    faithfulness_steps: int | None = option(
        None,
        "steps of the CAM faithfulness test's deletion and insertion curves "
        "(default: 20, 10 or 5, fitted to the model's cost; not measured where "
        "5 are over it); 0 skips the test",
        metavar="N",
        group="images, feature maps, Grad-CAM",
        parse=non_negative,
    )
    output: str | None = option(
        None,
        "the output to explain, for a model with several (default: the first that holds class scores)",
        metavar="NAME",
        group="images, feature maps, Grad-CAM",
    )
    inputs: tuple[str, ...] = option(
        (),
        "a value for a non-image input (default zeros); repeatable",
        flag="--input",
        metavar="NAME=FILE.npy",
        group="images, feature maps, Grad-CAM",
        many="append",
    )
    # robustness
    robustness_sample: int | None = option(
        None,
        "images the robustness section corrupts and attacks (default: as "
        "many as fit its cost budget: 12 for VGG16, at most 256)",
        metavar="N",
        group="robustness",
        parse=positive,
    )
    corruptions: tuple[str, ...] = option(
        CORRUPTIONS,
        "comma-separated common corruptions (default: all 14 of "
        "Hendrycks & Dietterich's 15 but frost): " + ",".join(CORRUPTIONS),
        metavar="LIST",
        group="robustness",
        parse=comma_list(CORRUPTIONS, "corruption"),
    )
    epsilons: tuple[float, ...] = option(
        (1.0, 2.0, 4.0, 8.0),
        "comma-separated L-infinity budgets of the FGSM and "
        "PGD attacks in pixel units 0-255 (default 1,2,4,8)",
        metavar="LIST",
        group="robustness",
        parse=budgets,
    )
    pgd_steps: int = option(
        10,
        "PGD steps (default 10, each of a quarter of the budget)",
        metavar="N",
        group="robustness",
        parse=positive,
    )
    # filter patterns
    pattern_layers: tuple[str, ...] | None = option(
        None, "conv layers for the pattern mosaics", metavar="NAME", group="filter patterns", many="extend"
    )
    pattern_filters: int | None = option(
        None,
        "filters per layer (default 64; 16 for a transformer's blocks, "
        "whose ascent runs the encoder up to the block)",
        metavar="N",
        group="filter patterns",
        parse=positive,
    )
    pattern_size: int | None = option(
        None,
        "pattern side in pixels (default 64, within the model's input sizes)",
        metavar="PX",
        group="filter patterns",
        parse=positive,
    )
    pattern_steps: int | None = option(
        None,
        "gradient-ascent steps (default: fitted to the model's cost)",
        metavar="N",
        group="filter patterns",
        parse=positive,
    )
    pattern_style: str = option(
        "classic",
        "classic or robust (default classic)",
        metavar="classic|robust",
        group="filter patterns",
        parse=one_of(PATTERN_STYLES),
    )
    seed: int = option(
        0,
        "random seed (default 0): same seed, same report",
        metavar="N",
        group="filter patterns",
        parse=non_negative,
    )
    # findings
    config: str | None = option(
        None,
        "TOML file with finding thresholds (default: [tool.reportgen] in ./pyproject.toml)",
        metavar="FILE",
        group="findings",
    )
    junit: str | None = option(
        None,
        "also write JUnit XML to FILE for CI: one testsuite per model, one testcase "
        "per finding kind checked, a failure where a finding is at or above --fail-on",
        metavar="FILE",
        group="findings",
        record=False,
    )
    fail_on: str | None = option(
        None,
        "exit 1 when a finding at or above this severity exists",
        metavar="warning|error",
        group="findings",
        parse=one_of(("warning", "error")),
    )

    def __post_init__(self) -> None:
        """Values given as text (``Report(top_k="5")``, ``cam="gradcam,layercam"``, a config) go through the
        flags' parsers, and a bad one is a UserError naming the flag. Values of the right type are kept as
        given: each section validates them, with the message its flag documents."""
        from reportgen.errors import UserError

        for f in fields(self):
            value = getattr(self, f.name)
            parse = f.metadata.get("parse")
            if (
                parse is None
                or not isinstance(value, str)
                or isinstance(f.default, str)
                and parse is not preprocess
            ):
                continue
            try:
                parsed = parse(value)
            except ValueError as exc:
                raise UserError(f"{flag(f)}: {exc}") from None
            if f.metadata.get("many") and not isinstance(parsed, tuple):
                parsed = (parsed,)
            object.__setattr__(self, f.name, parsed)
        for name in ("images", "image_dirs", "inputs", "formats"):
            value = getattr(self, name)
            if isinstance(value, str):
                object.__setattr__(self, name, (value,))
            elif not isinstance(value, tuple):
                object.__setattr__(self, name, tuple(value))
        for name in ("layers", "pattern_layers"):
            value = getattr(self, name)
            if isinstance(value, str):
                object.__setattr__(self, name, (value,))
            elif value is not None and not isinstance(value, tuple):
                object.__setattr__(self, name, tuple(value) or None)
        for name in ("sections", "cam", "corruptions", "epsilons"):
            value = getattr(self, name)
            if not isinstance(value, tuple):
                object.__setattr__(self, name, tuple(value))


def option_fields() -> list:
    """The fields of :class:`Options` the command line offers, in definition order."""
    return [f for f in fields(Options) if f.metadata.get("cli", True)]


def flag(f: Any) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def default_of(f: Any) -> Any:
    if f.default is not MISSING:
        return f.default
    return f.default_factory()  # type: ignore[misc]


def add_arguments(
    parser: argparse.ArgumentParser, names: Sequence[str] | None = None, groups: dict[str, Any] | None = None
) -> None:
    """Add the flags of the fields named (all by default) to ``parser``, grouped as defined."""
    groups = groups if groups is not None else {}
    for f in option_fields():
        if names is not None and f.name not in names:
            continue
        meta = f.metadata
        group = meta["group"]
        target = parser
        if group not in ("report", "output", "model"):
            if group not in groups:
                groups[group] = parser.add_argument_group(group)
            target = groups[group]
        kwargs: dict[str, Any] = {"dest": f.name, "help": meta["help"]}
        if meta.get("metavar"):
            kwargs["metavar"] = meta["metavar"]
        if isinstance(f.default, bool):
            kwargs["action"] = "store_true"
            kwargs["default"] = f.default
        else:
            parse = meta.get("parse")
            if parse is not None:
                kwargs["type"] = argparse_type(parse)
            if meta.get("many") == "append":
                kwargs["action"] = "append"
                kwargs["default"] = None
            elif meta.get("many") == "extend":
                kwargs["action"] = "extend"
                kwargs["nargs"] = "+"
                kwargs["default"] = None
            else:
                kwargs["default"] = default_of(f)
        target.add_argument(flag(f), **kwargs)


def argparse_type(parse: Callable[[Any], Any]) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc).removeprefix("--preprocess ")) from None

    convert.__name__ = getattr(parse, "__name__", "value")
    return convert


def from_namespace(args: argparse.Namespace) -> Options:
    """:class:`Options` from parsed arguments: a flag not given keeps its field's default."""
    values = {}
    for f in option_fields():
        if not hasattr(args, f.name):
            continue
        value = getattr(args, f.name)
        if value is None and f.metadata.get("many"):
            continue  # not given: the field's default
        if isinstance(value, list):
            value = tuple(value)
        values[f.name] = value
    return Options(**values)


__all__ = ["Options", "SECTION_NAMES", "FORMATS", "option_fields", "add_arguments", "from_namespace"]
