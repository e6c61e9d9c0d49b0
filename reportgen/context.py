"""What every section receives (:class:`Context`) and returns (:class:`SectionResult`).

Compute, then describe, then present. The analyses compute typed data; each
is declared once in :data:`ANALYSES` with the analyses it needs, and
:func:`run_analyses` -- the one scheduler -- computes the ones a report's
sections declare (each section's ``NEEDS``) in dependency order, timing each
and keeping a failure to the sections that need it. The results are the
context's typed attributes (``ctx.weights``, ``ctx.cams``, ``ctx.patterns``,
``ctx.sanity``, ``ctx.faithfulness``, ...), computed once. A section then describes them as JSON for
report.json and as a view for its template; figures in the view are drawn only
when a page shows them (:class:`reportgen.plots.Later`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Callable

import numpy as np

from reportgen.loading import LoadedModel  # noqa: F401  (re-exported: what every section receives)
from reportgen.options import SECTION_NAMES, Options  # noqa: E402,F401  (one definition of the options)


@dataclass
class SectionResult:
    """A section's output: ``json`` merges into report.json, ``view`` feeds the template."""

    json: dict = field(default_factory=dict)
    view: dict = field(default_factory=dict)


@dataclass
class SectionError:
    """A section that raised: the report is written without it, and says so."""

    section: str
    error: str  # the exception's type
    message: str  # its first line
    traceback: str = ""

    def to_json(self) -> dict:
        return {"section": self.section, "error": self.error, "message": self.message}


@dataclass
class Context:
    loaded: LoadedModel
    options: Options
    results: dict[str, SectionResult] = field(default_factory=dict)
    progress: Callable[..., Any] | None = None
    errors: list[SectionError] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per section, in the order they ran
    # Analyses that raised: name -> (exception type, first line, traceback); their sections fail with them.
    failed: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    analysis_timings: dict[str, float] = field(default_factory=dict)  # seconds per analysis, as scheduled
    # The mixed-precision policies computed in float32 for this report (reportgen.graph.forward.float32).
    float32_policies: list[str] = field(default_factory=list)
    keras_warnings: list[str] = field(
        default_factory=list
    )  # warnings raised while it ran, known harmless ones out
    # Each candidate pixel convention's accuracy, when ``auto`` measured it on labelled images.
    convention: Any = None

    @property
    def model(self) -> Any:
        return self.loaded.model

    def get(self, name: str) -> Any:
        """An analysis' result, or None when it failed (a section that can do without it)."""
        return None if name in self.failed else getattr(self, name)

    @cached_property
    def cams(self) -> Any:
        """The class activation maps of every chosen method (:mod:`reportgen.analyses.cam.explained`)."""
        from reportgen.analyses.cam.explained import for_report
        from reportgen.analyses.labels import class_names

        opts = self.options
        images = self.images
        head = self.head if images else None
        names = class_names(self) if images and head.units is not None and not head.is_map else None
        return for_report(
            self.model,
            images,
            head,
            self.feeds,
            methods=opts.cam,
            top_k=opts.top_k,
            layer_name=opts.gradcam_layer,
            output=opts.output,
            names=names,
            progress=self.progress,
        )

    @cached_property
    def patterns(self) -> Any:
        """The filter patterns of the chosen layers (:mod:`reportgen.analyses.patterns.layers`)."""
        from reportgen.analyses.patterns.layers import compute

        return compute(
            self.model,
            self.options,
            self.preprocessor,
            self.feeds,
            self.progress,
            self.thresholds.pattern_min_rise,
        )

    @cached_property
    def sanity(self) -> Any:
        """The CAM sanity cascade for each method, or why it did not run
        (:mod:`reportgen.analyses.sanity`)."""
        from reportgen.analyses.sanity import run_for

        return run_for(
            self.model,
            self.cams,
            self.images,
            self.options.cam,
            self.thresholds,
            self.options.seed,
            self.feeds,
            self.progress,
        )

    @cached_property
    def faithfulness(self) -> Any:
        """Each CAM against a random and an edge map, by deletion and insertion
        (:mod:`reportgen.analyses.cam.faithfulness`)."""
        from reportgen.analyses.cam.faithfulness import for_report

        return for_report(
            self.model,
            self.cams,
            self.images,
            self.feeds,
            self.options.seed,
            self.progress,
            self.options.faithfulness_steps,
            self.thresholds.faithfulness_informative,
        )

    @cached_property
    def rng(self) -> np.random.Generator:
        return np.random.default_rng(self.options.seed)

    @cached_property
    def thresholds(self) -> Any:
        from reportgen import config

        return config.load(self.options.config)

    @cached_property
    def feeds(self) -> Any:
        """The model's inputs around its image input (:mod:`reportgen.graph.inputs`)."""
        from reportgen.graph.inputs import feeds_for

        return feeds_for(self.model, self.options.inputs)

    @cached_property
    def preprocessor(self) -> Any:
        """The one pixel -> model-input conversion of this report, with where it came from.

        ``--preprocess``, else what the model says (its architecture, its own
        scaling), else -- with labelled ``--images`` folders -- the convention
        measured best on them (:mod:`reportgen.analyses.convention`), else a
        guess that the report names as one.
        """
        from reportgen.preprocessing import Preprocessor

        pre = Preprocessor.resolve(self.options.preprocess, self.loaded.architecture, self.model)
        if pre.guessed and self.folder is not None and self.folder.labelled:
            from reportgen.analyses import convention
            from reportgen.images import image_input_spec

            spec = image_input_spec(self.model)
            if spec is not None:
                self.convention = convention.measure(self.model, self.head, self.folder, spec, self.feeds)
                if self.convention is not None:
                    chosen = self.convention.chosen
                    pre = (
                        Preprocessor(chosen, self.convention.why(), "measured")
                        if chosen
                        else pre.with_source("default", self.convention.why())
                    )
        return pre

    @cached_property
    def images(self) -> list:
        """Prepared input images (reportgen.images.PreparedImage), shared by the image sections."""
        from reportgen.images import prepare_inputs

        return prepare_inputs(self)

    @cached_property
    def weights(self) -> dict:
        """Every weighted layer's :class:`~reportgen.analyses.weights.LayerWeights`, computed one layer at a
        time."""
        from reportgen.analyses.weights import weight_analysis

        return weight_analysis(self.model, self.options.seed, self.progress, self.thresholds.dead_kernel_norm)

    @cached_property
    def weight_findings(self) -> list:
        """The weight-only checks over every layer, once: the findings, weights and kernels sections read
        them."""
        from reportgen.analyses.findings import weight_findings

        return weight_findings(self.weights, self.thresholds)

    @cached_property
    def folder(self) -> Any:
        """The ``--images`` folders' files and labels (:mod:`reportgen.images.folders`); None without
        folders."""
        if not self.options.image_dirs:
            return None
        from reportgen import images
        from reportgen.analyses.labels import output_units
        from reportgen.images import folders

        names = images.load_class_names(self.options.class_names) if self.options.class_names else None
        return folders.scan(self.options.image_dirs, names, output_units(self.model, self.options.output))

    @cached_property
    def dataset(self) -> Any:
        """Statistics over every image of the folders (:mod:`reportgen.analyses.dataset`); None without
        folders."""
        folder = self.folder
        if folder is None:
            return None
        from reportgen.analyses import dataset as D
        from reportgen.analyses.cam import resolve_layer
        from reportgen.errors import BadInput, UserError
        from reportgen.images import folders, require_image_input

        spec = require_image_input(self.model, "--images")
        pre = self.preprocessor
        try:
            layer = resolve_layer(self.model, self.options.gradcam_layer, self.options.output).path
        except UserError:
            if self.options.gradcam_layer:
                # a layer the user named, and cannot have: one line and exit 2, not a silent mean CAM of none
                raise
            layer = None
        size = D.batch_size(self.model)
        skipped: list = []
        facts = D.PixelFacts()
        try:
            embed = D.embedding_layer(self.model, self.head)
        except Exception:  # noqa: BLE001  (no embedding: duplicates by the hash alone, and the page says so)
            embed = None
        bar = self.progress(total=len(folder), desc="images") if self.progress else None
        try:
            stats = D.run_pass(
                self.model,
                self.head,
                layer,
                folders.batches(folder, spec, pre, size, skipped, facts),
                len(folder.class_names) if folder.class_names else None,
                self.feeds,
                self.thresholds.dead_activation,
                self.thresholds.saturation_margin,
                tick=(lambda n: bar.update(n)) if bar is not None else None,
                embed=embed,
            )
        finally:
            if bar is not None:
                bar.close()
        if stats.images == 0:
            raise BadInput(
                f"--images: none of the {len(folder)} files could be read as an image "
                f"(first: {skipped[0].path}: {skipped[0].reason}){folder.type_note()}; "
                "give a folder of PNG or JPEG images"
            )
        stats.skipped = skipped
        facts.attach(stats)
        if stats.indices is not None and folder.roots:
            stats.roots = np.asarray(folder.roots, dtype=np.int64)[stats.indices]
        self._review(stats, spec, pre, layer)
        return stats

    def _review(self, stats: Any, spec: Any, pre: Any, layer: str | None) -> None:
        """The data-set review over the pass' per-image arrays, and the suggested classes' CAMs for the
        label-issue gallery (:mod:`reportgen.analyses.review`)."""
        from reportgen.analyses import review
        from reportgen.images import folders

        head = self.head
        stats.review = review.build(
            stats.probs,
            stats.labels,
            stats.confusion if stats.labelled else None,
            stats.hashes,
            stats.embeddings,
            stats.properties,
            sigmoid=head.kind == "sigmoid" and not head.is_binary,
            top_k=self.options.top_k,
            t=self.thresholds,
        )
        shown = stats.review.label_issues[: review.GALLERY]
        if shown and layer is not None:
            from reportgen.analyses.cam import explain

            x = folders.load_inputs(self.folder, [int(stats.indices[i.index]) for i in shown], spec, pre)
            maps = explain(
                self.model, layer, x, classes=[i.suggested for i in shown], head=head, feeds=self.feeds
            ).heatmaps[:, 0]
            for issue, m in zip(shown, maps):
                issue.cam = np.asarray(m, dtype=np.float64)

    @cached_property
    def robustness(self) -> Any:
        """The model under the common corruptions and L-infinity attacks
        (:mod:`reportgen.analyses.robustness`); None for a model whose output is not a vector of class
        scores."""
        from reportgen.analyses.labels import class_names
        from reportgen.analyses.robustness.inputs import for_report

        if self.head.units is None or self.head.is_map:
            return None  # the section says why: corruptions and attacks are measured on class scores
        try:
            names = class_names(self)
        except Exception:  # noqa: BLE001  (names only turn the images' labels into classes; a bad file fails elsewhere)
            names = None
        images = self.images if self.folder is None else []
        return for_report(
            self.model,
            self.head,
            self.feeds,
            self.preprocessor,
            self.folder,
            images,
            self.options,
            names,
            self.progress,
        )

    @property
    def wants_activity(self) -> bool:
        """Whether this report looks at units on images: it has image folders, or images and an image
        section."""
        if self.options.image_dirs:
            return True
        return bool({"features", "gradcam"} & set(self.options.sections)) and bool(self.images)

    @cached_property
    def activity(self) -> Any:
        """How each unit behaves on the report's images: every image of the folders, else the shown ones."""
        from reportgen.analyses import activations as A

        if self.dataset is not None:
            return self.dataset.activity
        images = self.images
        if not images:
            return None
        x = np.stack([np.asarray(im.input, dtype=np.float32) for im in images])
        t = self.thresholds
        return A.unit_activity(
            self.model,
            A.batches_of(x, A.batch_size(self.model)),
            self.feeds,
            t.dead_activation,
            t.saturation_margin,
        )

    @cached_property
    def attention(self) -> Any:
        """A transformer's attention on the report's images (:mod:`reportgen.analyses.attention`); None
        without images."""
        images = self.images
        if not images:
            return None
        from reportgen.analyses.attention import analyse

        return analyse(
            self.model, np.stack([np.asarray(im.input, dtype=np.float32) for im in images]), self.feeds
        )

    @cached_property
    def head(self) -> Any:
        """What the chosen model output is (:func:`reportgen.analyses.cam.classifier_head`)."""
        from reportgen.analyses.cam import classifier_head

        return classifier_head(self.model, self.options.output)


# --- the analyses and their needs: one declaration, one scheduler ---------------------------------------

ANALYSES: dict[str, tuple[str, ...]] = {
    "thresholds": (),
    "feeds": (),
    "head": (),
    "weights": (),
    "weight_findings": ("weights", "thresholds"),
    "folder": ("head",),
    "preprocessor": ("folder", "head", "feeds"),
    "images": ("preprocessor", "folder"),
    "dataset": ("folder", "preprocessor", "head", "feeds", "thresholds"),
    "activity": ("dataset", "images", "feeds", "thresholds"),
    "cams": ("images", "head", "feeds"),
    "attention": ("images", "feeds"),
    "patterns": ("preprocessor", "feeds", "thresholds"),
    "sanity": ("cams", "images", "thresholds", "feeds"),
    "faithfulness": ("cams", "images", "feeds", "thresholds"),
    "robustness": ("folder", "images", "preprocessor", "head", "feeds"),
}


def schedule(names: Any) -> list[str]:
    """``names`` and everything they need, each after its needs (a depth-first topological order)."""
    order: list[str] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        for need in ANALYSES[name]:
            visit(need)
        order.append(name)

    for name in names:
        visit(name)
    return order


def run_analyses(ctx: Context, names: Any) -> None:
    """Compute ``names`` in dependency order, timing each; a failure is kept for the sections that need it
    (bad input, an interrupt and internal errors of the options' own validation still stop the report)."""
    import time
    import traceback

    from reportgen.errors import BadInput, one_line

    for name in schedule(names):
        if name in ctx.failed or name in vars(ctx):
            continue
        broken = [n for n in ANALYSES[name] if n in ctx.failed]
        if broken:
            ctx.failed[name] = ctx.failed[broken[0]]
            continue
        started = time.perf_counter()
        try:
            # A model whose weights or outputs overflow (3e38 everywhere) makes NaN and Inf on the way: the
            # report says so (findings, notes), and NumPy's RuntimeWarnings would only add lines to stderr.
            with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
                getattr(ctx, name)
        except (BadInput, KeyboardInterrupt):
            raise
        except Exception as exc:  # one analysis' bug or limit sinks only the sections that need it
            ctx.failed[name] = (type(exc).__name__, one_line(exc), traceback.format_exc())
        finally:
            ctx.analysis_timings[name] = time.perf_counter() - started
