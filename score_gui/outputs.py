"""What commands write: output paths checked before use, and segmentation result sets.

- :func:`guard_output` refuses an output path that would replace something the user
  has: one of the command's inputs, a label map, a scan, a scan's sidecar, a ``dseg.tsv``
  or the study's QC log. ``force=True`` lets it through and keeps the previous version
  in ``.history/``.
- :func:`write_result` writes one scan's ``score segment`` files as a set (all new or
  all old, see :mod:`score_gui.filesets`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

from score_gui.atomic import HISTORY_DIR, keep_previous_version
from score_gui.errors import ScoreInputError

QC_LOG_NAMES = ("qc_log.sqlite", "qc_log.sqlite-wal", "qc_log.sqlite-shm", "qc_log.sqlite-journal")
FORCE_HELP = ("replace an output that is an input, a label map, a scan or the QC log "
              "(the previous version is kept in .history)")
"""``--force`` of every command that writes a named output file."""

_LABEL_MAP = re.compile(r"_(dseg|lesion)\.nii(\.gz)?$", re.IGNORECASE)
_NIFTI = re.compile(r"\.nii(\.gz)?$", re.IGNORECASE)


def protected_reason(path: str | os.PathLike, inputs: Iterable = (), kind: str = "table") -> str | None:
    """Why writing ``path`` would replace something the user has, or None.

    Parameters
    ----------
    path : path
        The output the command is about to write.
    inputs : paths
        The command's input files (None entries are ignored).
    kind : {"table", "scan", "labels"}
        What the command writes: a table or report, a scan (``score dicom``), or a
        label map; a NIfTI output is only expected for the last two.

    Examples
    --------
    >>> protected_reason("out/metrics.csv") is None
    True
    >>> protected_reason("sub-01_amira_desc-raterA_dseg.nii.gz")
    'is a label map'
    >>> protected_reason("a.csv", inputs=["a.csv"])
    "is one of the command's inputs"
    >>> protected_reason("derivatives/score/qc/qc_log.sqlite")
    "is the study's QC log"
    """
    path = Path(path)
    if any(_same_file(path, Path(i)) for i in inputs if i is not None):
        return "is one of the command's inputs"
    name = path.name
    if name.lower() in QC_LOG_NAMES:
        return "is the study's QC log"
    if _LABEL_MAP.search(name) and kind != "labels":
        return "is a label map"
    if _NIFTI.search(name) and kind == "table":
        return "is a scan (NIfTI)"
    if name == "dseg.tsv":
        return "is the label table beside the label maps"
    if name.lower().endswith(".json") and any(path.with_name(path.stem + s).exists() for s in (".nii.gz", ".nii")):
        return "is the sidecar of a scan or label map"
    return None


def guard_output(path: str | os.PathLike, inputs: Iterable = (), force: bool = False,
                 kind: str = "table") -> Path:
    """Refuse an output that would replace an input or a file of the project (exit 2).

    With ``force`` the output is allowed and an existing file is first copied into
    ``.history/`` beside it, so the previous version is kept. The path is returned.

    Raises
    ------
    ScoreInputError
        When :func:`protected_reason` names a reason and ``force`` is not set, or the
        output is a folder.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> guard_output(folder / "metrics.csv").name
    'metrics.csv'
    >>> guard_output(folder / "x_desc-raterA_dseg.nii.gz")
    Traceback (most recent call last):
    ...
    score_gui.errors.ScoreInputError: ...x_desc-raterA_dseg.nii.gz: is a label map; choose another output file (or add --force to replace it, keeping the previous version in .history)
    """
    path = Path(path)
    if path.is_dir():
        raise ScoreInputError(path, "is a folder, give a file name")
    reason = protected_reason(path, inputs, kind)
    if reason is None:
        return path
    if not force:
        raise ScoreInputError(path, f"{reason}; choose another output file (or add --force to replace "
                                    f"it, keeping the previous version in {HISTORY_DIR})")
    try:
        keep_previous_version(path)
        if path.name.lower() == QC_LOG_NAMES[0]:
            for extra in QC_LOG_NAMES[1:]:  # a copy of the log without its journal is incomplete
                keep_previous_version(path.with_name(extra))
    except OSError as exc:
        raise ScoreInputError(path, f"cannot keep the previous version in {HISTORY_DIR} "
                                    f"({exc.strerror or exc})") from None
    return path


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
        return a.resolve() == b.resolve()
    except (OSError, RuntimeError):  # RuntimeError: a symbolic link loop (Python < 3.13)
        return False


# ---------------------------------------------------------------------------------------
# score segment: one scan's result set
# ---------------------------------------------------------------------------------------

SCORE_SET_SUFFIXES = ("_desc-score_dseg.nii.gz", "_desc-score_dseg.json", "_desc-score_lesion.nii.gz",
                      "_desc-score_disagreement.nii.gz", "_areas.csv")
"""Files of an earlier ``score segment`` of a scan that a new result replaces as a whole."""


def write_result(scan, result, out_dir, members: bool = False, disagreement: bool = False,
                 inputs: Iterable = ()) -> dict[str, Path]:
    """Write the contract's files for one scan as one set; returns ``{kind: path}``.

    The dseg, lesion map and ``<stem>_areas.csv`` (plus member labels and the
    disagreement map when asked) replace the previous result of the scan together:
    the old files go to ``.history/``, and a kill at any moment leaves, once the folder
    is next read or written, either all the old files or all the new ones
    (:func:`score_gui.filesets.write_file_set`).

    Parameters
    ----------
    scan : Scan
    result : SegmentationResult
    out_dir : path
    members, disagreement : bool
        Also write each member's labels, and the disagreement map.
    inputs : paths
        The command's input scans: an output that is one of them is refused.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from score_gui.inference import Ensemble, make_untrained_ensemble, segment_scan
    >>> from score_gui.progress import drain
    >>> from score_gui.scan import Scan
    >>> scan = Scan.from_arrays(np.random.default_rng(0).random((2, 8, 24, 24)), pixel_spacing=(1.0, 1.0))
    >>> ensemble = Ensemble.load(make_untrained_ensemble(tempfile.mkdtemp(), n_members=1, tiny=True))
    >>> written = write_result(scan, drain(segment_scan(scan, ensemble)), tempfile.mkdtemp())
    >>> sorted(written)
    ['areas', 'score_dseg', 'score_lesion']
    """
    from score_gui.filesets import write_file_set

    out_dir = Path(out_dir)
    stem = scan.stem
    also = [stem + s for s in SCORE_SET_SUFFIXES]
    if members:
        # An earlier run's sidecar would mislabel the structures of a member's new map.
        also += [f"{stem}_desc-{label_map.who}_dseg.json" for label_map in result.members.values()]
    for name in also:
        if any(_same_file(out_dir / name, Path(i)) for i in inputs if i is not None):
            raise ScoreInputError(out_dir / name, "is one of the input scans; choose another output folder")

    def write(folder: Path) -> dict[str, Path]:
        return _write_result_files(scan, result, folder, members, disagreement)

    return write_file_set(out_dir, stem, _with_shared_table(out_dir, write), also_replace=also)


def _with_shared_table(out_dir: Path, write):
    """Wrap ``write`` so that ``dseg.tsv`` (shared by every scan) stays out of the set."""

    def wrapped(folder: Path) -> dict[str, Path]:
        written = write(folder)
        table = folder / "dseg.tsv"
        if table.exists():
            if (out_dir / "dseg.tsv").exists():
                table.unlink()
            else:
                os.replace(table, out_dir / "dseg.tsv")  # the same fixed text for every scan
        return written

    return wrapped


def _write_result_files(scan, result, folder: Path, members: bool, disagreement: bool) -> dict[str, Path]:
    """The files of one scan's result, written plainly into ``folder``."""
    from score_gui.inference import write_disagreement
    from score_gui.labels import write_labels
    from score_gui.slice_areas import area_rows, write_areas_csv   # no pandas: see slice_areas

    written = {f"score_{k}": v for k, v in
               write_labels(scan, result.consensus, folder, "score", keep_previous=False).items()}
    _add_sidecar(written, "score")
    rows = area_rows(result.consensus.dseg, result.consensus.lesion, scan.pixel_area_mm2,
                     subject=scan.subject or "", session=scan.session or "", scan=scan.stem,
                     source="score", levels=scan.levels, labelled=result.consensus.labelled)
    areas_path = folder / f"{scan.stem}_areas.csv"
    write_areas_csv(rows, areas_path)
    written["areas"] = areas_path
    if members:
        for label_map in result.members.values():
            for kind, path in write_labels(scan, label_map, folder, label_map.who, keep_previous=False).items():
                written[f"{label_map.who}_{kind}"] = path
            _add_sidecar(written, label_map.who)
    if disagreement:
        written["disagreement"] = write_disagreement(scan, result.disagreement, folder)
    return written


def _add_sidecar(written: dict[str, Path], who: str) -> None:
    """Count a label map's sidecar, when one was written, as a file of the set."""
    from score_gui.labels import sidecar_path

    side = sidecar_path(written[f"{who}_dseg"])
    if side.exists():
        written[f"{who}_sidecar"] = side


def check_result_targets(out_dir: str | os.PathLike, stems: Iterable[str]) -> None:
    """Refuse before any work when a result file's name in ``out_dir`` is taken by a folder.

    Examples
    --------
    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp()); (out / "x_areas.csv").mkdir()
    >>> check_result_targets(out, ["x"])
    Traceback (most recent call last):
    ...
    score_gui.errors.ScoreInputError: ...x_areas.csv: is a folder, cannot write a file there
    """
    for stem in stems:
        for name in (stem + s for s in SCORE_SET_SUFFIXES):
            if (Path(out_dir) / name).is_dir():
                raise ScoreInputError(Path(out_dir) / name, "is a folder, cannot write a file there")


def check_distinct_names(paths: Iterable) -> None:
    """Refuse scans whose outputs would share names in one output folder.

    Outputs are named after the scan's file name (``<stem>_desc-score_dseg.nii.gz``), so
    two scans ``a/scan.nii.gz`` and ``b/scan.nii.gz`` would overwrite each other.

    Examples
    --------
    >>> check_distinct_names(["a/x.nii.gz", "b/y.nii.gz"])
    >>> check_distinct_names(["a/x.nii.gz", "b/x.nii"])
    Traceback (most recent call last):
    ...
    score_gui.errors.ScoreInputError: b/x.nii: has the same name as a/x.nii.gz: their results (x_desc-score_dseg.nii.gz, ...) would overwrite each other; segment them into different output folders or rename one
    """
    from score_gui.scan import nifti_stem

    seen: dict[str, str] = {}
    for path in paths:
        stem = nifti_stem(path)
        if stem in seen:
            if _same_file(Path(seen[stem]), Path(path)):
                raise ScoreInputError(path, "is given twice")
            raise ScoreInputError(path, f"has the same name as {seen[stem]}: their results "
                                        f"({stem}_desc-score_dseg.nii.gz, ...) would overwrite each other; "
                                        "segment them into different output folders or rename one")
        seen[stem] = str(path)
