"""Errors that reach the user as one line on stderr and exit status 2."""

from __future__ import annotations


def one_line(exc: BaseException, limit: int = 300, typed: bool = False) -> str:
    """An exception in one line: its message's first line, at most ``limit`` characters (its type when it has
    no message).

    ``typed`` -- a failure told away from its traceback (a row of the batch index, a worker, a training
    callback): ``Type: first line``, the type saying what broke; a :class:`UserError` keeps its message
    whole (written for the user, one line already).
    """
    if typed and isinstance(exc, UserError):
        return str(exc)
    lines = str(exc).strip().splitlines()
    text = " ".join(lines[0].split()) if lines else ""
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    if not text:
        return type(exc).__name__
    return f"{type(exc).__name__}: {text}" if typed else text


def end_progress_line(stream=None) -> None:
    """Make the next line on ``stream`` (default stderr) start clean after a progress bar.

    Closes the tqdm bars an error or an interrupt left open (tqdm erases a
    ``leave=False`` bar's line as it closes). On a terminal the rest of the
    line is then erased (``\\r`` + ESC[K); elsewhere (a log file, a pipe) no
    escape code is written, only a newline after a bar that was still open,
    so that the error is a line of its own.
    """
    import sys

    stream = sys.stderr if stream is None else stream
    closed = 0
    std = sys.modules.get("tqdm.std")  # tqdm never imported: no bar was ever drawn
    if std is not None:
        for bar in list(getattr(std.tqdm, "_instances", ())):
            try:
                drawn = not getattr(bar, "disable", True)
                bar.leave = False
                bar.close()
                closed += drawn
            except Exception:  # a half-built bar: nothing to clear
                pass
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError, OSError):
        tty = False
    try:
        if tty:
            stream.write("\r\x1b[K")
        elif closed:
            stream.write("\n")
        stream.flush()
    except (AttributeError, ValueError, OSError):
        pass


class UserError(Exception):
    """Bad input. The message names the problem and what to do about it, on one line."""

    exit_status = 2

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


class BadInput(UserError):
    """Bad input found only while a section runs (an image folder none of whose files can be read).

    Any other :class:`UserError` raised while a section runs is that
    section's failure (exit 3, the rest of the report written); this one
    still stops the report: exit 2, nothing written.
    """


STOPPED_BY: list[
    int
] = []  # the signal (SIGTERM, SIGHUP) that stopped this run, set by the command line's handler


def interrupt_status() -> int:
    """The exit status of an interrupted run: 128 + the signal that stopped it (143 for SIGTERM), 130 for
    Ctrl-C."""
    return 128 + STOPPED_BY[0] if STOPPED_BY else 130
