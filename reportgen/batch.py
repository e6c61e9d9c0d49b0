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
(:func:`run_one`). A model that fails is one row with its one-line error; the
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
"""

from __future__ import annotations

import glob
import json
import os
import re
import socket
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence
from urllib.parse import quote

from reportgen.context import Options
from reportgen.errors import UserError

from reportgen.names import MODEL_SUFFIXES, is_savedmodel  # noqa: E402
EXECUTORS = ("process", "ray")
RAY_MISSING = "--executor ray needs Ray, which is not installed; pip install 'reportgen[ray]'"
INDEX_FILES = ("index.html", "index.json")
ARCHITECTURES_DIFFER = "not a checkpoint of the first model's architecture"
TRAINING_FILE = "training.json"  # written beside a report by reportgen.keras.ReportCallback


# --- which models ----------------------------------------------------------------------------

def natural_key(text: str) -> list:
    """Sort key that orders digit runs by value: ``epoch_2`` before ``epoch_10``."""
    return [int(part) if part.isdigit() else part.casefold() for part in re.split(r"(\d+)", str(text))]


def is_pattern(spec: str) -> bool:
    """A glob reportgen expands itself (``"ckpt/*.keras"``); an existing path is never one."""
    return any(c in spec for c in "*?[") and not os.path.lexists(spec)


def _is_savedmodel(folder: Path) -> bool:
    return is_savedmodel(folder)


def is_folder(spec: str) -> bool:
    """A folder of model files (a TensorFlow SavedModel folder is a single MODEL, refused with its own message)."""
    p = Path(spec)
    return p.is_dir() and not _is_savedmodel(p)


def is_model_file(path: str | Path) -> bool:
    """A ``.keras``/``.h5``/``.hdf5`` file; ``*.weights.h5`` holds weights only and is not a model."""
    name = Path(path).name.lower()
    return (Path(path).is_file() and name.endswith(MODEL_SUFFIXES) and not name.endswith(".weights.h5")
            and not name.startswith("."))


def is_many(specs: Sequence[str]) -> bool:
    """Several MODEL arguments, or one that is a folder or a glob: a run with an index."""
    return len(specs) > 1 or any(is_folder(s) or is_pattern(s) for s in specs)


def expand(specs: Sequence[str]) -> list[str]:
    """The models named by the MODEL arguments, in order; folders and globs in natural sort order.

    A folder contributes its model files (not its sub-folders'); a glob its
    matching model files (``**`` recurses). A folder or glob without a model
    file is bad input (one line, nothing written). The same file named twice
    (``a.keras`` and ``*.keras``) is reported once, where it first appears.
    """
    found: list[str] = []
    for spec in specs:
        if is_folder(spec):
            files = [p for p in Path(spec).iterdir() if is_model_file(p)]
            if not files:
                raise UserError(f"'{spec}' is a directory without a model file (.keras, .h5, .hdf5; its "
                                "sub-directories are not searched); give a model file, a folder of model files, "
                                "or a glob such as 'runs/**/*.keras'")
            found.extend(str(p) for p in sorted(files, key=lambda p: natural_key(p.name)))
        elif is_pattern(spec):
            matches = glob.glob(spec, recursive=True)
            files = [m for m in matches if is_model_file(m)]
            if not files:
                what = (f"{len(matches)} match(es), none a model file (.keras, .h5, .hdf5)" if matches
                        else "no file matches")
                raise UserError(f"'{spec}': {what}; check the pattern (quote it so that reportgen expands it)")
            found.extend(sorted(files, key=natural_key))
        else:
            found.append(spec)
    unique, seen = [], set()
    for spec in found:
        key = os.path.realpath(spec) if os.path.isfile(spec) else spec
        if key not in seen:
            seen.add(key)
            unique.append(spec)
    return unique


def spec_name(spec: str) -> str:
    """The report folder a model gets on its own: file stem, callable name or architecture name."""
    from reportgen.loading import CODE_SPEC, is_code_spec, is_model_path

    if is_code_spec(spec):
        return CODE_SPEC.match(spec).group(2).rsplit(".", 1)[-1]
    if is_model_path(spec):
        return Path(spec).stem
    return spec.lower()


def assign_names(specs: Sequence[str]) -> list[str]:
    """Distinct folder names, in order: a repeated name gets ``-2``, ``-3``, ... (case-insensitively
    distinct, for case-insensitive file systems), never another model's own name."""
    bases = [spec_name(s) for s in specs]
    own = {b.casefold() for b in bases}
    taken = set(INDEX_FILES)  # a model called index.json must not take the index's place
    names = []
    for base in bases:
        name, k = base, 2
        if name.casefold() in taken:
            while f"{base}-{k}".casefold() in taken or f"{base}-{k}".casefold() in own:
                k += 1
            name = f"{base}-{k}"
        taken.add(name.casefold())
        names.append(name)
    return names


# --- one model, in whichever process ------------------------------------------------------------

@dataclass(frozen=True)
class Job:
    """What a worker needs to write one report: strings and plain options, never a model."""

    index: int
    spec: str
    name: str
    out: str
    formats: tuple[str, ...]
    options: Options
    weights: str = "imagenet"
    unsafe: bool = False
    input_shape: tuple[int, ...] | None = None
    reference: str | None = None  # the first model's spec: weight drift against it


def one_line(exc: BaseException) -> str:
    """A failure in one line: a UserError's message, else ``ExceptionType: first line``."""
    if isinstance(exc, UserError):
        return str(exc)
    lines = str(exc).strip().splitlines()
    text = lines[0].strip() if lines else ""
    text = text[:300] + "…" if len(text) > 300 else text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _link(name: str, formats: Iterable[str]) -> str | None:
    formats = set(formats)
    for fmt in ("html", "pdf", "json"):
        if fmt in formats:
            return f"{name}/report.{fmt}"
    return None


def entry_from_report(name: str, data: dict, formats: Iterable[str]) -> dict:
    """An index row from a report.json dict (``formats``: the files the folder holds)."""
    model = data.get("model") or {}
    dataset = data.get("dataset") or {}
    errors = list(data.get("section_errors") or [])
    return {
        "name": name,
        "source": model.get("source"),
        "status": "flagged" if errors else "written",
        "exit_status": 3 if errors else 0,
        "error": None,
        "link": _link(name, formats),
        "formats": [f for f in ("html", "pdf", "json") if f in set(formats)],
        "total_params": model.get("total_params"),
        "findings_summary": data.get("findings_summary"),
        "section_errors": errors,
        "accuracy": dataset.get("accuracy"),
        "images": dataset.get("images"),
        "generated": data.get("generated"),
    }


def _failed(job: Job, message: str, seconds: float | None = None, worker: dict | None = None) -> dict:
    return {
        "index": job.index, "name": job.name, "spec": job.spec, "source": job.spec, "status": "failed",
        "exit_status": 2, "error": message, "link": None, "formats": [], "total_params": None,
        "findings_summary": None, "section_errors": [], "accuracy": None, "images": None, "generated": None,
        "seconds": seconds, "worker": worker, "drift": None, "drift_error": None,
    }


# One LoadedModel per process: the first model, which every worker compares its model with.
_REFERENCE: dict[tuple, Any] = {}


def _reference(job: Job) -> Any:
    from reportgen.api import load_any

    key = (job.reference, job.weights, job.unsafe, job.input_shape)
    if key not in _REFERENCE:
        _REFERENCE.clear()
        _REFERENCE[key] = load_any(job.reference, job.weights, job.unsafe, job.input_shape)
    return _REFERENCE[key]


def model_drift(reference: Any, model: Any, seed: int = 0) -> dict[str, dict]:
    """Per kernel layer, ``reportgen compare``'s drift of ``model`` from ``reference`` (two keras.Models):
    ``relative_l2_change`` = ||W - W_ref|| / ||W_ref|| (None for NaN/Inf), ``std_ratio`` and
    ``bias_relative_l2_change``. UserError when the architectures differ."""
    import numpy as np

    from reportgen.compare import check_same_architecture, drift

    try:
        matched = check_same_architecture(reference, model, "the first model", "this model")
    except UserError as exc:
        detail = str(exc).removeprefix("compare: ").split("; compare two versions")[0]
        raise UserError(f"{ARCHITECTURES_DIFFER}: {detail}") from None
    rng = np.random.default_rng(seed)
    keep = ("relative_l2_change", "std_ratio", "bias_relative_l2_change")
    out = {}
    for path, la, lb in matched:
        d = drift(la, lb, rng)
        out[path] = {k: d[k] for k in keep}
    return out


def run_one(job: Job) -> dict:
    """Write one model's report folder and return its index row (plus ``drift`` against the first model).

    Runs in this process, a spawned worker or a Ray task. Every failure
    becomes the row's one-line ``error``; only an interrupt escapes.
    """
    start = time.perf_counter()
    worker = {"host": socket.gethostname(), "pid": os.getpid()}
    try:
        from reportgen.api import Report

        report = Report(job.spec, name=job.name, weights=job.weights, unsafe=job.unsafe,
                        input_shape=job.input_shape, options=job.options)
        report.to_folder(job.out, job.formats)
        data = report.json
        loaded = report.loaded
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # UserError or anything else: this model's row says it, the others go on
        return _failed(job, one_line(exc), round(time.perf_counter() - start, 3), worker)
    row = {"index": job.index, "spec": job.spec, **entry_from_report(job.name, data, job.formats)}
    row["source"] = row["source"] or loaded.source
    if row["total_params"] is None:
        row["total_params"] = int(loaded.model.count_params())
    if not row["section_errors"] and job.options.fail_on:
        from reportgen.analyses.findings import exceeds

        if exceeds(data.get("findings", []), job.options.fail_on):
            row["exit_status"] = 1
    row["drift"], row["drift_error"] = None, None
    if job.reference is not None:
        try:
            if job.index == 0:
                key = (job.reference, job.weights, job.unsafe, job.input_shape)
                _REFERENCE.clear()
                _REFERENCE[key] = loaded
            row["drift"] = model_drift(_reference(job).model, loaded.model, job.options.seed)
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            row["drift_error"] = one_line(exc)
    del report, loaded
    row["seconds"] = round(time.perf_counter() - start, 3)
    row["worker"] = worker
    return row


# --- executors ------------------------------------------------------------------------------

def run_jobs(jobs: Sequence[Job], *, executor: str = "process", workers: int | None = None,
             ray_address: str | None = None, on_done: Callable[[dict], None] | None = None) -> list[dict]:
    """Run the jobs and return their rows in job order; ``on_done`` sees each row as it finishes."""
    done = on_done or (lambda row: None)
    if executor == "ray":
        rows = _run_ray(jobs, ray_address, workers, done)
    elif executor != "process":
        raise UserError(f"unknown executor '{executor}'; choose from {', '.join(EXECUTORS)}")
    elif (workers or 1) > 1 and len(jobs) > 1:
        rows = _run_processes(jobs, min(workers or 1, len(jobs)), done)
    else:
        rows = []
        with _InterruptKept() as interrupt:
            for job in jobs:
                rows.append(run_one(job))
                done(rows[-1])
                interrupt.check()
    return sorted(rows, key=lambda r: r["index"])


def _run_processes(jobs: Sequence[Job], workers: int, done: Callable[[dict], None]) -> list[dict]:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    rows = []
    seen: set = set()
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_worker_signals)
    futures: dict = {}
    try:
        with _sigint_ignored():  # the workers start with Ctrl-C ignored (from fork on): the parent alone handles it
            for job in jobs:
                futures[pool.submit(_run_in_worker, job)] = job
        for future in as_completed(futures):
            job = futures[future]
            seen.add(future)
            try:
                row = future.result()
            except Exception as exc:  # the worker process died (out of memory, a crash in native code)
                row = _failed(job, f"the worker process ended before the report was written ({one_line(exc)})")
            rows.append(row)
            done(row)
    except BaseException:
        # Interrupted: the reports already back count as finished; the workers still at one are stopped
        # (their temporary folders removed), so that no report appears after the run has said it is over.
        processes = list((getattr(pool, "_processes", None) or {}).values())  # shutdown forgets them
        pool.shutdown(wait=False, cancel_futures=True)
        for future, job in futures.items():
            if future not in seen and future.done() and not future.cancelled() and future.exception() is None:
                seen.add(future)
                rows.append(future.result())
                done(rows[-1])
        _stop_workers(processes)  # then interrupted() tidies their report folders
        raise
    pool.shutdown(wait=True)
    return rows


class _InterruptKept:
    """Ctrl-C that lands in a finaliser (a ``__del__``, a weakref callback: Keras and TensorFlow have
    many) is "ignored" by Python, with a traceback on stderr. While models run one after the other in
    this process, such an interrupt is kept, quietly, and raised once the current model is done."""

    def __enter__(self) -> "_InterruptKept":
        import sys

        self.pending = False
        self.previous = sys.unraisablehook

        def hook(unraisable: Any) -> None:
            if isinstance(unraisable.exc_value, KeyboardInterrupt) or (
                    unraisable.exc_type is not None and issubclass(unraisable.exc_type, KeyboardInterrupt)):
                self.pending = True
            else:
                self.previous(unraisable)

        sys.unraisablehook = hook
        return self

    def check(self) -> None:
        if self.pending:
            self.pending = False
            raise KeyboardInterrupt

    def __exit__(self, *exc: Any) -> None:
        import sys

        sys.unraisablehook = self.previous


class _sigint_ignored:
    """SIGINT ignored while processes are started here (a no-op outside the main thread)."""

    def __enter__(self) -> None:
        import signal

        try:
            self.old = signal.signal(signal.SIGINT, signal.SIG_IGN)
        except ValueError:  # not the main thread: signals are not ours to change
            self.old = None

    def __exit__(self, *exc: Any) -> None:
        import signal

        if self.old is not None:
            signal.signal(signal.SIGINT, self.old)


def _worker_signals() -> None:
    """A worker's signals: Ctrl-C is the parent's (ignored here); SIGTERM from the parent ends the
    report being written cleanly (render.write_report removes its temporary folder) and the process."""
    import signal
    import sys

    def stop(signum: int, frame: Any) -> None:
        _STOPPING.append(128 + signum)
        raise SystemExit(128 + signum)

    previous = sys.unraisablehook

    def hook(unraisable: Any) -> None:  # the stop landed in a finaliser: kept, not printed (_run_in_worker)
        if not (unraisable.exc_type is not None and issubclass(unraisable.exc_type, (SystemExit, KeyboardInterrupt))):
            previous(unraisable)

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, stop)
    sys.unraisablehook = hook


_STOPPING: list[int] = []  # in a worker: the parent asked it to stop (SIGTERM)


def _exit_worker(code: int) -> None:
    try:
        from multiprocessing import util

        util._exit_function()  # what a worker's exit runs (releases tqdm's lock: no "leaked semaphore")
    finally:
        os._exit(code)


def _run_in_worker(job: Job) -> dict:
    """:func:`run_one` in a worker process; stopped by the parent (SIGTERM), it exits quietly."""
    try:
        row = run_one(job)
    except SystemExit as exc:  # the pool would catch it and wait for more work: end the process here
        _exit_worker(exc.code if isinstance(exc.code, int) else 1)
    if _STOPPING:  # the stop was swallowed by a finaliser: the report is whole, the process ends now
        _exit_worker(_STOPPING[0])
    return row


def _stop_workers(processes: Sequence[Any], grace: float = 15.0) -> None:
    """End a process pool's workers: SIGTERM (a clean stop), then SIGKILL after ``grace`` seconds."""
    processes = [p for p in processes if p is not None]
    for p in processes:
        try:
            if p.is_alive():
                p.terminate()
        except (OSError, ValueError, AttributeError):
            pass
    deadline = time.monotonic() + grace
    for p in processes:
        try:
            p.join(max(0.0, deadline - time.monotonic()))
            if p.is_alive():
                p.kill()
                p.join(5)
        except (OSError, ValueError, AttributeError, AssertionError):
            pass


def _sweep(out: str | os.PathLike, names: Sequence[str]) -> None:
    """Remove what a stopped worker may have left of these reports' folders: a temporary folder
    (``.NAME.tmp-*``), and an earlier report moved aside (``.NAME.old-*``) is put back in place."""
    import shutil

    from reportgen.names import folder_name

    out = Path(out)
    if not out.is_dir():
        return
    for name in names:
        folder = folder_name(name)
        final = out / folder
        for tmp in out.glob(glob.escape(f".{folder}.tmp-") + "*"):
            shutil.rmtree(tmp, ignore_errors=True)
        for old in out.glob(glob.escape(f".{folder}.old-") + "*"):
            try:
                if final.exists():
                    shutil.rmtree(old, ignore_errors=True)
                else:
                    os.replace(old, final)
            except OSError:
                pass


def _absolute(job: Job) -> Job:
    """Paths made absolute for Ray workers, whose working directory is not ours (a cluster's
    nodes must see them under the same names: a shared file system)."""
    def fix(p: str | None) -> str | None:
        return os.path.abspath(p) if p and os.path.exists(p) else p

    o = job.options
    options = replace(o, images=tuple(fix(p) for p in o.images), image_dirs=tuple(fix(p) for p in o.image_dirs),
                      class_names=fix(o.class_names), config=fix(o.config),
                      inputs=tuple(f"{k}={fix(v)}" if "=" in i else i for i in o.inputs
                                   for k, _, v in [i.partition("=")]))
    return replace(job, spec=fix(job.spec), out=os.path.abspath(job.out), weights=fix(job.weights),
                   reference=fix(job.reference), options=options)


def _run_ray(jobs: Sequence[Job], address: str | None, workers: int | None, done: Callable[[dict], None]) -> list[dict]:
    try:
        import ray
    except ImportError:
        raise UserError(RAY_MISSING) from None
    address = address or os.environ.get("RAY_ADDRESS") or None  # Ray's own variable names a cluster too
    started = False
    if not ray.is_initialized():
        import logging

        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "ignore_reinit_error": True,
                                  "logging_level": logging.ERROR}  # stderr carries our one-line messages
        try:
            if address:
                backend = os.environ.get("KERAS_BACKEND")
                if backend:
                    kwargs["runtime_env"] = {"env_vars": {"KERAS_BACKEND": backend}}
                ray.init(address=address, **kwargs)
            else:
                ray.init(num_cpus=workers or os.cpu_count() or 1, **kwargs)
        except Exception as exc:
            where = f"the Ray cluster at '{address}'" if address else "a local Ray instance"
            raise UserError(f"could not start or reach {where} ({one_line(exc)}); check --ray-address") from None
        started = True
    task = ray.remote(num_cpus=1)(run_one)
    queue = [_absolute(j) for j in jobs]
    limit = workers or len(queue)
    pending: dict = {}
    rows = []
    try:
        while queue or pending:
            while queue and len(pending) < limit:
                job = queue.pop(0)
                pending[task.remote(job)] = job
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                job = pending.pop(ref)
                try:
                    row = ray.get(ref)
                except Exception as exc:  # the task's worker died, or the node went away
                    row = _failed(job, f"the Ray task ended before the report was written ({one_line(exc)})")
                rows.append(row)
                done(row)
    except BaseException:
        for ref in pending:
            try:
                ray.cancel(ref, force=True)
            except Exception:
                pass
        raise
    finally:
        if started:
            ray.shutdown()
    return rows


# --- the run ---------------------------------------------------------------------------------

def make_jobs(specs: Sequence[str], out: str | os.PathLike, formats: Sequence[str], options: Options, *,
              weights: str = "imagenet", unsafe: bool = False, input_shape: Sequence[int] | None = None,
              quiet_workers: bool = False) -> list[Job]:
    names = assign_names(specs)
    reference = specs[0] if len(specs) > 1 else None
    opts = replace(options, quiet=True) if quiet_workers else options
    shape = tuple(input_shape) if input_shape is not None else None
    return [Job(i, spec, name, str(out), tuple(formats), opts, weights, unsafe, shape, reference)
            for i, (spec, name) in enumerate(zip(specs, names))]


def run_batch(specs: Sequence[str], out: str | os.PathLike = "reports",
              formats: Sequence[str] = ("html", "pdf", "json"), options: Options | None = None, *,
              weights: str = "imagenet", unsafe: bool = False, input_shape: Sequence[int] | None = None,
              jobs: int | None = None, executor: str = "process", ray_address: str | None = None,
              on_done: Callable[[dict], None] | None = None) -> dict:
    """Write one report per model spec and ``out/index.{html,json}``; returns index.json's dict.

    ``specs`` are model specs as ``reportgen MODEL`` takes them (expand folders
    and globs first with :func:`expand`). The rows (``result["models"]``) are in
    ``specs`` order; ``result["exit_status"]`` is the command's exit status.
    """
    options = options or Options(quiet=True)
    if not specs:
        raise UserError("no models given")
    from reportgen import render

    render.check_out_dir(Path(out))
    parallel = executor == "ray" or ((jobs or 1) > 1 and len(specs) > 1)
    job_list = make_jobs(specs, out, formats, options, weights=weights, unsafe=unsafe, input_shape=input_shape,
                         quiet_workers=parallel)
    collected: list[dict] = []

    def seen(row: dict) -> None:
        collected.append(row)
        if on_done is not None:
            on_done(row)

    started = time.time()
    try:
        return _finish_batch(out, options, unsafe, input_shape,
                             run_jobs(job_list, executor=executor, workers=jobs, ray_address=ray_address,
                                      on_done=seen))
    except KeyboardInterrupt:
        raise interrupted(Path(out), job_list, collected, started) from None
    finally:
        _REFERENCE.clear()  # the first model, held in this process by a sequential run


class Interrupted(KeyboardInterrupt):
    """A run of several models stopped by Ctrl-C: which models finished, which did not, and the
    index of the finished ones (None when none finished, or it could not be written: ``index_error``)."""

    def __init__(self, finished: list[str], unfinished: list[str], index: Path | None,
                 index_error: str | None = None) -> None:
        super().__init__(f"{len(finished)} of {len(finished) + len(unfinished)} models finished")
        self.finished, self.unfinished, self.index = finished, unfinished, index
        self.index_error = index_error


def interrupted(out: Path, jobs: Sequence[Job], rows: Sequence[dict], started: float | None = None) -> Interrupted:
    """Write ``out/index.{html,json}`` of the reports that finished before an interrupt (none
    finished: nothing is written, an earlier index stays) and say which models did and did not.

    Call it once no worker runs any more. A report folder a worker put in place after ``started``
    whose row never came back (the interrupt fell between the two) counts as finished, read from
    its report.json; what a stopped worker left of the others' folders is removed (:func:`_sweep`).
    """
    rows = {r["index"]: r for r in rows}
    for job in jobs:
        if job.index not in rows and started is not None:
            row = _row_from_folder(job, started)
            if row is not None:
                rows[job.index] = row
    _sweep(out, [j.name for j in jobs if j.index not in rows])
    rows = sorted(rows.values(), key=lambda r: r["index"])
    done = {r["index"] for r in rows}
    finished = [j.name for j in jobs if j.index in done]
    unfinished = [j.name for j in jobs if j.index not in done]
    index, why = None, None
    if rows:
        try:
            if rows[0]["index"] == 0:
                drift, note = drift_table([r["name"] for r in rows],
                                          [None if r["status"] == "failed" else (r["drift"], r["drift_error"])
                                           for r in rows])
            else:
                drift, note = None, (f"No weight drift: the run was interrupted before the first model, "
                                     f"{jobs[0].name}, which the others are compared with, finished.")
            data = index_data(rows, drift, note, title=f"{len(rows)} of {len(jobs)} models (interrupted)")
            data["exit_status"] = 130
            data["interrupted"] = True
            data["not_finished"] = unfinished
            index = write_index(out, data)[0]
        except KeyboardInterrupt:  # interrupted again: the reports are there, the index is not
            why = "interrupted again"
        except Exception as exc:
            why = one_line(exc)
    return Interrupted(finished, unfinished, index, why)


def _row_from_folder(job: Job, started: float) -> dict | None:
    """The index row of ``job``'s report folder when this run wrote it (every format there, written
    after ``started``), else None."""
    from reportgen.names import folder_name

    folder = Path(job.out) / folder_name(job.name)
    try:
        files = [folder / f"report.{fmt}" for fmt in job.formats]
        if not files or not all(f.is_file() and f.stat().st_mtime >= started for f in files):
            return None
        data = json.loads((folder / "report.json").read_text(encoding="utf-8")) if "json" in job.formats else {}
    except (OSError, ValueError):
        return None
    row = {"index": job.index, "spec": job.spec, **entry_from_report(job.name, data, job.formats)}
    row["source"] = row["source"] or job.spec
    if not row["section_errors"] and job.options.fail_on:  # --fail-on, without importing the findings (Keras)
        levels = ("error",) if job.options.fail_on == "error" else ("warning", "error")
        if any(f.get("severity") in levels for f in data.get("findings") or []):
            row["exit_status"] = 1
    row.update(drift=None, drift_error="interrupted before its weight drift came back", seconds=None,
               worker=None)
    return row


def _finish_batch(out: str | os.PathLike, options: Options, unsafe: bool,
                  input_shape: Sequence[int] | None, rows: list[dict]) -> dict:
    """The drift across the finished rows and ``out/index.{html,json}``; returns index.json's dict."""
    drift, note = drift_table([r["name"] for r in rows],
                              [None if r["status"] == "failed" else (r["drift"], r["drift_error"]) for r in rows])
    ran = [r for r in rows if r["status"] != "failed"]
    if rows[0]["status"] == "failed" and len(ran) >= 2 and all(is_model_file(r["spec"]) for r in ran):
        # The first model did not load: compare with the first one that did, reading the files here.
        drift, note = drift_from_checkpoints([r["name"] for r in ran], [Path(r["spec"]) for r in ran], options.seed,
                                             unsafe, tuple(input_shape) if input_shape is not None else None)
    data = index_data(rows, drift, note, title=f"{len(rows)} models")
    write_index(Path(out), data)
    return data


def exit_status(rows: Sequence[dict]) -> int:
    """2 when a model failed; else 3 when a report has a failed section; else 1 when --fail-on
    tripped for a model; else 0."""
    statuses = {r["exit_status"] for r in rows}
    for status in (2, 3, 1):
        if status in statuses:
            return status
    return 0


def drift_table(names: Sequence[str],
                per_model: Sequence[tuple[dict | None, str | None] | None]) -> tuple[dict | None, str | None]:
    """The drift block of index.json from each model's (drift, error) (None: the model failed).

    Drift is shown only when every model that ran is a checkpoint of the first
    model's architecture; otherwise the note says why not.
    """
    if len(names) < 2:
        return None, None
    if per_model[0] is None:
        return None, f"No weight drift: the first model, {names[0]}, which the others are compared with, failed."
    ran = [(n, p) for n, p in zip(names, per_model) if p is not None]
    if len(ran) < 2:
        return None, "No weight drift: fewer than two models ran."
    for name, (d, error) in ran:
        if d is None:
            return None, f"No weight drift: {name}: {error or 'not computed'}"
    layers = list(ran[0][1][0])
    table: dict = {
        "reference": names[0],
        "metric": "relative L2 change ||W_k - W_0|| / ||W_0|| of each kernel layer against the first model",
        "models": [n for n, _ in ran],
        "layers": layers,
    }
    for key in ("relative_l2_change", "std_ratio", "bias_relative_l2_change"):
        table[key] = {p: [d[p][key] for _, (d, _) in ran] for p in layers}
    return table, None


# --- the index ---------------------------------------------------------------------------------

ROW_KEYS = ("name", "source", "spec", "status", "exit_status", "error", "link", "formats", "total_params",
            "findings_summary", "section_errors", "accuracy", "images", "generated", "seconds", "worker",
            "training")


def index_data(rows: Sequence[dict], drift: dict | None, note: str | None, title: str) -> dict:
    """index.json: the rows (in order), a summary, the drift block and the run's exit status."""
    import reportgen
    from reportgen.analyses.overview import generated_at

    models = [{k: r.get(k) for k in ROW_KEYS if k in r} for r in rows]
    counts = {s: sum(r["status"] == s for r in rows) for s in ("written", "flagged", "failed")}
    return {
        "reportgen_version": reportgen.__version__,
        "generated": generated_at(),
        "kind": "index",
        "title": title,
        "summary": {"models": len(rows), **counts},
        "exit_status": exit_status(rows),
        "models": models,
        "drift": drift,
        "drift_note": note,
    }


def drift_figure(drift: dict) -> str:
    """The drift trend: one line per layer (up to 12 layers), else a heatmap layer x checkpoint."""
    import matplotlib.pyplot as plt
    import numpy as np

    from reportgen.plots import fig_to_uri

    names, layers = drift["models"], drift["layers"]
    values = np.array([[np.nan if v is None else float(v) for v in drift["relative_l2_change"][p]] for p in layers],
                      dtype=np.float64).reshape(len(layers), len(names))
    x = np.arange(len(names))
    step = max(1, -(-len(names) // 20))  # at most 20 checkpoint labels
    if len(layers) <= 12:
        fig, ax = plt.subplots(figsize=(6.8, 3.4))
        for path, row in zip(layers, values):
            ax.plot(x, row, marker="o", markersize=3, linewidth=1.2, label=path)
        ax.set_ylabel("relative L2 change vs. the first", fontsize=8)
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=6.5, ncol=2 if len(layers) > 6 else 1, frameon=False, loc="best")
        ax.grid(alpha=0.3)
    else:
        fig, ax = plt.subplots(figsize=(6.8, min(9.0, 1.2 + 0.16 * len(layers))))
        im = ax.imshow(values, aspect="auto", cmap="viridis", interpolation="nearest")
        ystep = max(1, -(-len(layers) // 50))
        ax.set_yticks(np.arange(0, len(layers), ystep))
        ax.set_yticklabels([layers[i][-32:] for i in range(0, len(layers), ystep)], fontsize=5.5)
        cb = fig.colorbar(im, ax=ax, fraction=0.04)
        cb.set_label("relative L2 change vs. the first", fontsize=7)
        cb.ax.tick_params(labelsize=6.5)
    ax.set_xticks(x[::step])
    ax.set_xticklabels([names[i][-24:] for i in range(0, len(names), step)], rotation=45, ha="right", fontsize=6.5)
    ax.tick_params(axis="y", labelsize=7)
    ax.set_title(f"Weight drift of each kernel layer against {names[0][-40:]}", fontsize=9)
    fig.tight_layout()
    return fig_to_uri(fig, dpi=110)


def _status_text(row: dict) -> str:
    if row["status"] == "failed":
        return row.get("error") or "failed"
    if row.get("section_errors"):
        return "section(s) failed: " + ", ".join(f"{e['section']} ({e.get('error')}: {e.get('message')})"
                                                 for e in row["section_errors"])
    if row.get("exit_status") == 1:
        return "findings at or above --fail-on"
    return "written"


def render_index(data: dict, where: str) -> str:
    """index.html from index.json's dict (links relative to the index's folder)."""
    from reportgen import render

    rows = []
    for m in data["models"]:
        training = m.get("training") or {}
        logs = training.get("logs") or {}
        rows.append({**m, "href": quote(m["link"]) if m.get("link") else None, "status_text": _status_text(m),
                     "epoch": training.get("epoch"),
                     "logs_text": ", ".join(f"{k} {render._fmt(v)}" for k, v in logs.items())})
    drift = data.get("drift")
    drift_rows = []
    if drift:
        for p in drift["layers"]:
            drift_rows.append({"path": p, "values": drift["relative_l2_change"][p]})
    variables = {
        "reportgen_version": data["reportgen_version"], "generated": data["generated"],
        "model_name": data["title"], "model_source": where,
        "findings_by_anchor": {}, "section_errors": [],
        "rows": rows, "summary": data["summary"], "exit_status": data["exit_status"],
        "has_accuracy": any(m.get("accuracy") is not None for m in data["models"]),
        "has_training": any(m.get("training") for m in data["models"]),
        "drift": drift, "drift_rows": drift_rows, "drift_note": data.get("drift_note"),
        "drift_figure": drift_figure(drift) if drift else None,
    }
    return render.render_html("index.html.j2", variables)


def _write_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would make the index private
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_index(out: Path, data: dict) -> tuple[Path, Path]:
    """Write ``out/index.json`` and ``out/index.html``, each atomically; returns their paths."""
    from reportgen.render import to_jsonable

    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot write to --out '{out}' ({exc.strerror}); "
                        "choose a writable folder with --out") from None
    data = to_jsonable(data)
    html = render_index(data, str(out))
    _write_atomically(out / "index.json", json.dumps(data, indent=1, allow_nan=False) + "\n")
    _write_atomically(out / "index.html", html)
    return out / "index.html", out / "index.json"


# --- the index of report folders written earlier -------------------------------------------------

def report_folders(root: Path) -> list[Path]:
    """The sub-folders of ``root`` that hold a report.json, in natural order of their names."""
    return sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
                   and (p / "report.json").is_file()), key=lambda p: natural_key(p.name))


def checkpoint_of(folder: Path, data: dict) -> Path | None:
    """The model file behind a report folder: ``<folder>/<name>.keras`` (ReportCallback's), a
    single model file in the folder, or the report's source file if its SHA-256 still matches."""
    own = folder / f"{folder.name}.keras"
    if own.is_file():
        return own
    inside = [p for p in folder.iterdir() if is_model_file(p)]
    if len(inside) == 1:
        return inside[0]
    model = data.get("model") or {}
    source, digest = model.get("source"), model.get("sha256")
    if source and digest and Path(source).is_file() and is_model_file(source):
        from reportgen.loading import sha256

        if sha256(Path(source)) == digest:
            return Path(source)
    return None


def drift_from_checkpoints(names: Sequence[str], checkpoints: Sequence[Path | None], seed: int = 0,
                           unsafe: bool = False, input_shape: tuple[int, ...] | None = None
                           ) -> tuple[dict | None, str | None]:
    """The drift block from model files, loaded one at a time beside the first (Keras safe mode on
    unless ``unsafe``)."""
    if len(names) < 2:
        return None, None
    missing = [n for n, c in zip(names, checkpoints) if c is None]
    if missing:
        shown = ", ".join(missing[:3]) + (" ..." if len(missing) > 3 else "")
        return None, (f"No weight drift: no model file for {shown} (ReportCallback(save_model=True) saves "
                      "one beside each report; reports of model files find their source by its SHA-256).")
    from reportgen.loading import load

    try:
        reference = load(str(checkpoints[0]), unsafe=unsafe, input_shape=input_shape)
    except UserError as exc:
        return None, f"No weight drift: {names[0]}: {exc}"
    per_model: list = []
    for i, path in enumerate(checkpoints):
        try:
            model = reference if i == 0 else load(str(path), unsafe=unsafe, input_shape=input_shape)
            per_model.append((model_drift(reference.model, model.model, seed), None))
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            per_model.append((None, one_line(exc)))
        model = None
    return drift_table(list(names), per_model)


def index_folders(root: str | os.PathLike, folders: Sequence[Path] | None = None, drift: bool = True) -> dict:
    """Build ``root/index.{html,json}`` from report folders written earlier (``reportgen index DIR``).

    ``folders``: these report folders (inside ``root``), in this order; default:
    every sub-folder of ``root`` with a report.json, natural order. Nothing is
    recomputed: the rows come from each report.json (and training.json, written
    by ReportCallback); only the weight drift loads the models' files.
    """
    root = Path(root)
    if folders is None:
        if not root.is_dir():
            raise UserError(f"'{root}' is not a folder; give the --out folder of earlier reportgen runs")
        folders = report_folders(root)
        if not folders:
            raise UserError(f"'{root}' holds no report folders (sub-folders with a report.json); write reports "
                            "there first, with json among the --format(s)")
    rows, checkpoints = [], []
    for folder in folders:
        folder = Path(folder)
        try:
            data = json.loads((folder / "report.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise UserError(f"cannot read '{folder / 'report.json'}' ({one_line(exc)}); re-write that report") from None
        present = [f for f in ("html", "pdf", "json") if (folder / f"report.{f}").is_file()]
        row = entry_from_report(folder.name, data, present)
        training = folder / TRAINING_FILE
        if training.is_file():
            try:
                row["training"] = json.loads(training.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                pass
        rows.append(row)
        checkpoints.append(checkpoint_of(folder, data) if drift else None)
    names = [r["name"] for r in rows]
    table, note = drift_from_checkpoints(names, checkpoints) if drift else (None, None)
    data = index_data(rows, table, note, title=f"{len(rows)} reports")
    data["exit_status"] = None  # an index of earlier reports, not a run
    write_index(root, data)
    return data
