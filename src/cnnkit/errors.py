"""Errors that speak to the user.

Every problem a user can cause (a missing file, a bad shape, an unknown model name) raises a
subclass of `CnnkitError` with a one-line message saying what was wrong and what to do. The CLI
prints that line and exits with code 2; nothing else is shown.
"""


class CnnkitError(Exception):
    """Base of every error caused by the user's input."""


class InputError(CnnkitError, ValueError):
    """An argument, shape or configuration is invalid."""


class FileFormatError(CnnkitError, ValueError):
    """A file exists but is not what it should be (not an image, not a checkpoint, truncated)."""


class MissingFileError(CnnkitError, FileNotFoundError):
    """A path the user gave does not exist."""


class UnknownNameError(CnnkitError, KeyError):
    """A name (model, filter, data set) is not known; the message lists the close matches."""

    def __str__(self) -> str:  # KeyError would quote the message; show it as written
        return str(self.args[0]) if self.args else ""
