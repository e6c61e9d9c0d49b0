"""The report's sections, in report order: one module per section.

Each module ``reportgen.sections.<name>`` defines

- ``TITLE``: the heading shown in the report and its table of contents;
- ``validate(ctx) -> None`` (optional): checks the user's options for this
  section before any analysis runs, raising :class:`reportgen.errors.UserError`;
- ``run(ctx) -> SectionResult``: the analysis (from ``reportgen.analyses``) and
  its figures, as :class:`reportgen.figures.Figure` specs that the present stage
  draws (``reportgen.painters``; a section imports no plotting).

and its template is ``templates/sections/<name>.html.j2``, which receives the
result's ``view`` as ``s``.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from reportgen.context import SECTION_NAMES as ORDER  # noqa: F401  (one list of the sections, in report order)


def module(name: str) -> ModuleType:
    return importlib.import_module(f"reportgen.sections.{name}")
