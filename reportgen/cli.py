"""Command line: ``reportgen MODEL ...``, ``reportgen demo``, ``reportgen compare A B`` and ``reportgen index DIR``.

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

from reportgen import __version__
from reportgen.context import SECTION_NAMES, Options
from reportgen.errors import UserError

ALL_SECTIONS = SECTION_NAMES
FORMATS = ("html", "pdf", "json")


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one line and exit status 2, like every other bad input."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UserError(f"{message}; see '{self.prog} --help'")


def _int_at_least(minimum: int):
    """An argparse type: a whole number no smaller than ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"'{text}' must be at least {minimum}")
        return value

    return parse


_positive = _int_at_least(1)
_non_negative = _int_at_least(0)


from reportgen.names import CAM_METHODS as CAMS, PATTERN_STYLES, PREPROCESS_MODES  # noqa: E402


def _cams(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    unknown = [n for n in names if n not in CAMS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown method '{(unknown or [text])[0]}'; choose from {','.join(CAMS)}")
    return names


def _preprocess(text: str) -> str:
    from reportgen.names import parse_preprocess

    try:
        parse_preprocess(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--preprocess ")) from None
    return text.strip()


def _sections(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in ALL_SECTIONS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown section '{(unknown or [text])[0]}'; choose from {','.join(ALL_SECTIONS)}"
        )
    return names


def _add_output_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="reports", metavar="DIR", help="output folder (default: reports)")
    p.add_argument("--format", action="append", choices=FORMATS, dest="formats", metavar="FMT",
                   help="html, pdf or json; repeat for several (default: all three)")
    p.add_argument("--quiet", action="store_true", help="hide the progress bars")


def _shape(text: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(p) for p in text.replace("x", ",").split(",") if p.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not H,W,C (whole numbers, e.g. 224,224,3)") from None
    if not dims or any(d < 1 for d in dims):
        raise argparse.ArgumentTypeError(f"'{text}' must be positive whole numbers, as H,W,C")
    return dims


def _add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", default="imagenet", metavar="imagenet|none|PATH",
                   help="weights for an architecture given by name (default: imagenet, downloaded and cached by "
                   "Keras), or a .weights.h5 file for a module:callable")
    p.add_argument("--unsafe", action="store_true",
                   help="turn Keras safe mode off to load a TRUSTED file whose Lambda layers carry code")
    p.add_argument("--input-shape", type=_shape, metavar="H,W,C",
                   help="build a model that was saved or returned unbuilt with this input shape")


def report_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="reportgen",
        description="Write an audit report (HTML, PDF, JSON) of a trained Keras CNN. Several models, a folder of "
        "model files or a glob write one report each and OUT/index.html, OUT/index.json. Other commands: "
        "'reportgen demo' (offline example), 'reportgen compare A B' and 'reportgen index DIR'.",
    )
    p.add_argument("model", metavar="MODEL", nargs="+",
                   help="a .keras or .h5 file, a keras.applications name (vgg16, resnet50, ...), or module:callable "
                   "(imports and RUNS that code, as python -m would); several, a folder (its .keras/.h5/.hdf5 "
                   "files, not its sub-folders') or a quoted glob ('ckpt/*.keras') for one report each and an index")
    _add_model_options(p)
    _add_output_options(p)
    p.add_argument("--sections", type=_sections, default=ALL_SECTIONS, metavar="LIST",
                   help=f"comma-separated sections (default: all): {','.join(ALL_SECTIONS)}")
    p.add_argument("--version", action="version", version=f"reportgen {__version__}")
    g = p.add_argument_group("several models")
    g.add_argument("--jobs", type=_positive, metavar="N",
                   help="reports built at once: N worker processes (default 1: one after the other, in this "
                   "process); with --executor ray, at most N tasks at once (a local Ray instance gets N CPUs)")
    g.add_argument("--executor", choices=("process", "ray"), default="process",
                   help="process: this machine (default); ray: one Ray task per model (pip install 'reportgen[ray]')")
    g.add_argument("--ray-address", metavar="ADDR",
                   help="the Ray cluster to use with --executor ray (default: $RAY_ADDRESS, else a local Ray "
                   "instance for this run); its nodes need reportgen installed and must see the model files and "
                   "--out under the same paths")
    g = p.add_argument_group("kernel grids")
    g.add_argument("--max-filters", type=_positive, default=64, metavar="N", help="filters shown per layer (default 64)")
    g.add_argument("--kernel-channel", type=_non_negative, default=None, metavar="C",
                   help="input channel shown in the kernel grids (default: each layer's channel with the "
                   "largest kernel norm)")
    g = p.add_argument_group("images, feature maps, Grad-CAM")
    g.add_argument("--image", action="append", dest="images", default=[], metavar="PATH",
                   help="input image (PNG, JPEG, BMP, GIF, .npy); repeatable")
    g.add_argument("--images", action="append", dest="image_dirs", default=[], metavar="DIR",
                   help="a folder of images, read recursively, class sub-folders as labels; repeatable. "
                   "Statistics cover every image, the other sections show --sample of them")
    g.add_argument("--sample", type=_positive, default=8, metavar="N",
                   help="images of the --images folders shown in the image sections (default 8)")
    g.add_argument("--preprocess", default="auto", type=_preprocess, metavar="MODE",
                   help=f"input preprocessing: {', '.join(PREPROCESS_MODES)}, scale=S,offset=O (pixels x S + O) or "
                        "mean=R,G,B,std=R,G,B (on 0-255 pixels). Default auto: the architecture's own; raw pixels for "
                        "a model that scales them itself; with labelled --images, the convention with the best "
                        "accuracy; else /255, and the report says it guessed")
    g.add_argument("--class-names", metavar="FILE", help="class names, one per line or a JSON list")
    g.add_argument("--layers", nargs="+", action="extend", metavar="NAME", help="layers whose feature maps are shown")
    g.add_argument("--feature-channels", type=_positive, default=64, metavar="N", help="channels per feature-map grid (default 64)")
    g.add_argument("--gradcam-layer", metavar="NAME", help="CAM target layer (default: last conv layer)")
    g.add_argument("--top-k", type=_positive, default=3, metavar="K", help="predictions explained per image (default 3)")
    g.add_argument("--cam", type=_cams, default=("gradcam",), metavar="LIST",
                   help=f"comma-separated CAM methods, side by side (default gradcam): {','.join(CAMS)}")
    g.add_argument("--output", metavar="NAME", help="the output to explain, for a model with several")
    g.add_argument("--input", action="append", dest="inputs", default=[], metavar="NAME=FILE.npy",
                   help="a value for a non-image input (default zeros); repeatable")
    g = p.add_argument_group("filter patterns")
    g.add_argument("--pattern-layers", nargs="+", action="extend", metavar="NAME", help="conv layers for the pattern mosaics")
    g.add_argument("--pattern-filters", type=_positive, default=64, metavar="N", help="filters per layer (default 64)")
    g.add_argument("--pattern-size", type=_positive, metavar="PX", help="pattern side in pixels")
    g.add_argument("--pattern-steps", type=_positive, metavar="N", help="gradient-ascent steps")
    g.add_argument("--pattern-style", choices=PATTERN_STYLES, default="classic")
    g.add_argument("--seed", type=_non_negative, default=0, help="random seed (default 0): same seed, same report")
    g = p.add_argument_group("findings")
    g.add_argument("--config", metavar="FILE", help="TOML file with finding thresholds (default: [tool.reportgen] in ./pyproject.toml)")
    g.add_argument("--fail-on", choices=("warning", "error"), help="exit 1 when a finding at or above this severity exists")
    return p


def options_from(args: argparse.Namespace) -> Options:
    return Options(
        sections=tuple(args.sections),
        max_filters=args.max_filters,
        kernel_channel=args.kernel_channel,
        images=tuple(args.images),
        image_dirs=tuple(args.image_dirs),
        sample=args.sample,
        preprocess=args.preprocess,
        class_names=args.class_names,
        layers=tuple(args.layers) if args.layers else None,
        feature_channels=args.feature_channels,
        gradcam_layer=args.gradcam_layer,
        top_k=args.top_k,
        cam=tuple(args.cam),
        output=args.output,
        inputs=tuple(args.inputs),
        pattern_layers=tuple(args.pattern_layers) if args.pattern_layers else None,
        pattern_filters=args.pattern_filters,
        pattern_size=args.pattern_size,
        pattern_steps=args.pattern_steps,
        pattern_style=args.pattern_style,
        seed=args.seed,
        config=args.config,
        fail_on=args.fail_on,
        quiet=args.quiet,
    )


def cmd_report(argv: Sequence[str]) -> int:
    args = report_parser().parse_intermixed_args(argv)
    options = options_from(args)
    from reportgen import batch, render

    if args.ray_address and args.executor != "ray":
        raise UserError("--ray-address needs --executor ray")
    if args.executor == "ray":
        import importlib.util

        if importlib.util.find_spec("ray") is None:
            raise UserError(batch.RAY_MISSING)
    if batch.is_many(args.model) or args.executor == "ray":
        return cmd_many(args, options)
    _reject_missing(args.model[:1])
    render.check_out_dir(Path(args.out))
    if options.config:
        from reportgen import config

        config.load(options.config)  # a bad thresholds file is an error even when findings don't run
    from reportgen.api import Report

    report = Report(args.model[0], weights=args.weights, unsafe=args.unsafe, input_shape=args.input_shape,
                    options=options)
    folder = report.to_folder(Path(args.out), args.formats or FORMATS)
    _announce(folder, args.formats or FORMATS, args.quiet)
    return _status(folder, report.json, options.fail_on)


def _reject_missing(specs: Sequence[str]) -> None:
    """A MODEL that names a file that does not exist is bad input, answered before any backend is
    imported (in well under a second); with several models, before any report is written."""
    from reportgen.names import missing_model

    missing = [s for s in specs if missing_model(s)]
    if len(missing) == 1:
        raise UserError(missing_model(missing[0]))
    if missing:
        shown = ", ".join(f"'{s}'" for s in missing[:3]) + (", ..." if len(missing) > 3 else "")
        raise UserError(f"{len(missing)} model files do not exist ({shown}); check the paths; nothing was written")


def cmd_many(args: argparse.Namespace, options: Options) -> int:
    """Several models: one report each (in parallel with --jobs or on Ray), then OUT/index.{html,json}."""
    from reportgen import batch, render

    specs = batch.expand(args.model)  # a glob or folder without a model file: exit 2, nothing written
    _reject_missing(specs)
    out = Path(args.out)
    render.check_out_dir(out)
    if options.config:
        from reportgen import config

        config.load(options.config)
    formats = args.formats or FORMATS
    finished: list[dict] = []

    def done(row: dict) -> None:
        finished.append(row)
        folder = out / row["name"]
        if row["status"] == "failed":
            _say(f"reportgen: error: {row['name']} ({row['spec']}): {row['error']}")
            return
        _announce(folder, formats, args.quiet)
        if row["section_errors"]:
            names = ", ".join(f"{e['section']} ({e['error']})" for e in row["section_errors"])
            print(f"reportgen: {row['name']}: {len(row['section_errors'])} section(s) failed: {names}; "
                  f"tracebacks in {folder / 'errors.log'}", file=sys.stderr)
        elif row["exit_status"] == 1:
            print(f"reportgen: {row['name']}: findings at or above '{options.fail_on}' "
                  f"({row['findings_summary']})", file=sys.stderr)

    try:
        data = batch.run_batch(specs, out, formats, options, weights=args.weights, unsafe=args.unsafe,
                               input_shape=args.input_shape, jobs=args.jobs, executor=args.executor,
                               ray_address=args.ray_address, on_done=done)
    except KeyboardInterrupt as exc:
        if isinstance(exc, batch.Interrupted):
            done_names, left, index, why = exc.finished, exc.unfinished, exc.index, exc.index_error
        else:  # before the models were handed out
            done_names, index, why = [r["name"] for r in finished], None, None
            left = [n for n in batch.assign_names(specs) if n not in set(done_names)]
        _say(_interrupted_line(done_names, left, index, len(specs), why))
        return 130
    if not args.quiet:
        print(out / "index.html")
        print(out / "index.json")
    status = data["exit_status"]
    if status:
        s = data["summary"]
        print(f"reportgen: {s['models']} models: {s['written']} written, {s['flagged']} with failed sections, "
              f"{s['failed']} failed; index in {out / 'index.html'}; exit status {status}", file=sys.stderr)
    return status


def _interrupted_line(done: Sequence[str], left: Sequence[str], index: Path | None, total: int,
                      why: str | None = None) -> str:
    """The one line of an interrupted run of several models: which finished, which did not, the index."""
    def names(items: Sequence[str]) -> str:
        return ", ".join(items[:5]) + (f", ... ({len(items) - 5} more)" if len(items) > 5 else "")

    if not done:
        return (f"reportgen: interrupted: none of the {total} models finished; nothing was written "
                "(an earlier report or index is left as it was)")
    where = (f"; the index of the finished is {index}" if index
             else f"; the index could not be written{f' ({why})' if why else ''}")
    pending = f"; not finished: {names(left)} (nothing written for them)" if left else ""
    return f"reportgen: interrupted: {len(done)} of {total} models finished: {names(done)}{pending}{where}"


def _status(folder: Path, data: dict, fail_on: str | None) -> int:
    """3 when a section failed (the report is written, but incomplete), else the --fail-on gate."""
    errors = data.get("section_errors") or []
    if errors:
        names = ", ".join(f"{e['section']} ({e['error']})" for e in errors)
        print(f"reportgen: {len(errors)} section(s) failed: {names}; the report was written without them; "
              f"tracebacks in {folder / 'errors.log'}; exit status 3", file=sys.stderr)
        return 3
    return _gate(data, fail_on)


def _announce(folder: Path, formats: Sequence[str], quiet: bool) -> None:
    if not quiet:
        for fmt in FORMATS:
            if fmt in formats:
                print(folder / f"report.{fmt}")


def _gate(data: dict, fail_on: str | None) -> int:
    if not fail_on:
        return 0
    from reportgen.analyses.findings import exceeds

    if exceeds(data.get("findings", []), fail_on):
        counts = data.get("findings_summary", {})
        print(f"reportgen: findings at or above '{fail_on}' ({counts}); exit status 1", file=sys.stderr)
        return 1
    return 0


def demo_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="reportgen demo", description="Train the tutorials' Fashion-MNIST-style CNN offline and report on it.")
    _add_output_options(p)
    p.add_argument("--dataset", choices=("digits", "fashion-mnist"), default="digits",
                   help="digits: scikit-learn's bundled handwritten digits upscaled to 28x28 (offline, default); "
                   "fashion-mnist: Keras' download (online)")
    p.add_argument("--epochs", type=_positive, default=20, help="maximum epochs (early stopping, patience 2)")
    p.add_argument("--seed", type=_non_negative, default=0)
    return p


def cmd_demo(argv: Sequence[str]) -> int:
    args = demo_parser().parse_args(argv)
    from reportgen import render
    from reportgen.demo import run_demo

    render.check_out_dir(Path(args.out))
    folder = run_demo(Path(args.out), dataset=args.dataset, epochs=args.epochs, seed=args.seed,
                      formats=args.formats or FORMATS, quiet=args.quiet)
    _announce(folder, args.formats or FORMATS, args.quiet)
    return 0


def compare_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="reportgen compare", description="Weight drift between two models of one architecture.")
    p.add_argument("model_a", metavar="A", help="the model before (a .keras/.h5 file or architecture name)")
    p.add_argument("model_b", metavar="B", help="the model after")
    _add_model_options(p)
    _add_output_options(p)
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
    folder = render.write_report(Path(args.out), f"{a.name}-vs-{b.name}", data, "compare.html.j2", variables,
                                 args.formats or FORMATS, progress)
    _announce(folder, args.formats or FORMATS, args.quiet)
    return 0


def index_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="reportgen index",
                description="Write DIR/index.html and DIR/index.json from the report folders in DIR (their "
                "report.json files; nothing is recomputed). The weight drift across checkpoints is added when "
                "each folder has its model file beside it (reportgen.keras.ReportCallback saves one) or names "
                "an unchanged source file.")
    p.add_argument("folder", metavar="DIR", help="a folder of report folders (the --out of earlier runs)")
    p.add_argument("--no-drift", action="store_true", help="do not load the models' files for the weight drift")
    p.add_argument("--quiet", action="store_true", help="print nothing on success")
    return p


def cmd_index(argv: Sequence[str]) -> int:
    args = index_parser().parse_args(argv)
    from reportgen import batch

    root = Path(args.folder)
    batch.index_folders(root, drift=not args.no_drift)
    if not args.quiet:
        print(root / "index.html")
        print(root / "index.json")
    return 0


COMMANDS = {"demo": cmd_demo, "compare": cmd_compare, "index": cmd_index}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] in COMMANDS:
            return COMMANDS[argv[0]](argv[1:])
        return cmd_report(argv)
    except UserError as exc:
        _say(f"reportgen: error: {exc}")
        return exc.exit_status
    except KeyboardInterrupt:
        _say("reportgen: interrupted; no report was written (an earlier report is left as it was)")
        return 130
    except Exception as exc:  # a bug of ours (or of a library): one line, the traceback in a file
        import tempfile
        import traceback

        from reportgen.errors import one_line

        fd, log = tempfile.mkstemp(prefix="reportgen-traceback-", suffix=".log")
        with open(fd, "w", encoding="utf-8") as fh:
            fh.write(traceback.format_exc())
        _say(f"reportgen: internal error: {type(exc).__name__}: {one_line(exc)}; no report was written; "
             f"please report it with the traceback in {log}")
        return 4


def _say(line: str) -> None:
    """One line on stderr, on a clean line of its own after any progress bar."""
    from reportgen.errors import end_progress_line

    end_progress_line(sys.stderr)
    print(line, file=sys.stderr, flush=True)
