"""Command line: ``reportgen MODEL ...``, ``reportgen demo``, ``reportgen compare A B`` and ``reportgen index
DIR``.

Exit status of one MODEL: 0 report written; 1 report written but a finding
at or above ``--fail-on`` exists; 2 bad input (one line on stderr, nothing
written); 3 report written but a section failed (it says which, errors.log
has the traceback); 130 interrupted (nothing half-written).

Several models (``reportgen A B C``, a folder, a glob; :mod:`reportgen.batch`)
write one report each and ``OUT/index.{html,json}``; the exit status is 2
when any model failed, else 3 when any report has a failed section, else 1
when ``--fail-on`` tripped for any model, else 0. A glob that matches no
model file or a folder without one is bad input: exit 2, nothing written.
Ctrl-C: one line naming the models that finished and those that did not,
the index of the finished reports, exit 130.

A MODEL path that does not exist is answered before a backend is imported.
Every error line starts on a clean line after a progress bar (:func:`_say`).

Nothing heavy is imported until a model is to be loaded: ``--help``,
``--version`` and argument errors answer without Keras or TensorFlow.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from reportgen.names import VERSION as __version__
from reportgen import options
from reportgen.errors import UserError
from reportgen.options import FORMATS, SECTION_NAMES, Options

ALL_SECTIONS = SECTION_NAMES


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one line and exit status 2, like every other bad input."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UserError(f"{message}; see '{self.prog} --help'")


def report_parser() -> argparse.ArgumentParser:
    """The command line of ``reportgen MODEL``: every flag is a field of :class:`reportgen.Options`."""
    p = _Parser(
        prog="reportgen",
        description="Write an audit report (HTML, PDF, JSON) of a "
        "trained Keras CNN. Several models, a folder of "
        "model files or a glob write one report each and OUT/index.html, OUT/index.json. Other commands: "
        "'reportgen demo' (offline example), 'reportgen compare A B' and 'reportgen index DIR'.",
    )
    p.add_argument(
        "model",
        metavar="MODEL",
        nargs="+",
        help="a .keras or .h5 file, a keras-hub preset directory (reportgen[hub]), a keras.applications "
        "name (vgg16, resnet50, ...), or module:callable "
        "(imports and RUNS that code, as python -m would); several, a folder (its .keras/.h5/.hdf5 "
        "files, not its sub-folders') or a quoted glob ('ckpt/*.keras') for one report each and an index",
    )
    p.add_argument("--version", action="version", version=f"reportgen {__version__}")
    options.add_arguments(p)
    return p


def options_from(args: argparse.Namespace) -> Options:
    """The parsed flags as :class:`reportgen.Options` (a flag not given keeps the field's default)."""
    return options.from_namespace(args)


def cmd_report(argv: Sequence[str]) -> int:
    args = report_parser().parse_intermixed_args(argv)
    opts = options_from(args)
    from reportgen import batch, render

    if opts.ray_address and opts.executor != "ray":
        raise UserError("--ray-address needs --executor ray")
    if opts.executor == "ray":
        import importlib.util

        if importlib.util.find_spec("ray") is None:
            raise UserError(batch.RAY_MISSING)
    if batch.is_many(args.model) or opts.executor == "ray":
        return cmd_many(args.model, opts)
    _reject_missing(args.model[:1])
    render.check_out_dir(Path(opts.out))
    _check_junit(opts.junit)
    _check_inputs(opts)
    if opts.config:
        from reportgen import config

        config.load(opts.config)  # a bad thresholds file is an error even when findings don't run
    from reportgen.api import Report

    report = Report(args.model[0], options=opts)
    folder = report.to_folder(Path(opts.out), opts.formats)
    _announce(folder, opts.formats, opts.quiet)
    if opts.junit:
        from reportgen import junit

        junit.write(opts.junit, [junit.suite(folder.name, report.json, opts.fail_on)])
    return _status(folder, report.json, opts.fail_on)


def _check_inputs(opts: Options) -> None:
    """Every input file an option names, checked before any work (docs/safety.md): each --image by what can
    be known without decoding it, --class-names read (1 MB at most), each --images folder and --input file
    there and of the right kind. A refusal is one line and exit 2, with nothing written."""
    import os

    from reportgen import guard
    from reportgen.images.decode import check_image
    from reportgen.images.labels import load_class_names

    for path in opts.images:
        check_image(path)
    if opts.class_names:
        load_class_names(opts.class_names)
    for folder in opts.image_dirs:
        if guard.present(folder) and not os.path.isfile(folder):
            guard.check_folder(folder, "--images", "give a folder of images")
    for spec in opts.inputs:
        name, _, path = spec.partition("=")
        if path and guard.present(path.strip()) and not os.path.isdir(path.strip()):
            guard.check_file(
                path.strip(), f"--input {name.strip()}:", "give a .npy file saved with numpy.save"
            )
            guard.npy_declared(path.strip(), f"--input {name.strip()}:", "give a smaller example array")


def _check_junit(path: str | None) -> None:
    """``--junit FILE`` checked as ``--out`` is, before any work: not a folder, its folder writable."""
    if path:
        from reportgen.guard import check_output_file

        check_output_file(path, "--junit")


def _reject_missing(specs: Sequence[str]) -> None:
    """A MODEL that names a file that does not exist is bad input, answered before any backend is
    imported (in well under a second); with several models, before any report is written. So is a
    keras-hub preset handle (``kaggle://...``, ``hf://...``): it needs the network, which reportgen never
    uses."""
    from reportgen.names import is_remote_handle, missing_model, remote_handle_message

    handles = [s for s in specs if is_remote_handle(s)]
    if handles:
        raise UserError(remote_handle_message(handles[0]))

    missing = [s for s in specs if missing_model(s)]
    if len(missing) == 1:
        raise UserError(missing_model(missing[0]))
    if missing:
        shown = ", ".join(f"'{s}'" for s in missing[:3]) + (", ..." if len(missing) > 3 else "")
        raise UserError(
            f"{len(missing)} model files do not exist ({shown}); check the paths; nothing was written"
        )
    from reportgen.loading import check_model_file
    from reportgen.names import is_code_spec, is_model_path

    for spec in specs:  # a FIFO, /dev/zero, a symlink loop, a config bomb: refused before any work
        if is_model_path(spec) and not is_code_spec(spec):
            check_model_file(spec)


def cmd_many(models: Sequence[str], options: Options) -> int:
    """Several models: one report each (in parallel with --jobs or on Ray), then OUT/index.{html,json}."""
    from reportgen import batch, render

    specs = batch.expand(models)  # a glob or folder without a model file: exit 2, nothing written
    _reject_missing(specs)
    out = Path(options.out)
    render.check_out_dir(out)
    _check_junit(options.junit)
    _check_inputs(options)
    if options.config:
        from reportgen import config

        config.load(options.config)
    formats = options.formats
    finished: list[dict] = []

    def done(row: dict) -> None:
        finished.append(row)
        folder = out / row["name"]
        if row["status"] == "failed":
            _say(f"reportgen: error: {row['name']} ({row['spec']}): {row['error']}")
            return
        _announce(folder, formats, options.quiet)
        if row["section_errors"]:
            names = ", ".join(f"{e['section']} ({e['error']})" for e in row["section_errors"])
            print(
                f"reportgen: {row['name']}: {len(row['section_errors'])} section(s) failed: {names}; "
                f"tracebacks in {folder / 'errors.log'}",
                file=sys.stderr,
            )
        elif row["exit_status"] == 1:
            print(
                f"reportgen: {row['name']}: findings at or above '{options.fail_on}' "
                f"({row['findings_summary']})",
                file=sys.stderr,
            )

    try:
        data = batch.run_batch(
            specs,
            out,
            formats,
            options,
            weights=options.weights,
            unsafe=options.unsafe,
            input_shape=options.input_shape,
            jobs=options.jobs,
            executor=options.executor,
            ray_address=options.ray_address,
            on_done=done,
        )
    except KeyboardInterrupt as exc:
        if isinstance(exc, batch.Interrupted):
            done_names, left, index, why = exc.finished, exc.unfinished, exc.index, exc.index_error
        else:  # before the models were handed out
            done_names, index, why = [r["name"] for r in finished], None, None
            left = [n for n in batch.assign_names(specs) if n not in set(done_names)]
        _say(_interrupted_line(done_names, left, index, len(specs), why))
        return _interrupt_status()
    if options.junit:
        _write_junit(options.junit, out, data.get("models") or [], options.fail_on)
    if not options.quiet:
        print(out / "index.html")
        print(out / "index.json")
    status = data["exit_status"]
    if status:
        s = data["summary"]
        print(
            f"reportgen: {s['models']} models: {s['written']} written, {s['flagged']} with failed sections, "
            f"{s['failed']} failed; index in {out / 'index.html'}; exit status {status}",
            file=sys.stderr,
        )
    return status


def _write_junit(path: str, out: Path, rows: Sequence[dict], fail_on: str | None) -> None:
    """JUnit XML of a run of several models (or an index) from each report folder's report.json."""
    import json

    from reportgen import junit

    suites = []
    for row in rows:
        if row.get("status") == "failed":
            suites.append(
                junit.suite(row["name"], None, fail_on, error=row.get("error") or "the report failed")
            )
            continue
        try:
            data = json.loads((out / row["name"] / "report.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            suites.append(junit.suite(row["name"], None, fail_on, error=f"no readable report.json ({exc})"))
            continue
        suites.append(junit.suite(row["name"], data, fail_on))
    junit.write(path, suites)


def _interrupted_line(
    done: Sequence[str], left: Sequence[str], index: Path | None, total: int, why: str | None = None
) -> str:
    """The one line of an interrupted run of several models: which finished, which did not, the index."""

    def names(items: Sequence[str]) -> str:
        return ", ".join(items[:5]) + (f", ... ({len(items) - 5} more)" if len(items) > 5 else "")

    if not done:
        return (
            f"reportgen: interrupted: none of the {total} models finished; nothing was written "
            "(an earlier report or index is left as it was)"
        )
    where = (
        f"; the index of the finished is {index}"
        if index
        else f"; the index could not be written{f' ({why})' if why else ''}"
    )
    pending = f"; not finished: {names(left)} (nothing written for them)" if left else ""
    return f"reportgen: interrupted: {len(done)} of {total} models finished: {names(done)}{pending}{where}"


def _status(folder: Path, data: dict, fail_on: str | None) -> int:
    """The exit status (:func:`reportgen.report.exit_status`), with the one line that explains it."""
    from reportgen.report import EXIT_FINDINGS, EXIT_SECTION_FAILED, exit_status

    status = exit_status(data, fail_on)
    if status == EXIT_SECTION_FAILED:
        errors = data["section_errors"]
        names = ", ".join(f"{e['section']} ({e['error']})" for e in errors)
        print(
            f"reportgen: {len(errors)} section(s) failed: {names}; the report was written without them; "
            f"tracebacks in {folder / 'errors.log'}; exit status 3",
            file=sys.stderr,
        )
    elif status == EXIT_FINDINGS:
        print(
            f"reportgen: findings at or above '{fail_on}' "
            f"({data.get('findings_summary', {})}); exit status 1",
            file=sys.stderr,
        )
    return status


def _announce(folder: Path, formats: Sequence[str], quiet: bool) -> None:
    if not quiet:
        for fmt in FORMATS:
            if fmt in formats:
                print(folder / f"report.{fmt}")


def demo_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="reportgen demo",
        description="Train the tutorials' Fashion-MNIST-style CNN offline and report on it.",
    )
    options.add_arguments(p, ("formats", "out", "quiet", "seed"))
    p.add_argument(
        "--dataset",
        choices=("digits", "fashion-mnist"),
        default="digits",
        help="digits: scikit-learn's bundled handwritten digits upscaled to 28x28 (offline, default); "
        "fashion-mnist: Keras' download (online)",
    )
    p.add_argument(
        "--epochs",
        type=options.argparse_type(options.positive),
        default=20,
        help="maximum epochs (early stopping, patience 2)",
    )
    return p


def cmd_demo(argv: Sequence[str]) -> int:
    args = demo_parser().parse_args(argv)
    from reportgen import render
    from reportgen.demo import run_demo

    render.check_out_dir(Path(args.out))
    formats = tuple(args.formats or FORMATS)
    folder = run_demo(
        Path(args.out),
        dataset=args.dataset,
        epochs=args.epochs,
        seed=args.seed,
        formats=formats,
        quiet=args.quiet,
    )
    _announce(folder, formats, args.quiet)
    return 0


def compare_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="reportgen compare", description="Weight drift between two models of one architecture.")
    p.add_argument("model_a", metavar="A", help="the model before (a .keras/.h5 file or architecture name)")
    p.add_argument("model_b", metavar="B", help="the model after")
    options.add_arguments(p, ("weights", "unsafe", "input_shape", "formats", "out", "quiet"))
    return p


def cmd_compare(argv: Sequence[str]) -> int:
    args = compare_parser().parse_args(argv)
    from reportgen import render
    from reportgen.compare import build
    from reportgen.loading import load
    from reportgen.report import page_variables, progress_factory

    render.check_out_dir(Path(args.out))
    a = load(args.model_a, weights=args.weights, unsafe=args.unsafe, input_shape=args.input_shape)
    b = load(args.model_b, weights=args.weights, unsafe=args.unsafe, input_shape=args.input_shape)
    options = Options(quiet=args.quiet)
    data, view = build(a, b, options)
    variables = page_variables(f"{a.name} vs. {b.name}", f"{a.source} → {b.source}") | view
    progress = progress_factory(args.quiet)
    folder = render.write_report(
        Path(args.out),
        f"{a.name}-vs-{b.name}",
        data,
        "compare.html.j2",
        variables,
        tuple(args.formats or FORMATS),
        progress,
    )
    _announce(folder, tuple(args.formats or FORMATS), args.quiet)
    return 0


def index_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="reportgen index",
        description="Write DIR/index.html and DIR/index.json from the report folders in DIR (their "
        "report.json files; nothing is recomputed). The weight drift across checkpoints is added when "
        "each folder has its model file beside it (reportgen.keras.ReportCallback saves one) or names "
        "an unchanged source file.",
    )
    p.add_argument("folder", metavar="DIR", help="a folder of report folders (the --out of earlier runs)")
    p.add_argument(
        "--no-drift", action="store_true", help="do not load the models' files for the weight drift"
    )
    options.add_arguments(p, ("junit", "fail_on"))
    p.add_argument("--quiet", action="store_true", help="print nothing on success")
    return p


def cmd_index(argv: Sequence[str]) -> int:
    args = index_parser().parse_args(argv)
    from reportgen import batch

    root = Path(args.folder)
    _check_junit(args.junit)
    skipped: list[tuple[str, str]] = []
    data = batch.index_folders(root, drift=not args.no_drift, skipped=skipped)
    if skipped:  # a damaged report.json is data to skip, not a crash (docs/safety.md)
        shown = "; ".join(f"'{name}': {why}" for name, why in skipped[:3]) + (
            "; ..." if len(skipped) > 3 else ""
        )
        _say(
            f"reportgen: note: {len(skipped)} report folder(s) "
            f"skipped, their report.json is not a report ({shown}); "
            "re-write those reports"
        )
    if args.junit:
        _write_junit(args.junit, root, data.get("models") or [], args.fail_on)
    if not args.quiet:
        print(root / "index.html")
        print(root / "index.json")
    return 0


COMMANDS = {"demo": cmd_demo, "compare": cmd_compare, "index": cmd_index}


from reportgen.errors import STOPPED_BY as _SIGNALLED, interrupt_status as _interrupt_status  # noqa: E402


def _on_signal(signum: int, frame: object) -> None:
    """SIGTERM or SIGHUP: stop as Ctrl-C stops (workers ended, nothing half-written, the index of the
    finished)."""
    _SIGNALLED.append(signum)
    raise KeyboardInterrupt


class _StopSignals:
    """SIGTERM and SIGHUP handled as an interrupt while ``main`` runs (the previous handlers back after);
    a no-op outside the main thread, where signals are not ours to change."""

    def __enter__(self) -> None:
        import signal

        _SIGNALLED.clear()
        self.old = {}
        for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
            if sig is None:
                continue
            try:
                self.old[sig] = signal.signal(sig, _on_signal)
            except (ValueError, OSError):  # not the main thread
                pass

    def __exit__(self, *exc: object) -> None:
        import signal

        for sig, handler in self.old.items():
            signal.signal(sig, handler)


def _disk_problem(exc: BaseException) -> str | None:
    """The one line for a write the machine refused (disk full, quota, read-only): not a bug of ours."""
    import errno

    reasons = {
        errno.ENOSPC: "the disk is full",
        errno.EDQUOT: "the disk quota is used up",
        errno.EROFS: "the file system is read-only",
    }
    if isinstance(exc, OSError) and exc.errno in reasons:
        where = f" writing '{exc.filename}'" if exc.filename else ""
        return (
            f"{reasons[exc.errno]}{where}; free some space or choose another folder with --out; no report "
            "was written (an earlier report is left as it was)"
        )
    return None


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    with _StopSignals():
        return _main(argv)


def _main(argv: list[str]) -> int:
    try:
        if argv and argv[0] in COMMANDS:
            return COMMANDS[argv[0]](argv[1:])
        return cmd_report(argv)
    except UserError as exc:
        _say(f"reportgen: error: {exc}")
        return exc.exit_status
    except KeyboardInterrupt:
        what = "interrupted" if not _SIGNALLED else f"stopped by {_signal_name(_SIGNALLED[0])}"
        _say(f"reportgen: {what}; no report was written (an earlier report is left as it was)")
        return _interrupt_status()
    except Exception as exc:  # a bug of ours (or of a library): one line, the traceback in a file
        disk = _disk_problem(exc)
        if disk is not None:
            _say(f"reportgen: error: {disk}")
            return 2
        import tempfile
        import traceback

        from reportgen.errors import one_line

        fd, log = tempfile.mkstemp(prefix="reportgen-traceback-", suffix=".log")
        with open(fd, "w", encoding="utf-8") as fh:
            fh.write(traceback.format_exc())
        _say(
            f"reportgen: internal error: {type(exc).__name__}: {one_line(exc)}; no report was written; "
            f"please report it with the traceback in {log}"
        )
        return 4


def _signal_name(signum: int) -> str:
    import signal

    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _say(line: str) -> None:
    """One line on stderr, on a clean line of its own after any progress bar."""
    from reportgen.errors import end_progress_line

    end_progress_line(sys.stderr)
    print(line, file=sys.stderr, flush=True)


USAGE_WIDTH = 110


def usage_block() -> str:
    """The README's Usage block: each command's usage line, made by its parser from :class:`reportgen.Options`
    (``bench/readme_usage.py`` writes it into README.md; tests/test_readme.py checks that it is in sync)."""
    import textwrap

    lines = []
    for make in (report_parser, demo_parser, compare_parser, index_parser):
        p = make()
        p.formatter_class = lambda prog: argparse.HelpFormatter(prog, width=USAGE_WIDTH)
        text = p.format_usage().strip()
        lines.append(textwrap.dedent(text[len("usage: ") :] if text.startswith("usage: ") else text))
    return "\n".join(lines) + "\n"
