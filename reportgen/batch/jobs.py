"""One model's job: what a worker needs to write one report (strings and plain options, never a
model), and :func:`run_one`, which writes it in whichever process and returns its index row."""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, replace
from typing import Any, Sequence

from reportgen.batch.drift import model_drift
from reportgen.batch.rows import entry_from_report
from reportgen.batch.specs import assign_names
from reportgen.context import Options
from reportgen.errors import one_line


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


def make_jobs(
    specs: Sequence[str],
    out: str | os.PathLike,
    formats: Sequence[str],
    options: Options,
    *,
    weights: str = "imagenet",
    unsafe: bool = False,
    input_shape: Sequence[int] | None = None,
    quiet_workers: bool = False,
) -> list[Job]:
    names = assign_names(specs)
    reference = specs[0] if len(specs) > 1 else None
    opts = replace(options, quiet=True) if quiet_workers else options
    shape = tuple(input_shape) if input_shape is not None else None
    return [
        Job(i, spec, name, str(out), tuple(formats), opts, weights, unsafe, shape, reference)
        for i, (spec, name) in enumerate(zip(specs, names))
    ]


def _failed(job: Job, message: str, seconds: float | None = None, worker: dict | None = None) -> dict:
    return {
        "index": job.index,
        "name": job.name,
        "spec": job.spec,
        "source": job.spec,
        "status": "failed",
        "exit_status": 2,
        "error": message,
        "link": None,
        "formats": [],
        "total_params": None,
        "findings_summary": None,
        "section_errors": [],
        "accuracy": None,
        "images": None,
        "generated": None,
        "seconds": seconds,
        "worker": worker,
        "drift": None,
        "drift_error": None,
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


def run_one(job: Job) -> dict:
    """Write one model's report folder and return its index row (plus ``drift`` against the first model).

    Runs in this process, a spawned worker or a Ray task. Every failure
    becomes the row's one-line ``error``; only an interrupt escapes.
    """
    start = time.perf_counter()
    worker = {"host": socket.gethostname(), "pid": os.getpid()}
    try:
        from reportgen.api import Report

        report = Report(
            job.spec,
            name=job.name,
            weights=job.weights,
            unsafe=job.unsafe,
            input_shape=job.input_shape,
            options=job.options,
        )
        report.to_folder(job.out, job.formats)
        data = report.json
        loaded = report.loaded
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # UserError or anything else: this model's row says it, the others go on
        return _failed(job, one_line(exc, typed=True), round(time.perf_counter() - start, 3), worker)
    row = {
        "index": job.index,
        "spec": job.spec,
        **entry_from_report(job.name, data, job.formats, job.options.fail_on),
    }
    row["source"] = row["source"] or loaded.source
    if row["total_params"] is None:
        row["total_params"] = int(loaded.model.count_params())
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
            row["drift_error"] = one_line(exc, typed=True)
    del report, loaded
    row["seconds"] = round(time.perf_counter() - start, 3)
    row["worker"] = worker
    return row
