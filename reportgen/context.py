"""What every analysis receives (:class:`Context`) and returns (:class:`SectionResult`).

Analyses *describe*: they compute plain data (NumPy arrays, dicts). The JSON
part goes into ``report.json``; the view part (numbers, figure data URIs) goes
to the section's template, which only presents.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Callable

import numpy as np

SECTION_NAMES = ("findings", "overview", "layers", "weights", "kernels", "features", "gradcam", "patterns")


@dataclass
class Options:
    """Everything the user chose on the command line, with the documented defaults."""

    sections: tuple[str, ...] = SECTION_NAMES
    # kernels
    max_filters: int = 64
    kernel_channel: int = 0
    # images, feature maps and Grad-CAM
    images: tuple[str, ...] = ()
    preprocess: str = "auto"
    class_names: str | None = None
    layers: tuple[str, ...] | None = None
    feature_channels: int = 64
    gradcam_layer: str | None = None
    top_k: int = 3
    # filter patterns
    pattern_layers: tuple[str, ...] | None = None
    pattern_filters: int = 64
    pattern_size: int | None = None
    pattern_steps: int | None = None
    pattern_style: str = "classic"
    seed: int = 0
    # findings
    config: str | None = None
    fail_on: str | None = None
    quiet: bool = False


@dataclass
class LoadedModel:
    """A model and where it came from."""

    model: Any
    name: str  # the report folder's name: file stem or architecture name
    source: str  # the path, or "keras.applications.VGG16 (weights=imagenet)"
    sha256: str | None
    architecture: str | None = None  # keras.applications name, when loaded by name
    weights: str | None = None
    # Default input for the analyses when the user gives no --image (the demo's
    # held-out samples): list of (pixels uint8 HxWxC, label str).
    sample_images: list = field(default_factory=list)
    class_names: list[str] | None = None
    unsafe: bool = False  # loaded with --unsafe: cloning may re-create its Lambda layers


@dataclass
class SectionResult:
    """An analysis' output: ``json`` merges into report.json, ``view`` feeds the template."""

    json: dict = field(default_factory=dict)
    view: dict = field(default_factory=dict)


@dataclass
class Context:
    loaded: LoadedModel
    options: Options
    results: dict[str, SectionResult] = field(default_factory=dict)
    progress: Callable[..., Any] | None = None

    @property
    def model(self) -> Any:
        return self.loaded.model

    @cached_property
    def baseline(self) -> Any:
        """The same architecture freshly initialised with its own initialisers (seeded)."""
        from reportgen.analyses.weights import fresh_copy

        return fresh_copy(self.model, seed=self.options.seed, unsafe=self.loaded.unsafe)

    @cached_property
    def rng(self) -> np.random.Generator:
        return np.random.default_rng(self.options.seed)


def _images(ctx: "Context") -> list:
    from reportgen.images import prepare_inputs

    return prepare_inputs(ctx)


# Prepared input images (reportgen.images.PreparedImage), computed once and
# shared by the feature-map and Grad-CAM sections.
Context.images = cached_property(_images)  # type: ignore[attr-defined]
Context.images.__set_name__(Context, "images")  # type: ignore[attr-defined]
