"""reportgen: one audit report (HTML, PDF, JSON) per trained Keras CNN.

``from reportgen import Report`` for the Python API (:mod:`reportgen.api`);
``reportgen MODEL`` on the command line. Importing the package imports
neither Keras nor its backend.
"""

from reportgen import _quiet  # noqa: F401  (must run before TensorFlow is imported)

from reportgen.names import VERSION as __version__  # noqa: E402

__all__ = ["__version__", "Report"]


def __getattr__(name: str):
    if name == "Report":
        from reportgen.api import Report

        return Report
    raise AttributeError(f"module 'reportgen' has no attribute {name!r}")
