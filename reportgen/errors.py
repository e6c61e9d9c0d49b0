"""Errors that reach the user as one line on stderr and exit status 2."""

from __future__ import annotations


def one_line(exc: BaseException, limit: int = 300) -> str:
    """An exception's first line (its type when it has no message), at most ``limit`` characters."""
    lines = str(exc).strip().splitlines()
    text = " ".join(lines[0].split()) if lines else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


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
