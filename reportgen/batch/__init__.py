"""Many models in one run: ``reportgen A B C``, a folder or a glob -> one report each and an index.

``reportgen ckpt/`` (every ``.keras``/``.h5``/``.hdf5`` file in the folder,
not its sub-folders), ``reportgen "ckpt/*.keras"`` (reportgen expands the glob
itself, for quoted globs and shells that do not) or ``reportgen a.keras
b.keras vgg16`` writes ``OUT/<name>/report.*`` for each model and
``OUT/index.html`` plus ``OUT/index.json``: one row per model (name, source,
parameters, findings, accuracy on ``--images``, a relative link to its
report) and, when the models are checkpoints of one architecture, each kernel
layer's weight drift against the first model (``reportgen compare``'s relative
L2 change) as a trend plot and as numbers.

How the work is spread:

- in this process, one model after the other (the default);
- ``--jobs N``: N worker processes on this machine
  (``concurrent.futures.ProcessPoolExecutor``, "spawn" start method, so that
  no backend state is inherited half-initialised);
- ``--executor ray``: one Ray task per model on a cluster (``--ray-address``)
  or on a local Ray instance started for the run.

Workers get spec strings (paths, architecture names, ``module:callable``),
never Keras models; each loads its model, writes its report folder through
:class:`reportgen.api.Report` and returns a small summary dict
(:func:`reportgen.batch.jobs.run_one`). A model that fails is one row with its one-line error; the
others still get their reports. The weight drift is computed by the worker
that already holds model *k*: it loads the first model once per process
(cached) and compares kernel by kernel, so no weights travel between processes.

``reportgen index DIR`` (:func:`index_folders`) builds the same index from
report folders written earlier, reading their ``report.json`` (nothing is
recomputed); the weight drift then comes from a checkpoint beside each report
(``<name>/<name>.keras``, written by :class:`reportgen.keras.ReportCallback`)
or from the model file the report names as its source when that file's
SHA-256 still matches.

Nothing here imports Keras at module level: the parent process of a parallel
run never loads a model.

The modules, each importing only those above it:

- :mod:`~reportgen.batch.rows`: an index row (one model's summary), a failure in one line, the exit status;
- :mod:`~reportgen.batch.specs`: which models (folders and globs expanded) and their folder names;
- :mod:`~reportgen.batch.drift`: the weight drift between checkpoints, its table and trend plot;
- :mod:`~reportgen.batch.jobs`: one model's job and :func:`run_one`, which writes its report;
- :mod:`~reportgen.batch.executors`: where the jobs run (this process, worker processes, Ray);
- :mod:`~reportgen.batch.index`: index.html/index.json, and the index of earlier report folders;
- :mod:`~reportgen.batch.run`: a whole run (:func:`run_batch`) and an interrupted one.
"""

from reportgen.batch.drift import ARCHITECTURES_DIFFER
from reportgen.batch.executors import RAY_MISSING, _InterruptKept  # noqa: F401  (tests reach it here)
from reportgen.batch.index import TRAINING_FILE, index_folders
from reportgen.batch.jobs import _failed, make_jobs  # noqa: F401  (tests reach _failed here)
from reportgen.batch.rows import exit_status
from reportgen.batch.run import Interrupted, _sweep, interrupted, run_batch  # noqa: F401  (tests reach _sweep)
from reportgen.batch.specs import INDEX_FILES, assign_names, expand, is_many

__all__ = [
    "ARCHITECTURES_DIFFER",
    "INDEX_FILES",
    "RAY_MISSING",
    "TRAINING_FILE",
    "Interrupted",
    "assign_names",
    "exit_status",
    "expand",
    "index_folders",
    "interrupted",
    "is_many",
    "make_jobs",
    "run_batch",
]
