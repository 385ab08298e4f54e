"""Typed errors shared by the core, the engine and the UI.

Each error carries the CLI exit code it maps to (see the design: 0 ok, 2 bad input,
3 integrity failure, 4 cancelled/interrupted, 1 internal error).
"""

from __future__ import annotations


class StudioError(Exception):
    """Base class of every error the studio raises on purpose."""

    exit_code = 1


class BadInput(StudioError):
    """The user asked for something invalid; the message names the field and the value."""

    exit_code = 2

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


class IntegrityError(StudioError):
    """A vault file does not match its manifest; the message names the file."""

    exit_code = 3


class Cancelled(StudioError):
    """Work stopped because the user (or a signal) asked for it."""

    exit_code = 4


def failure_text(exc: BaseException) -> str:
    """What a failed job's row says: the studio's own message as it is, anything else with its type."""
    return str(exc) if isinstance(exc, StudioError) else f"{type(exc).__name__}: {exc}"
