"""reportgen: one audit report (HTML, PDF, JSON) per trained Keras CNN."""

from reportgen import _quiet  # noqa: F401  (must run before TensorFlow is imported)

__version__ = "0.1.0"

__all__ = ["__version__"]
