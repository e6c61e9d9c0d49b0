"""Reports during training: ``ReportCallback`` writes an audit report every N epochs of ``model.fit``.

::

    from reportgen.keras import ReportCallback

    model.fit(x, y, epochs=30, callbacks=[ReportCallback(every=5, images="val/", out="reports/run1")])

writes ``reports/run1/<model>-epoch-005/`` (``report.json``, ``report.html``,
the checkpoint ``<model>-epoch-005.keras`` and ``training.json`` with the
epoch's logs), ``...-epoch-010/``, ... and, when training ends,
``reports/run1/index.{html,json}``: one row per reported epoch and each kernel
layer's weight drift against the first reported epoch, computed from the saved
checkpoints. ``reportgen index reports/run1`` rebuilds that index later
from the folders alone (after a run that was interrupted, or with the reports
of a second run added).

Reports during training should be cheap: by default every section but
``patterns`` and ``robustness`` runs (the gradient-ascent mosaics cost more than all the other
sections together, minutes per layer on a VGG-size network, and say little
from one epoch to the next; the corruptions and attacks cost minutes too), and ``dataset`` only when
``images`` names a folder. Pass ``sections=`` for others (``"weights,findings"`` is the
cheapest useful set).

A report that fails does not stop the training (``on_error="warn"``, the
default, warns and goes on; ``"raise"`` stops it). Options are checked when
the callback is made, before any epoch runs.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any, Sequence

import keras

from reportgen.api import Report, make_options
from reportgen.context import SECTION_NAMES

# Everything but the filter patterns (and the data-set pass, which needs an image folder).
DEFAULT_SECTIONS = tuple(s for s in SECTION_NAMES if s not in ("patterns", "dataset", "robustness"))


class ReportCallback(keras.callbacks.Callback):
    """Write ``out/<name>-epoch-NNN/report.{json,html}`` every ``every`` epochs, and an index at the end.

    ``images``: image files, folders (``dataset`` section: accuracy on a labelled
    folder) or pixel arrays, as :class:`reportgen.Report` takes them.
    ``sections``: a comma-separated string or list (default: every section but
    ``patterns``; ``dataset`` when ``images`` names a folder). ``name``: the folder
    prefix (default: the model's name). ``save_model``: save the model as
    ``<folder>/<folder>.keras`` beside each report (a checkpoint that ``reportgen``
    and ``reportgen compare`` take; the index's weight drift needs it).
    ``index``: write ``out/index.{html,json}`` when training ends. Other keyword
    arguments are :class:`reportgen.context.Options` fields (``top_k=2``,
    ``cam="gradcam,layercam"``, ``fail_on``, ...).

    ``written`` lists the report folders written so far, over every ``fit``
    the callback is given to (``fit(..., initial_epoch=10)`` continues the
    numbering, and the index at its end covers both runs); ``failures`` the
    epochs whose report failed or has failed sections, with the error.
    """

    def __init__(
        self,
        every: int = 1,
        images: Any = None,
        out: str | os.PathLike = "reports",
        sections: str | Sequence[str] | None = None,
        *,
        name: str | None = None,
        formats: Sequence[str] = ("json", "html"),
        save_model: bool = True,
        index: bool = True,
        on_error: str = "warn",
        **options: Any,
    ) -> None:
        super().__init__()
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(
                f"ReportCallback(every=...) must be a whole number of epochs >= 1, not {every!r}"
            )
        if on_error not in ("warn", "raise"):
            raise ValueError(f"ReportCallback(on_error=...) is 'warn' or 'raise', not {on_error!r}")
        bad = [f for f in formats if f not in ("html", "pdf", "json")]
        if bad:
            raise ValueError(
                f"ReportCallback(formats=...): unknown format {bad[0]!r}; choose from html, pdf, json"
            )
        if index and "json" not in formats:
            raise ValueError("ReportCallback(index=True) reads each report.json: keep 'json' in formats")
        self.every = every
        self.images = images
        self.out = Path(out)
        self.prefix = name
        self.formats = tuple(formats)
        self.save_model = save_model
        self.index = index
        self.on_error = on_error
        if sections is None:
            sections = DEFAULT_SECTIONS
            probe = make_options(None, images)
            if probe.image_dirs:
                # robustness, as patterns, costs minutes on a large model and is asked for by name
                sections = tuple(s for s in SECTION_NAMES if s not in ("patterns", "robustness"))
        # Unknown options and sections fail here, before the first epoch.
        self.options = make_options(sections, images, **options)
        self.written: list[Path] = []
        self.failures: list[tuple[int, str]] = []

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if (epoch + 1) % self.every == 0:
            self.write(epoch, logs)

    def on_train_end(self, logs: dict | None = None) -> None:
        if self.index and self.written:
            from reportgen.batch import index_folders

            try:
                index_folders(self.out, self.written)
            except Exception as exc:
                self._failed(None, exc)

    def write(self, epoch: int, logs: dict | None = None) -> Path | None:
        """Write the report of the model as it is now, as epoch ``epoch`` (0-based, as Keras counts)."""
        from reportgen.batch import TRAINING_FILE

        name = f"{self.prefix or self.model.name}-epoch-{epoch + 1:03d}"
        try:
            report = Report(self.model, images=self.images, name=name, options=self.options)
            folder = report.to_folder(self.out, self.formats)
            checkpoint = None
            if self.save_model:
                checkpoint = f"{name}.keras"
                self.model.save(folder / checkpoint)
            record = {
                "epoch": epoch + 1,
                "logs": _plain(logs),
                "checkpoint": checkpoint,
                "model": self.model.name,
                "source": report.loaded.source,
            }
            (folder / TRAINING_FILE).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            self._failed(epoch, exc)
            return None
        if report.section_errors:
            self.failures.append(
                (
                    epoch + 1,
                    "section(s) failed: "
                    + ", ".join(f"{e['section']} ({e['error']})" for e in report.section_errors),
                )
            )
        if folder in self.written:  # the same epoch again (a second fit from epoch 0): its new report
            self.written.remove(folder)
        self.written.append(folder)
        return folder

    def _failed(self, epoch: int | None, exc: Exception) -> None:
        from reportgen.errors import one_line

        what = f"the report of epoch {epoch + 1}" if epoch is not None else "the index"
        self.failures.append((epoch + 1 if epoch is not None else 0, one_line(exc, typed=True)))
        if self.on_error == "raise":
            raise exc
        warnings.warn(
            f"ReportCallback: {what} failed ({one_line(exc, typed=True)}); training goes on",
            RuntimeWarning,
            stacklevel=2,
        )


def _plain(logs: dict | None) -> dict:
    """Keras' epoch logs as plain floats (they may be tensors or NumPy scalars)."""
    out = {}
    for key, value in (logs or {}).items():
        try:
            out[str(key)] = float(value)
        except (TypeError, ValueError):
            continue
    return out
