"""A run of many models: the jobs, run by an executor, then the drift and the index; an interrupted
run's index of the reports that finished (:class:`Interrupted`)."""

from __future__ import annotations

import glob
import json
import os
import time
from pathlib import Path
from typing import Callable, Sequence

from reportgen.batch.drift import drift_from_checkpoints, drift_table
from reportgen.batch.executors import run_jobs
from reportgen.batch.index import index_data, write_index
from reportgen.batch.jobs import _REFERENCE, Job, make_jobs
from reportgen.batch.rows import entry_from_report
from reportgen.batch.specs import is_model_file
from reportgen.context import Options
from reportgen.errors import UserError, interrupt_status, one_line


def run_batch(
    specs: Sequence[str],
    out: str | os.PathLike = "reports",
    formats: Sequence[str] = ("html", "pdf", "json"),
    options: Options | None = None,
    *,
    weights: str = "imagenet",
    unsafe: bool = False,
    input_shape: Sequence[int] | None = None,
    jobs: int | None = None,
    executor: str = "process",
    ray_address: str | None = None,
    on_done: Callable[[dict], None] | None = None,
) -> dict:
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
    job_list = make_jobs(
        specs,
        out,
        formats,
        options,
        weights=weights,
        unsafe=unsafe,
        input_shape=input_shape,
        quiet_workers=parallel,
    )
    collected: list[dict] = []

    def seen(row: dict) -> None:
        collected.append(row)
        if on_done is not None:
            on_done(row)

    started = time.time()
    try:
        return _finish_batch(
            out,
            options,
            unsafe,
            input_shape,
            run_jobs(job_list, executor=executor, workers=jobs, ray_address=ray_address, on_done=seen),
        )
    except KeyboardInterrupt:
        raise interrupted(Path(out), job_list, collected, started) from None
    finally:
        _REFERENCE.clear()  # the first model, held in this process by a sequential run


def _finish_batch(
    out: str | os.PathLike,
    options: Options,
    unsafe: bool,
    input_shape: Sequence[int] | None,
    rows: list[dict],
) -> dict:
    """The drift across the finished rows and ``out/index.{html,json}``; returns index.json's dict."""
    drift, note = drift_table(
        [r["name"] for r in rows],
        [None if r["status"] == "failed" else (r["drift"], r["drift_error"]) for r in rows],
    )
    ran = [r for r in rows if r["status"] != "failed"]
    if rows[0]["status"] == "failed" and len(ran) >= 2 and all(is_model_file(r["spec"]) for r in ran):
        # The first model did not load: compare with the first one that did, reading the files here.
        drift, note = drift_from_checkpoints(
            [r["name"] for r in ran],
            [Path(r["spec"]) for r in ran],
            options.seed,
            unsafe,
            tuple(input_shape) if input_shape is not None else None,
        )
    data = index_data(rows, drift, note, title=f"{len(rows)} models")
    write_index(Path(out), data)
    return data


class Interrupted(KeyboardInterrupt):
    """A run of several models stopped by Ctrl-C: which models finished, which did not, and the
    index of the finished ones (None when none finished, or it could not be written: ``index_error``)."""

    def __init__(
        self, finished: list[str], unfinished: list[str], index: Path | None, index_error: str | None = None
    ) -> None:
        super().__init__(f"{len(finished)} of {len(finished) + len(unfinished)} models finished")
        self.finished, self.unfinished, self.index = finished, unfinished, index
        self.index_error = index_error


def interrupted(
    out: Path, jobs: Sequence[Job], rows: Sequence[dict], started: float | None = None
) -> Interrupted:
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
                drift, note = drift_table(
                    [r["name"] for r in rows],
                    [None if r["status"] == "failed" else (r["drift"], r["drift_error"]) for r in rows],
                )
            else:
                drift, note = (
                    None,
                    (
                        f"No weight drift: the run was interrupted before the first model, "
                        f"{jobs[0].name}, which the others are compared with, finished."
                    ),
                )
            data = index_data(rows, drift, note, title=f"{len(rows)} of {len(jobs)} models (interrupted)")
            data["exit_status"] = interrupt_status()  # 130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP
            data["interrupted"] = True
            data["not_finished"] = unfinished
            index = write_index(out, data)[0]
        except KeyboardInterrupt:  # interrupted again: the reports are there, the index is not
            why = "interrupted again"
        except Exception as exc:
            why = one_line(exc, typed=True)
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
        data = (
            json.loads((folder / "report.json").read_text(encoding="utf-8")) if "json" in job.formats else {}
        )
    except (OSError, ValueError):
        return None
    row = {
        "index": job.index,
        "spec": job.spec,
        **entry_from_report(job.name, data, job.formats, job.options.fail_on),
    }  # Keras-free: the one rule
    row["source"] = row["source"] or job.spec
    row.update(
        drift=None, drift_error="interrupted before its weight drift came back", seconds=None, worker=None
    )
    return row


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
