"""The painters: the functions that draw a report's figures, one module per section that has figures.

Each registers its painters by name (:func:`reportgen.figures.painter`) when imported, and importing this
package imports them all; the present stage does (:func:`reportgen.render.draw_figures`), the sections
never do. A painter takes the data a section put in its :class:`reportgen.figures.Figure` and returns a
data URI.
"""

from __future__ import annotations

from reportgen.painters import (  # noqa: F401  (each registers its painters)
    dataset,
    features,
    findings,
    gradcam,
    kernels,
    patterns,
    robustness,
    weights,
)
