"""Filter patterns: the input that maximises each filter of a conv layer, by gradient ascent.

- :mod:`~reportgen.analyses.patterns.objective`: what is maximised (a filter's
  mean pre-activation, computed only up to the layer and only for the chunk's
  filters);
- :mod:`~reportgen.analyses.patterns.ascent`: the batched loop shared by the
  styles, and the classic style (Chollet 5.4);
- :mod:`~reportgen.analyses.patterns.robust`: the Lucid-style robust ascent;
- :mod:`~reportgen.analyses.patterns.reference`: the tutorial's per-filter loop
  (the benchmark's yardstick);
- :mod:`~reportgen.analyses.patterns.cost`: the work, in multiply-adds, and
  the default steps it affords;
- :mod:`~reportgen.analyses.patterns.rise`: when a filter's objective rose
  (flat / barely moved / rose), the one definition.
"""

from reportgen.analyses.patterns import rise  # noqa: F401
from reportgen.analyses.patterns.ascent import (  # noqa: F401
    START_CONTRAST,
    STYLES,
    PatternResult,
    affine_of,
    chunk_size,
    dead_filters,
    deprocess,
    filter_patterns,
    pixel_step,
    start_pixels,
    step_size,
)
from reportgen.analyses.patterns.cost import macs_up_to  # noqa: F401
from reportgen.analyses.patterns.objective import OBJECTIVES, Objective, affine_in_image  # noqa: F401
from reportgen.analyses.patterns.reference import reference_patterns  # noqa: F401
from reportgen.analyses.patterns import robust  # noqa: F401  (registers the robust style)
