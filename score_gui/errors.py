"""Errors that reach the user as one line naming the file and the problem."""

from __future__ import annotations

import errno
import os
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


def missing_problem(path: str | PathLike, what: str = "file") -> str:
    """Why ``path`` cannot be found, for a :class:`ScoreInputError`: missing, a link loop or a broken link.

    ``Path.exists()`` is False for all three; only the first is "not found" to the user.

    Examples
    --------
    >>> missing_problem("/no/such/scan.nii.gz")
    'file not found'
    >>> import os, tempfile
    >>> loop = os.path.join(tempfile.mkdtemp(), "loop.nii.gz")
    >>> os.symlink(loop, loop)
    >>> missing_problem(loop)
    'symbolic link loop (the link leads back to itself)'
    """
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symbolic link loop (the link leads back to itself)"
        if os.path.islink(path):
            return f"broken symbolic link (points to {os.readlink(path)}, which does not exist)"
        if exc.errno not in (errno.ENOENT, errno.ENOTDIR):
            return f"cannot reach the {what} ({exc.strerror or exc})"
    return f"{what} not found"


class CancelledError(RuntimeError):
    """Raised inside a long job when the user asked to cancel it."""
