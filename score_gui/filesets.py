"""Sets of files that change together: a scan's result set and a whole model folder.

:func:`score_gui.atomic.atomic_path` makes one file either old or new. A result of
``score segment`` is several files (dseg, lesion map, areas table, ...) that belong
together, and a model folder is a tree; a reader must never see the new dseg beside the
old areas table. Two transactions keep such sets whole:

- **Result sets** (:func:`write_file_set`): the new files are written into a hidden
  staging folder inside the output folder (``.score-tmp-<stem>-<pid>-<random>/``). A
  ``manifest.json`` written last into that folder marks the set complete; then the old
  files go to ``.history/`` and the new ones are renamed into place. A kill before the
  manifest leaves the old set (the staging folder is removed by the next run); a kill
  after it is rolled forward by the next run or reader (:func:`recover_folder`), so the
  set is always entirely old or entirely new once anything looks at it again.
- **Model folders** (:func:`model_staging_dir`, :func:`swap_in_folder`): training writes
  into ``<parent>/.<name>.training/`` and, once complete, the previous folder moves to
  ``<parent>/.history/<name>-<time>/`` and the staging folder is renamed into place.
  :func:`recover_model_swap` finishes a swap that a kill interrupted.

Temporary files of :func:`~score_gui.atomic.atomic_path` carry the writer's process id;
:func:`clean_stale_temporaries` removes those whose process is gone.

Test hook: with ``SCORE_PAUSE_AT=<point>`` in the environment the writer prints
``paused at <point> (pid N)`` on stderr and sleeps ``SCORE_PAUSE_SECONDS`` (default 30)
at that point, so that a test can kill it at a precise moment. Points: ``staged``
(new set complete, before the manifest), ``manifest`` (before the first rename),
``moved-old-<i>`` and ``placed-new-<i>`` (after the i-th rename, from 1), and
``model-swap`` (previous model folder moved away, new one not yet in place). Without the
variable nothing changes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path

from score_gui.atomic import HISTORY_DIR, ensure_writable_dir, write_text_atomic
from score_gui.errors import ScoreInputError

STAGING_PREFIX = ".score-tmp-"
MANIFEST = "manifest.json"
TRAINING_SUFFIX = ".training"
COMPLETE_MARKER = ".training-complete"
LEGACY_TEMP_AGE_S = 600
"""Temporaries without a process id (older versions) count as stale after this long."""

_STAGING = re.compile(r"^\.score-tmp-(?P<stem>.+)-(?P<pid>\d+)-[A-Za-z0-9_]+$")
# atomic_path's temporaries: ".<name>.<pid>-<random><suffixes>" (older: no "<pid>-").
_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.(?:(?P<pid>\d+)-)?[A-Za-z0-9_]{8}(?P<suffix>(?:\.[^./]+)+)$")


def pause_point(name: str) -> None:
    """Sleep here when ``SCORE_PAUSE_AT`` names this point (a hook for kill tests).

    Examples
    --------
    >>> pause_point("staged")  # no SCORE_PAUSE_AT: returns at once
    """
    if os.environ.get("SCORE_PAUSE_AT") != name:
        return
    print(f"paused at {name} (pid {os.getpid()})", file=sys.stderr, flush=True)
    time.sleep(float(os.environ.get("SCORE_PAUSE_SECONDS", "30")))


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine (unknown on Windows: True).

    Examples
    --------
    >>> pid_alive(os.getpid())
    True
    """
    if os.name == "nt":  # os.kill there terminates the process: never probe
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    """A killed process that its parent has not reaped yet still answers ``kill(pid, 0)``."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False  # no /proc (macOS): trust kill()
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


# ---------------------------------------------------------------------------------------
# Result sets
# ---------------------------------------------------------------------------------------

def write_file_set(out_dir: str | os.PathLike, stem: str, write: Callable[[Path], dict[str, Path]],
                   also_replace: Iterable[str] = ()) -> dict[str, Path]:
    """Write a set of files into ``out_dir`` as one: afterwards all are new, or all old.

    Parameters
    ----------
    out_dir : path
        Output folder (created if needed).
    stem : str
        Names the staging folder (the scan's stem).
    write : callable
        ``write(folder) -> {kind: path}`` writes the new files into ``folder`` (a hidden
        staging folder in ``out_dir``), flat, under their final names.
    also_replace : names
        Files of the old set that the new set does not write but that must not outlive
        it (e.g. an old sidecar); they go to ``.history`` with the rest.

    Returns
    -------
    dict kind -> path in ``out_dir``.

    Examples
    --------
    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp())
    >>> def write(folder):
    ...     (folder / "a.txt").write_text("new a"); (folder / "b.txt").write_text("new b")
    ...     return {"a": folder / "a.txt", "b": folder / "b.txt"}
    >>> _ = (out / "a.txt").write_text("old a")
    >>> sorted(p.name for p in write_file_set(out, "x", write).values())
    ['a.txt', 'b.txt']
    >>> (out / "a.txt").read_text(), [p.name[-5:] for p in (out / ".history").iterdir()]
    ('new a', ['a.txt'])
    """
    out_dir = ensure_writable_dir(out_dir)
    recover_folder(out_dir)
    staging = _new_staging(out_dir, stem)
    try:
        written = write(staging)
        names = [Path(p).name for p in written.values()]
        pause_point("staged")
        manifest = _plan(out_dir, staging, names, also_replace)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)  # nothing of the new set is visible yet
        raise
    _commit_or_roll_back(out_dir, staging, manifest)
    return {kind: out_dir / Path(path).name for kind, path in written.items()}


def _new_staging(out_dir: Path, stem: str) -> Path:
    try:
        return Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{stem}-{os.getpid()}-", dir=out_dir))
    except OSError as exc:
        raise ScoreInputError(out_dir, f"cannot write into folder ({exc.strerror or exc})") from None


def _plan(out_dir: Path, staging: Path, names: list[str], also_replace: Iterable[str]) -> dict:
    """Check that every old file can move, choose its ``.history`` name, write the manifest."""
    stamp = datetime.now().strftime("%Y%m%dT%H%M%S%f")
    old = {}
    for name in dict.fromkeys([*names, *also_replace]):
        target = out_dir / name
        if target.is_dir():
            raise ScoreInputError(target, "is a folder, cannot write a file there")
        if target.exists() or target.is_symlink():
            old[name] = f"{HISTORY_DIR}/{_free_history_name(out_dir, stamp, name)}"
    if old:
        try:
            (out_dir / HISTORY_DIR).mkdir(exist_ok=True)
        except OSError as exc:
            raise ScoreInputError(out_dir / HISTORY_DIR, f"cannot keep the previous versions "
                                                         f"({exc.strerror or exc})") from None
    manifest = {"new": names, "old": old}
    for name in names:
        _fsync_file(staging / name)
    write_text_atomic(staging / MANIFEST, json.dumps(manifest, indent=1))
    pause_point("manifest")
    return manifest


def _free_history_name(out_dir: Path, stamp: str, name: str) -> str:
    candidate, counter = f"{stamp}_{name}", 1
    while (out_dir / HISTORY_DIR / candidate).exists():
        candidate, counter = f"{stamp}-{counter}_{name}", counter + 1
    return candidate


def _commit_or_roll_back(out_dir: Path, staging: Path, manifest: dict) -> None:
    """Apply the manifest; on a file-system error put the old set back, on an interrupt finish."""
    try:
        _apply(out_dir, staging, manifest)
    except OSError as exc:
        _roll_back(out_dir, staging, manifest)
        raise ScoreInputError(out_dir, f"cannot replace the previous results "
                                       f"({exc.strerror or exc}); they are unchanged") from None
    except BaseException:
        _apply(out_dir, staging, manifest)  # a few renames left: finish them, then stop
        raise


def _apply(out_dir: Path, staging: Path, manifest: dict) -> None:
    """Move the old set to ``.history``, rename the new one into place; safe to repeat."""
    new = set(manifest["new"])
    for i, (name, backup) in enumerate(manifest["old"].items(), 1):
        current = out_dir / name
        # A name of the new set that left staging is already the new file: leave it.
        if (current.exists() or current.is_symlink()) and (name not in new or (staging / name).exists()):
            os.replace(current, out_dir / backup)
            pause_point(f"moved-old-{i}")
    for i, name in enumerate(manifest["new"], 1):
        if (staging / name).exists():
            os.replace(staging / name, out_dir / name)
            pause_point(f"placed-new-{i}")
    (staging / MANIFEST).unlink(missing_ok=True)
    shutil.rmtree(staging, ignore_errors=True)


def _roll_back(out_dir: Path, staging: Path, manifest: dict) -> None:
    """Undo a partly applied manifest; if that fails too, the next run rolls forward."""
    try:
        for name in manifest["new"]:
            if not (staging / name).exists() and (out_dir / name).exists():
                os.replace(out_dir / name, staging / name)
        for name, backup in manifest["old"].items():
            if (out_dir / backup).exists() and not (out_dir / name).exists():
                os.replace(out_dir / backup, out_dir / name)
    except OSError:
        return
    shutil.rmtree(staging, ignore_errors=True)


def recover_folder(folder: str | os.PathLike) -> list[Path]:
    """Finish or drop interrupted result sets in ``folder`` and remove stale temporaries.

    A staging folder with a manifest is rolled forward (its set is complete), one
    without is removed (the old set was never touched). Folders and temporaries of
    processes still running are left alone. Returns what was recovered or removed.
    A folder that cannot be changed (read-only) is left as it is.

    Examples
    --------
    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp())
    >>> _ = (out / ".a.csv.999999999-abcdefgh.csv").write_text("half")
    >>> [p.name for p in recover_folder(out)], list(out.iterdir())
    (['.a.csv.999999999-abcdefgh.csv'], [])
    """
    folder = Path(folder)
    done: list[Path] = []
    try:
        entries = [p for p in folder.iterdir() if p.name.startswith(".")]
    except OSError:
        return done
    for path in entries:
        try:
            if _recover_staging(folder, path) or _remove_stale_temporary(path):
                done.append(path)
        except OSError:
            continue  # read-only or vanished meanwhile: a later run tries again
    return done


def _recover_staging(folder: Path, path: Path) -> bool:
    match = _STAGING.match(path.name)
    if not match or not path.is_dir():
        return False
    pid = int(match["pid"])
    if pid != os.getpid() and pid_alive(pid):
        return False
    manifest_file = path / MANIFEST
    if manifest_file.exists():
        try:
            manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            manifest = None  # a manifest is written atomically: unreadable means damaged
        if isinstance(manifest, dict) and {"new", "old"} <= set(manifest):
            _apply(folder, path, manifest)
            return True
    shutil.rmtree(path)
    return True


def clean_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Remove ``atomic_path`` temporaries in ``folder`` whose writer is gone.

    Examples
    --------
    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp())
    >>> _ = (out / f".a.nii.gz.{os.getpid()}-abcdefgh.nii.gz").write_text("being written")
    >>> clean_stale_temporaries(out)
    []
    """
    removed = []
    for path in Path(folder).iterdir():
        try:
            if _remove_stale_temporary(path):
                removed.append(path)
        except OSError:
            continue
    return removed


def _remove_stale_temporary(path: Path) -> bool:
    match = _TEMPORARY.match(path.name)
    # The suffix repeats the target's own (".tmp" for a name without one): few other
    # hidden files look like that.
    own_suffix = match and (match["name"].endswith(match["suffix"]) or match["suffix"] == ".tmp")
    if not own_suffix or not path.is_file():
        return False
    if match["pid"] is not None:
        if pid_alive(int(match["pid"])):
            return False
    elif time.time() - path.stat().st_mtime < LEGACY_TEMP_AGE_S:
        return False
    path.unlink()
    return True


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


# ---------------------------------------------------------------------------------------
# Model folders
# ---------------------------------------------------------------------------------------

def model_staging_dir(target: str | os.PathLike) -> Path:
    """Where a model folder is built before it replaces ``target`` (same parent, hidden).

    The name is fixed so that an interrupted run is found again and can resume.

    Examples
    --------
    >>> model_staging_dir("/data/models/mine").as_posix()
    '/data/models/.mine.training'
    """
    target = Path(target)
    return target.parent / f".{target.name}{TRAINING_SUFFIX}"


def prepare_model_staging(target: str | os.PathLike, resume: bool = False) -> Path:
    """Get the staging folder where a training run into ``target`` writes; return it.

    An interrupted swap is finished first. ``target`` must be missing, empty or a model
    folder (a study or any other folder is never swapped away). ``resume`` continues the
    interrupted run in the staging folder, or, when there is none, starts from a copy of
    ``target`` (finished fold models are kept, as a run in place used to). Without
    ``resume`` an interrupted run is moved to ``.history`` and training starts afresh.

    Examples
    --------
    >>> import tempfile
    >>> parent = Path(tempfile.mkdtemp())
    >>> prepare_model_staging(parent / "m").name
    '.m.training'
    """
    target = Path(os.path.abspath(target))
    ensure_writable_dir(target.parent)
    recover_model_swap(target)
    if target.exists() and not target.is_dir():
        raise ScoreInputError(target, "is a file; give a model folder to write")
    if target.is_dir() and any(target.iterdir()) and not _is_model_folder(target):
        raise ScoreInputError(target, "is a folder but not a model folder (no ensemble.json, no fold*/); "
                                      "choose a new or empty folder")
    staging = model_staging_dir(target)
    if staging.exists() and not resume:
        kept = target.parent / HISTORY_DIR / f"{staging.name[1:]}-interrupted-{datetime.now():%Y%m%dT%H%M%S%f}"
        kept.parent.mkdir(exist_ok=True)
        os.replace(staging, kept)  # hours of training, perhaps: kept, not deleted
        print(f"warning: an interrupted training run was moved to {kept} (--resume continues one)",
              file=sys.stderr)
    if resume and not staging.exists() and target.is_dir():
        shutil.copytree(target, staging)
        (staging / COMPLETE_MARKER).unlink(missing_ok=True)  # only this run may mark it finished
    staging.mkdir(exist_ok=True)
    return staging


def _is_model_folder(folder: Path) -> bool:
    return (folder / "ensemble.json").exists() or any(p.is_dir() for p in folder.glob("fold[0-9]*"))


def mark_complete(staging: Path) -> None:
    """Mark a staged model folder finished: from now on a swap is rolled forward."""
    write_text_atomic(Path(staging) / COMPLETE_MARKER, datetime.now().isoformat(timespec="seconds") + "\n")


def swap_in_folder(staging: str | os.PathLike, target: str | os.PathLike) -> Path | None:
    """Replace ``target`` by the complete ``staging`` folder; keep the old one in ``.history``.

    Two renames on one file system: ``target`` -> ``<parent>/.history/<name>-<time>/``,
    then ``staging`` -> ``target``. A kill between them leaves ``target`` missing and
    ``staging`` marked complete, which :func:`recover_model_swap` finishes.
    Returns where the previous folder went (None when there was none).

    Examples
    --------
    >>> import tempfile
    >>> parent = Path(tempfile.mkdtemp())
    >>> (parent / "m").mkdir(); _ = (parent / "m" / "v").write_text("old")
    >>> staging = model_staging_dir(parent / "m"); staging.mkdir(); _ = (staging / "v").write_text("new")
    >>> mark_complete(staging)
    >>> old = swap_in_folder(staging, parent / "m")
    >>> (parent / "m" / "v").read_text(), (old / "v").read_text(), staging.exists()
    ('new', 'old', False)
    """
    staging, target = Path(staging), Path(target)
    previous = None
    if target.exists():
        stamp = datetime.now().strftime("%Y%m%dT%H%M%S%f")
        previous = target.parent / HISTORY_DIR / f"{target.name}-{stamp}"
        previous.parent.mkdir(exist_ok=True)
        os.replace(target, previous)
        pause_point("model-swap")
    os.replace(staging, target)
    (target / COMPLETE_MARKER).unlink(missing_ok=True)
    return previous


def recover_model_swap(target: str | os.PathLike) -> bool:
    """Finish a model-folder swap that was interrupted; True when one was finished.

    A staging folder that is not marked complete is an interrupted training run: it
    stays (``score train --resume`` continues it) and ``target`` is left alone.

    Examples
    --------
    >>> import tempfile
    >>> parent = Path(tempfile.mkdtemp())
    >>> staging = model_staging_dir(parent / "m"); staging.mkdir(); mark_complete(staging)
    >>> recover_model_swap(parent / "m"), (parent / "m").is_dir(), recover_model_swap(parent / "m")
    (True, True, False)
    """
    staging = model_staging_dir(target)
    if not (staging / COMPLETE_MARKER).exists():
        return False
    try:
        swap_in_folder(staging, target)
    except OSError as exc:
        raise ScoreInputError(target, f"cannot put the finished model set {staging} in place "
                                      f"({exc.strerror or exc})") from None
    return True


def recover_folders_of(paths: Iterable) -> None:
    """:func:`recover_folder` for the folder of each given file (None entries skipped).

    Readers call this first, so that they see a whole result set after a kill.

    Examples
    --------
    >>> recover_folders_of([None, "/nonexistent/x_dseg.nii.gz"])
    """
    for folder in dict.fromkeys(Path(p).parent for p in paths if p is not None):
        if folder.is_dir():
            recover_folder(folder)
