"""Errors that reach the user as one line naming the file and the problem."""

from __future__ import annotations

from os import PathLike


class ScoreInputError(ValueError):
    """Bad input: a file that is missing, corrupt, of the wrong shape or unwritable.

    The command line prints ``str(error)`` on one line and exits with code 2.

    Parameters
    ----------
    path : str or PathLike or None
        The file or folder at fault.
    problem : str
        What is wrong with it, in a few words, without a trailing period.

    Examples
    --------
    >>> str(ScoreInputError("scan.nii.gz", "not a NIfTI file"))
    'scan.nii.gz: not a NIfTI file'
    """

    def __init__(self, path: str | PathLike | None, problem: str):
        self.path = None if path is None else str(path)
        self.problem = " ".join(str(problem).split())  # always one line
        super().__init__(self.problem if self.path is None else f"{self.path}: {self.problem}")


class CancelledError(RuntimeError):
    """Raised inside a long job when the user asked to cancel it."""
