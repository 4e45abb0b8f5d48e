"""Atomic writes: a file is either the old version or the complete new one, never half.

Every writer in SCORE Studio goes through :func:`atomic_path`: it writes to a temporary
file in the same folder and renames it over the target (atomic on POSIX and Windows).
With ``keep_previous=True`` the existing file is first kept as a numbered backup in a
``.history`` folder beside it, so a rater's earlier labels are never lost.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from score_gui.errors import ScoreInputError

HISTORY_DIR = ".history"


def ensure_writable_dir(folder: str | os.PathLike) -> Path:
    """Create ``folder`` if needed and check that files can be written into it.

    Examples
    --------
    >>> import tempfile
    >>> ensure_writable_dir(tempfile.mkdtemp()).is_dir()
    True
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        blocker = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None)
        if blocker is not None:
            raise ScoreInputError(folder, f"cannot create folder: {blocker} is a file") from None
        raise ScoreInputError(folder, f"cannot create folder ({exc.strerror or exc})") from None
    if not folder.is_dir():
        raise ScoreInputError(folder, "is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ScoreInputError(folder, "folder is not writable")
    return folder


def backup_path(target: Path) -> Path:
    """Where the previous version of ``target`` is kept before it is replaced."""
    stamp = datetime.now().strftime("%Y%m%dT%H%M%S%f")
    candidate = target.parent / HISTORY_DIR / f"{stamp}_{target.name}"
    counter = 1
    while candidate.exists():  # two saves within one microsecond must not share a backup
        candidate = target.parent / HISTORY_DIR / f"{stamp}-{counter}_{target.name}"
        counter += 1
    return candidate


def keep_previous_version(target: Path) -> Path | None:
    """Copy an existing ``target`` into its ``.history`` folder; return the copy's path."""
    if not target.exists():
        return None
    backup = backup_path(target)
    backup.parent.mkdir(exist_ok=True)
    shutil.copy2(target, backup)
    return backup


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, keep_previous: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``target`` atomically.

    The temporary name keeps the target's suffixes (``.nii.gz`` stays compressed).
    On any exception the temporary file is removed and ``target`` is untouched.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
    >>> with atomic_path(out) as tmp:
    ...     _ = tmp.write_text("hello")
    >>> out.read_text()
    'hello'
    """
    target = Path(target)
    folder = ensure_writable_dir(target.parent)
    if target.is_dir():
        raise ScoreInputError(target, "is a folder, cannot write a file there")
    suffix = "".join(target.suffixes) or ".tmp"
    try:
        # The process id in the name tells a later run whether the writer is gone (a kill
        # leaves the file behind): score_gui.filesets.clean_stale_temporaries.
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}-", suffix=suffix, dir=folder)
    except OSError as exc:  # read-only file system, quota, permissions (os.access lies for root)
        raise ScoreInputError(folder, f"cannot write into folder ({exc.strerror or exc})") from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        # mkstemp makes 0600 files; give the result the mode a plain open() would (lab shares).
        os.chmod(tmp, _default_file_mode())
        yield tmp
        _fsync(tmp)
        if keep_previous:
            try:
                keep_previous_version(target)
            except OSError as exc:
                raise ScoreInputError(target, f"cannot keep the previous version in "
                                              f"{HISTORY_DIR} ({exc.strerror or exc})") from None
        try:
            os.replace(tmp, target)
        except OSError as exc:
            raise ScoreInputError(target, f"cannot replace file ({exc.strerror or exc})") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(target: str | os.PathLike, text: str, keep_previous: bool = False) -> Path:
    """Write ``text`` to ``target`` atomically (UTF-8)."""
    with atomic_path(target, keep_previous=keep_previous) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(target)


def _default_file_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _fsync(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())
