"""The common corruptions of Hendrycks & Dietterich (ICLR 2019), one small registered function each.

Importing this package imports every corruption module, which registers its
functions in :data:`.base.REGISTRY`; :data:`NAMES` lists them in the paper's
order. Frost is left out (:data:`LEFT_OUT` says why).
"""

from __future__ import annotations

from reportgen.analyses.robustness.corruptions import blur, digital, noise, weather  # noqa: F401  (they register)
from reportgen.analyses.robustness.corruptions.base import REGISTRY, SEVERITIES, corrupt, rng_for  # noqa: F401
from reportgen.analyses.robustness.corruptions.weather import LEFT_OUT  # noqa: F401

PAPER_ORDER = (
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "defocus_blur",
    "glass_blur",
    "motion_blur",
    "zoom_blur",
    "snow",
    "frost",
    "fog",
    "brightness",
    "contrast",
    "elastic_transform",
    "pixelate",
    "jpeg_compression",
)
NAMES = tuple(n for n in PAPER_ORDER if n in REGISTRY)
