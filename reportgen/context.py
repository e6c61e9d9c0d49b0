"""What every section receives (:class:`Context`) and returns (:class:`SectionResult`).

Compute, then describe, then present. The analyses are functions whose parameters name their inputs
(:mod:`reportgen.steps`); the scheduler (:mod:`reportgen.scheduler`) runs the ones a report's sections
declare (each section's ``NEEDS``) in dependency order and returns one frozen
:class:`~reportgen.scheduler.Results`, read as ``ctx.analyses.cams``, ``ctx.analyses.weights``, ... A
section then describes them as JSON for report.json and as a view for its template.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from reportgen import steps  # noqa: F401  (registers the report's analyses with the scheduler)
from reportgen.loading import LoadedModel  # noqa: F401  (re-exported: what every section receives)
from reportgen.options import SECTION_NAMES, Options  # noqa: E402,F401  (one definition of the options)
from reportgen.scheduler import Results


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
    """What a section receives: the model, the options and the frozen analyses' results.

    ``analyses`` is filled by the scheduler before any section describes; reading it never computes.
    During the sections' checks (``validate``) it holds only the analyses that read the user's inputs.
    """

    loaded: LoadedModel
    options: Options
    analyses: Results = field(default_factory=Results)
    results: dict[str, SectionResult] = field(default_factory=dict)  # each section's output
    progress: Callable[..., Any] | None = None
    errors: list[SectionError] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per section, in the order they ran
    # The mixed-precision policies computed in float32 for this report (reportgen.graph.forward.float32).
    float32_policies: list[str] = field(default_factory=list)
    # Warnings raised while it ran, known harmless ones out.
    keras_warnings: list[str] = field(default_factory=list)

    @property
    def model(self) -> Any:
        return self.loaded.model

    def get(self, name: str) -> Any:
        """An analysis' result, or None when it failed or did not run (a section that can do without it)."""
        return self.analyses.get(name)

    @classmethod
    def computed(
        cls,
        loaded: LoadedModel,
        options: Options,
        names: Any,
        progress: Callable[..., Any] | None = None,
        given: dict[str, Any] | None = None,
    ) -> Context:
        """A context whose analyses ``names`` are computed, as the pipeline computes them before the sections
        describe: to describe one section from Python or a test. ``given``: results to use as they are
        (a ``thresholds`` object in place of a ``--config`` file)."""
        from types import MappingProxyType

        from reportgen import scheduler

        seed = Results(MappingProxyType(dict(given))) if given else None
        found = scheduler.compute(loaded, options, names, progress, given=seed)
        return cls(loaded, options, analyses=found, progress=progress)
