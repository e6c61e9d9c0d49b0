"""The Python API, in the style of ydata-profiling: ``Report(model, images=..., **options)``.

::

    from reportgen import Report

    r = Report("best-cnn-model.keras", images=["cat.jpg", "photos/"], sections="findings,weights,gradcam")
    r.findings            # the audit's findings (computes the report on first use)
    r.json                # the dict report.json holds
    r.to_file("x.html")   # or .pdf, .json
    r                     # in Jupyter: the HTML report inline

Nothing is loaded or computed until a result is asked for, and nothing is
written unless asked. The command line is a thin layer over this class.
"""

from __future__ import annotations

import html
import os
import tempfile
from dataclasses import fields
from pathlib import Path
from typing import Any, Iterable, Sequence

from reportgen.loading import LoadedModel
from reportgen.options import SECTION_NAMES, Options
from reportgen.errors import UserError

_OPTION_NAMES = {f.name for f in fields(Options)}


def make_options(sections: str | Sequence[str] | None = None, images: Any = None, **options: Any) -> Options:
    """:class:`Options` from keyword arguments; an unknown name is a ``TypeError`` listing the valid ones."""
    unknown = sorted(set(options) - _OPTION_NAMES)
    if unknown:
        raise TypeError(
            f"Report() got unexpected option(s) {', '.join(unknown)}; valid options: "
            f"{', '.join(sorted(_OPTION_NAMES - {'sections', 'images'}))}"
        )
    if isinstance(sections, str):
        sections = tuple(s.strip() for s in sections.split(",") if s.strip())
    if sections is not None:
        bad = [s for s in sections if s not in SECTION_NAMES]
        if bad:
            raise UserError(f"unknown section '{bad[0]}'; choose from {','.join(SECTION_NAMES)}")
        options["sections"] = tuple(sections)
    for key in ("cam", "layers", "pattern_layers", "inputs"):
        value = options.get(key)
        if isinstance(value, str):
            options[key] = (
                tuple(v.strip() for v in value.split(",") if v.strip()) if key == "cam" else (value,)
            )
        elif value is not None:
            options[key] = tuple(value)
    paths, _arrays = _split_images(images)
    dirs = [p for p in paths if Path(p).is_dir()]
    files = [p for p in paths if p not in dirs]
    if files:
        options["images"] = tuple(files)
    if dirs:
        options["image_dirs"] = tuple(options.get("image_dirs", ())) + tuple(dirs)
    options.setdefault("quiet", True)  # no progress bars in a notebook unless asked
    return Options(**options)


def _split_images(images: Any) -> tuple[list[str], list]:
    """Image arguments: file paths and folders (strings, Paths) and in-memory pixel arrays."""
    import numpy as np

    if images is None:
        return [], []
    if isinstance(images, (str, os.PathLike, np.ndarray)):
        images = [images]
    paths, arrays = [], []
    for item in images:
        if isinstance(item, (str, os.PathLike)):
            paths.append(str(item))
        else:
            a = np.asarray(item)
            arrays.extend(list(a) if a.ndim == 4 else [a])
    return paths, arrays


class Report:
    """One model's audit report, computed on first use.

    ``model``: a ``keras.Model``, a ``.keras``/``.h5`` path, a
    ``keras.applications`` name, or ``"module:callable"``. ``images``: paths of
    image files or folders, or pixel arrays (H x W x C, or a batch). Keyword
    options are :class:`reportgen.context.Options`' fields (``top_k=5``,
    ``cam="gradcam,layercam"``, ``pattern_steps=10``, ...).
    """

    def __init__(
        self,
        model: Any,
        images: Any = None,
        sections: str | Sequence[str] | None = None,
        *,
        name: str | None = None,
        options: Options | None = None,
        **kwargs: Any,
    ) -> None:
        self._model = model
        self._name = name
        self.options = options if options is not None else make_options(sections, images, **kwargs)
        self._weights, self._unsafe = self.options.weights, self.options.unsafe
        self._input_shape = tuple(self.options.input_shape) if self.options.input_shape is not None else None
        self._arrays = _split_images(images)[1]
        self._loaded: LoadedModel | None = None
        self._built: tuple | None = None

    # --- lazily: the model, then the report ------------------------------------------------

    @property
    def loaded(self) -> LoadedModel:
        """The model and where it came from (loaded on first use)."""
        if self._loaded is None:
            self._loaded = load_any(self._model, self._weights, self._unsafe, self._input_shape)
            if self._arrays:
                self._loaded.sample_images = [(a, None) for a in self._arrays]
        return self._loaded

    @property
    def name(self) -> str:
        return self._name or self.loaded.name

    def _build(self) -> tuple:
        if self._built is None:
            from reportgen.report import compute

            built = compute(self.loaded, self.options)
            self._built = (built.ctx, built.data, built.variables)
            self._computed = built
        return self._built

    @property
    def json(self) -> dict:
        """The dict that report.json holds (NumPy values as plain numbers, NaN as None)."""
        from reportgen.render import to_jsonable

        return to_jsonable(self._build()[1])

    @property
    def findings(self) -> list[dict]:
        """The audit's findings, most severe first (empty when the findings section is not selected)."""
        return self.json.get("findings", [])

    @property
    def section_errors(self) -> list[dict]:
        return self.json.get("section_errors", [])

    def html(self) -> str:
        """The self-contained HTML page."""
        from reportgen import render

        _ctx, _data, variables = self._build()
        return render.render_html("report.html.j2", variables)

    # --- writing ----------------------------------------------------------------------------

    def to_folder(
        self, out: str | os.PathLike = "reports", formats: Iterable[str] = ("html", "pdf", "json")
    ) -> Path:
        """Write ``out/<name>/report.{html,pdf,json}`` (and ``errors.log`` when a section failed)."""
        from reportgen import render
        from reportgen.report import write

        render.check_out_dir(Path(out))
        self._build()
        return write(self._computed, Path(out), formats, self.name)

    def to_file(self, path: str | os.PathLike) -> Path:
        """Write one file, its format from its suffix (``.html``, ``.pdf``, ``.json``); returns its path."""
        path = Path(path)
        fmt = path.suffix.lower().lstrip(".")
        if fmt == "htm":
            fmt = "html"
        if fmt not in ("html", "pdf", "json"):
            raise UserError(f"'{path}': give a .html, .pdf or .json file name")
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=path.parent, prefix=".reportgen-") as tmp:
            folder = self.to_folder(tmp, (fmt,))
            os.replace(folder / f"report.{fmt}", path)
        return path

    def _repr_html_(self) -> str:
        """Jupyter: the report inline, in an iframe so that its stylesheet stays its own."""
        return (
            f'<iframe srcdoc="{html.escape(self.html(), quote=True)}" style="width:100%;height:900px;'
            f'border:1px solid #ccd" title="reportgen report of {html.escape(self.name)}"></iframe>'
        )

    def __repr__(self) -> str:
        state = "computed" if self._built is not None else "not computed yet"
        return (
            "<reportgen.Report of "
            f"{self._model if isinstance(self._model, (str, Path)) else type(self._model).__name__} "
            f"({state})>"
        )


def load_any(
    model: Any, weights: str = "imagenet", unsafe: bool = False, input_shape: tuple | None = None
) -> LoadedModel:
    """A :class:`LoadedModel` from a model object, a path, an architecture name or ``module:callable``."""
    from reportgen import backend

    backend.import_keras()
    import keras

    if isinstance(model, LoadedModel):
        return model
    if isinstance(model, keras.Model):
        from reportgen.loading import ensure_built

        built = ensure_built(model, input_shape, model.name)
        return LoadedModel(
            model=built,
            name=model.name,
            source=f"in-memory {type(model).__name__} '{model.name}'",
            sha256=None,
        )
    if isinstance(model, (str, os.PathLike)):
        from reportgen.loading import load

        return load(str(model), weights=weights, unsafe=unsafe, input_shape=input_shape)
    raise TypeError(
        f"Report(model=...) takes a keras.Model, a path, an architecture name or 'module:callable', "
        f"not {type(model).__name__}"
    )
