"""reportgen: one audit report (HTML, PDF, JSON) per trained Keras CNN.

``from reportgen import Options, Report`` for the Python API (:mod:`reportgen.api`);
``reportgen MODEL`` on the command line. Importing the package imports
neither Keras nor its backend.
"""

from reportgen import _quiet  # noqa: F401  (must run before TensorFlow is imported)

from reportgen.names import VERSION as __version__  # noqa: E402

__all__ = ["__version__", "Options", "Report"]


def __getattr__(name: str):
    if name == "Report":
        from reportgen.api import Report

        return Report
    if name == "Options":  # every option, one definition (reportgen.options); imports no Keras
        from reportgen.options import Options

        return Options
    raise AttributeError(f"module 'reportgen' has no attribute {name!r}")
