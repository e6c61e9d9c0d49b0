"""Errors that reach the user as one line on stderr and exit status 2."""

from __future__ import annotations


class UserError(Exception):
    """Bad input. The message names the problem and what to do about it, on one line."""

    exit_status = 2

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))
