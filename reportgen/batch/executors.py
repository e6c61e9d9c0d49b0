"""Where the jobs run: one after the other in this process, ``--jobs N`` worker processes
(``ProcessPoolExecutor``, "spawn"), or ``--executor ray`` tasks; Ctrl-C and stopped workers."""

from __future__ import annotations

import os
import time
from dataclasses import replace
from typing import Any, Callable, Sequence

from reportgen.batch.jobs import Job, _failed, run_one
from reportgen.errors import UserError, one_line

EXECUTORS = ("process", "ray")
RAY_MISSING = "--executor ray needs Ray, which is not installed; pip install 'reportgen[ray]'"


def run_jobs(
    jobs: Sequence[Job],
    *,
    executor: str = "process",
    workers: int | None = None,
    ray_address: str | None = None,
    on_done: Callable[[dict], None] | None = None,
) -> list[dict]:
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


def _quiet_resource_tracker() -> None:
    """Keep multiprocessing's resource tracker from printing "leaked semaphore" warnings after a Ctrl-C.

    Workers stopped mid-report leave the semaphores their libraries made (joblib's loky, imported with
    scikit-learn); the tracker process removes them, as it should, but warns while doing so -- two lines of
    noise under the one line a Ctrl-C prints. The tracker is started with this process's environment the
    first time a pool registers a resource, so the filter goes there, before the pool exists.
    """
    import os

    quiet = "ignore::UserWarning:multiprocessing.resource_tracker"
    current = os.environ.get("PYTHONWARNINGS", "")
    if quiet not in current:
        os.environ["PYTHONWARNINGS"] = f"{current},{quiet}" if current else quiet


def _run_processes(jobs: Sequence[Job], workers: int, done: Callable[[dict], None]) -> list[dict]:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    rows = []
    seen: set = set()
    _quiet_resource_tracker()
    pool = ProcessPoolExecutor(
        max_workers=workers, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_signals
    )
    futures: dict = {}
    try:
        with (
            _sigint_ignored()
        ):  # the workers start with Ctrl-C ignored (from fork on): the parent alone handles it
            for job in jobs:
                futures[pool.submit(_run_in_worker, job)] = job
        for future in as_completed(futures):
            job = futures[future]
            seen.add(future)
            try:
                row = future.result()
            except Exception as exc:  # the worker process died (out of memory, a crash in native code)
                row = _failed(
                    job,
                    f"the worker process ended before the report was written ({one_line(exc, typed=True)})",
                )
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
                unraisable.exc_type is not None and issubclass(unraisable.exc_type, KeyboardInterrupt)
            ):
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
        if not (
            unraisable.exc_type is not None
            and issubclass(unraisable.exc_type, (SystemExit, KeyboardInterrupt))
        ):
            previous(unraisable)

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, stop)
    sys.unraisablehook = hook
    _die_with_parent()


def _die_with_parent() -> None:
    """Linux: SIGTERM to this worker when the parent dies, even by SIGKILL, so that no orphan goes on
    writing reports after the run has ended (elsewhere the parent's own SIGTERM handler stops the workers)."""
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent died before the call
        os.kill(os.getpid(), signal.SIGTERM)


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


def _absolute(job: Job) -> Job:
    """Paths made absolute for Ray workers, whose working directory is not ours (a cluster's
    nodes must see them under the same names: a shared file system)."""

    def fix(p: str | None) -> str | None:
        return os.path.abspath(p) if p and os.path.exists(p) else p

    o = job.options
    options = replace(
        o,
        images=tuple(fix(p) for p in o.images),
        image_dirs=tuple(fix(p) for p in o.image_dirs),
        class_names=fix(o.class_names),
        config=fix(o.config),
        inputs=tuple(f"{k}={fix(v)}" if "=" in i else i for i in o.inputs for k, _, v in [i.partition("=")]),
    )
    return replace(
        job,
        spec=fix(job.spec),
        out=os.path.abspath(job.out),
        weights=fix(job.weights),
        reference=fix(job.reference),
        options=options,
    )


def _run_ray(
    jobs: Sequence[Job], address: str | None, workers: int | None, done: Callable[[dict], None]
) -> list[dict]:
    try:
        import ray
    except ImportError:
        raise UserError(RAY_MISSING) from None
    address = address or os.environ.get("RAY_ADDRESS") or None  # Ray's own variable names a cluster too
    started = False
    if not ray.is_initialized():
        import logging

        kwargs: dict[str, Any] = {
            "include_dashboard": False,
            "log_to_driver": False,
            "ignore_reinit_error": True,
            "logging_level": logging.ERROR,
        }  # stderr carries our one-line messages
        import signal

        # ray.init installs its own SIGTERM handler (exit 1) and a C++ failure handler (six lines on stderr):
        # ours, the one-line stop of the whole run with exit 143 (reportgen.cli), is put back after it.
        ours = {
            sig: signal.getsignal(sig) for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)) if sig
        }
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
            raise UserError(
                f"could not start or reach {where} ({one_line(exc, typed=True)}); check --ray-address"
            ) from None
        finally:
            for sig, handler in ours.items():
                try:
                    signal.signal(sig, handler)
                except (
                    ValueError,
                    OSError,
                    TypeError,
                ):  # not the main thread, or a handler set outside Python
                    pass
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
                    row = _failed(
                        job, f"the Ray task ended before the report was written ({one_line(exc, typed=True)})"
                    )
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
