"""Per-slice compartment areas in mm² (contract section 3).

One row per slice and source. ``na_*`` columns are normal-appearing tissue (the
compartment minus lesion voxels). A slice nobody labelled (all 0) has empty areas, not
zero; a structure a partial label map does not cover (see ``LabelMap.labelled``) is
empty too. Failed slices stay in the table, marked ``qc_status = fail``, and
:func:`passed` drops them before any aggregate.

Examples
--------
>>> import numpy as np
>>> dseg = np.zeros((2, 4, 4), np.uint8); dseg[0, 1:3, 1:3] = 2; dseg[0, 1, 1] = 3
>>> table = areas_table(dseg, None, pixel_area_mm2=0.5, labelled={"canal", "cord", "gm", "horns"})
>>> table.loc[0, ["cord", "wm", "gm"]].tolist()
[2.0, 1.5, 0.5]
>>> bool(np.isnan(table.loc[1, "cord"]))  # slice 1 is unlabelled
True
"""

from __future__ import annotations

import json as _json
import os as _os
from collections.abc import Generator, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from score_gui.atomic import atomic_path
from score_gui.errors import ScoreInputError
from score_gui.labels import load_label_volume
from score_gui.naming import LabelFileName, parse_label_name  # noqa: F401  (LabelFileName: re-exported)
from score_gui.niftilib import nib as _nib
from score_gui.progress import Progress
from score_gui.slice_areas import AREA_COLUMNS, COLUMNS, ID_COLUMNS, area_rows  # noqa: F401  (re-exported)
from score_gui.slice_areas import write_areas_csv as write_rows_csv


def areas_table(dseg: np.ndarray, lesion: np.ndarray | None, pixel_area_mm2: float, **names) -> pd.DataFrame:
    """Areas of every slice of one label map as a table with :data:`COLUMNS`
    (:func:`score_gui.slice_areas.area_rows`: its parameters, its rules)."""
    return pd.DataFrame(area_rows(dseg, lesion, pixel_area_mm2, **names), columns=COLUMNS)


def passed(table: pd.DataFrame) -> pd.DataFrame:
    """Rows that count in aggregates: everything except ``qc_status == 'fail'``."""
    return table[table["qc_status"] != "fail"]


def write_areas_csv(table: pd.DataFrame, path) -> None:
    """Write an areas table atomically, columns in contract order (:func:`score_gui.slice_areas.write_areas_csv`)."""
    write_rows_csv(table[COLUMNS].to_dict("records"), path)


# ---------------------------------------------------------------------------------------
# Label map files and whole studies
# ---------------------------------------------------------------------------------------



QC_TSV_COLUMNS = ["subject", "session", "scan", "slice", "source", "status", "reason", "reviewer",
                  "time", "comment"]
"""Columns of ``score qc export`` (contract section 4)."""

QcMap = dict[int, tuple[str, str]]


@dataclass
class LabelFiles:
    """A dseg and its lesion map as read and checked by :func:`read_label_files` (file grid X, Y, S)."""

    dseg_path: Path
    img: _nib.Nifti1Image
    dseg: np.ndarray
    lesion_path: Path | None
    lesion: np.ndarray | None
    scan_path: Path | None


def beside_lesion(dseg_path: str | Path) -> Path | None:
    """The ``_lesion`` file beside a ``_dseg`` file, when it exists."""
    dseg_path = Path(dseg_path)
    candidate = Path(str(dseg_path).replace("_dseg.nii", "_lesion.nii"))
    return candidate if candidate != dseg_path and candidate.exists() else None


def read_label_files(dseg_path: str | Path, lesion_path: str | Path | None = None, *,
                     find_lesion: bool = True, scan_path: str | Path | None = None,
                     check_scan: bool = True) -> LabelFiles:
    """Read a label map and its lesion map from their files, checked as every command checks them.

    The one reading path of ``score areas``, ``score evaluate`` and study tables: voxel type,
    integer values, values in the table (:func:`score_gui.labels.check_label_values`), the
    lesion map on the dseg's grid and affine, and both on the scan's grid and affine when the
    scan is found (beside the labels or in their study). Only headers of the scan are read.

    Parameters
    ----------
    dseg_path, lesion_path : path
        ``lesion_path=None`` with ``find_lesion`` takes the ``_lesion`` file beside the dseg.
    scan_path : path, optional
        The scan; default: :func:`find_scan_for_label`.
    check_scan : bool
        Compare grid and affine with the scan's header.

    Raises
    ------
    ScoreInputError
        Missing or corrupt files, values outside the table, grid or affine mismatch.
    """
    from score_gui.labels import check_label_values

    dseg_path = Path(dseg_path)
    img, data = load_label_volume(dseg_path, "label map")
    check_label_values(dseg_path, data, "label map", slice_axis=2)
    if lesion_path is None and find_lesion:
        lesion_path = beside_lesion(dseg_path)
    lesion = None
    if lesion_path is not None:
        lesion_path = Path(lesion_path)
        lesion_img, lesion = load_label_volume(lesion_path, "lesion map")
        if lesion.shape != data.shape:
            raise ScoreInputError(lesion_path, f"lesion grid {lesion.shape} does not match the "
                                               f"label map's {data.shape}")
        if not np.allclose(lesion_img.affine, img.affine, atol=1e-3):
            raise ScoreInputError(lesion_path, "lesion affine differs from the label map's")
        check_label_values(lesion_path, lesion, "lesion map", slice_axis=2)
    scan_path = Path(scan_path) if scan_path else find_scan_for_label(dseg_path)
    if scan_path is not None and check_scan:
        _check_scan_grid(scan_path, img, data.shape, dseg_path)
    return LabelFiles(dseg_path, img, data, lesion_path, lesion, scan_path)


def header_pixel_area(img, path: str | Path | None = None) -> float:
    """In-plane pixel area ``pixdim[1] * pixdim[2]`` in mm² (contract section 1) of ``img`` read from ``path``."""
    pixdim = img.header["pixdim"]
    area = float(pixdim[1]) * float(pixdim[2])
    if not np.isfinite(area) or area <= 0:
        raise ScoreInputError(path or img.get_filename(),
                              f"invalid pixel size {tuple(float(p) for p in pixdim[1:3])} in the header")
    return abs(area)


def find_scan_for_label(dseg_path: str | Path, stem: str | None = None) -> Path | None:
    """The scan a label map belongs to: beside it, or in the study the derivatives belong to."""
    dseg_path = Path(dseg_path)
    stem = stem or parse_label_name(dseg_path).stem
    folders = [dseg_path.parent]
    parts = dseg_path.resolve().parent.parts
    for i in range(len(parts) - 1):
        if parts[i] == "derivatives" and parts[i + 1] == "score":
            folders.append(Path(*parts[:i], *parts[i + 2:]))
            break
    for folder in folders:
        for suffix in (".nii.gz", ".nii"):
            candidate = folder / f"{stem}{suffix}"
            if candidate.is_file():
                return candidate
    return None


def _scan_levels(scan_path: Path | None, n_slices: int) -> list[str] | None:
    if scan_path is None:
        return None
    side = scan_path.with_name(parse_label_name(scan_path).stem + ".json")
    if not side.is_file():
        return None
    try:
        levels = _json.loads(side.read_text(encoding="utf-8")).get("VertebralLevels")
    except (ValueError, AttributeError):
        raise ScoreInputError(side, "invalid JSON sidecar") from None
    if isinstance(levels, list) and len(levels) == n_slices:
        return [str(v) for v in levels]
    return None


def label_file_areas(dseg_path: str | Path, lesion_path: str | Path | None = None, *,
                     qc: QcMap | None = None, scan_path: str | Path | None = None,
                     find_lesion: bool = True, check_scan: bool = True) -> pd.DataFrame:
    """Areas table of one label map file (and its lesion map) with :data:`COLUMNS`.

    Only label maps are read (never the 4D scan data): the grid comes from the dseg, the
    pixel area from its header (``pixdim[1] * pixdim[2]``), subject/session/scan/source
    from the file name ``<stem>_desc-<who>_dseg``, and the vertebral levels from the
    scan's JSON sidecar when the scan is found beside the labels or in their study.

    Parameters
    ----------
    dseg_path, lesion_path : path
        The dseg and (optional) lesion map. ``lesion_path=None`` with ``find_lesion``
        uses ``<stem>_desc-<who>_lesion.nii.gz`` beside the dseg when it exists.
    qc : dict, optional
        ``{slice: (status, reason)}`` for this scan and source.
    check_scan : bool
        Compare the grid with the scan's header when the scan is found.

    Raises
    ------
    ScoreInputError
        Missing or corrupt files, values outside 0-6, lesion or scan grid mismatch.
    """
    from score_gui.labels import read_sidecar_labels

    files = read_label_files(dseg_path, lesion_path, find_lesion=find_lesion, scan_path=scan_path,
                             check_scan=check_scan)
    names = parse_label_name(files.dseg_path)
    labelled = read_sidecar_labels(files.dseg_path)
    labelled = set(labelled) if labelled is not None else None
    # Areas need counts only, so the file grid (X, Y, S) -> (S, X, Y) without reorientation.
    dseg = np.moveaxis(files.dseg.astype(np.uint8, copy=False), 2, 0)
    lesion = None if files.lesion is None else np.moveaxis(files.lesion.astype(np.uint8, copy=False), 2, 0)
    return areas_table(dseg, lesion, header_pixel_area(files.img, files.dseg_path), subject=names.subject,
                       session=names.session, scan=names.stem, source=names.source,
                       levels=_scan_levels(files.scan_path, dseg.shape[0]), labelled=labelled, qc=qc)


def _check_scan_grid(scan_path: Path, img, shape: tuple, label_path: Path) -> None:
    try:
        scan_img = _nib.load(str(scan_path))  # header only: the data are never read
    except Exception:  # noqa: BLE001 - a broken scan does not stop the areas
        return
    if tuple(scan_img.shape[:3]) != tuple(shape):
        raise ScoreInputError(label_path, f"label grid {tuple(shape)} does not match the scan "
                                          f"{scan_path.name} {tuple(scan_img.shape[:3])}")
    if not np.allclose(scan_img.affine, img.affine, atol=1e-3):
        raise ScoreInputError(label_path, f"affine differs from the scan {scan_path.name}")


# -- QC ---------------------------------------------------------------------------------

class QcDecisions:
    """QC decisions in force, looked up per scan and source.

    Built from ``score qc export``'s TSV (contract section 4) or a study's QC log. The
    decision in force for a source is decided by :func:`score_gui.qc.log.decision_in_force`:
    an image-level fail recorded on any source (or on ``*``) fails the slice for every source;
    a segmentation-level fail stays with its source; a decision on ``*`` (or, in older
    TSVs, with an empty source) applies to every source.

    Parameters
    ----------
    table : DataFrame
        Decisions with at least ``scan``, ``slice`` and ``status``.
    ordered : bool
        The rows are already in the order they were made (a log's); otherwise the later
        decision is the later ``time`` (compared in UTC), then the later row.

    Examples
    --------
    >>> import pandas as pd
    >>> table = pd.DataFrame({"scan": ["s1", "s1"], "slice": [2, 2], "source": ["score", "raterA"],
    ...                       "status": ["fail", "pass"], "reason": ["image_artifact", ""],
    ...                       "time": ["2026-01-01T10:00+00:00", "2026-01-01T09:00+00:00"]})
    >>> QcDecisions(table).status_map("s1", "raterA")   # the later image fail counts for raterA
    {2: ('fail', 'image_artifact')}
    """

    def __init__(self, table: pd.DataFrame, ordered: bool = False):
        from score_gui.qc.log import rows_by_slice, live_rows

        table = table.copy()
        for column in ("source", "reason", "time", "scan"):
            if column not in table:
                table[column] = ""
        table = table.fillna({"source": "", "reason": "", "time": ""})
        if not ordered:  # a later decision wins: by the moment, then by position in the file
            table["_when"] = pd.to_datetime(table["time"].astype(str), utc=True, errors="coerce",
                                            format="ISO8601")
            table["_order"] = np.arange(len(table))
            table = table.sort_values(["_when", "_order"], kind="stable", na_position="first")
        self._slices: dict[str, dict[int, list[dict]]] = {}
        for (scan, slice_index), rows in rows_by_slice(live_rows(table)).items():
            self._slices.setdefault(scan, {})[slice_index] = rows
        self._maps: dict[tuple[str, str], QcMap] = {}

    def status_map(self, scan_stem: str, source: str) -> QcMap:
        """``{slice: (status, reason)}`` in force for one source of one scan."""
        from score_gui.qc.log import decision_in_force

        key = (scan_stem, source)
        if key not in self._maps:
            found = {}
            for slice_index, rows in sorted(self._slices.get(scan_stem, {}).items()):
                row = decision_in_force(rows, source)
                if row is not None:
                    found[slice_index] = (str(row["status"]), str(row["reason"]))
            self._maps[key] = found
        return dict(self._maps[key])


def read_qc(path: str | Path) -> QcDecisions:
    """QC decisions from a QC TSV (``score qc export``), a study, its QC folder or log file."""
    from score_gui.qc.log import QCLog, _is_sqlite, read_qc_table

    path = Path(path)
    if not path.exists():
        raise ScoreInputError(path, "QC file not found")
    if path.is_dir() or _is_sqlite(path):
        return QcDecisions(QCLog(path).decisions(), ordered=True)  # the log's own order
    return QcDecisions(read_qc_table(path))


# -- Studies ----------------------------------------------------------------------------

def study_label_files(study, sources: Iterable[str] | None = None) -> list[tuple[Path, Path | None]]:
    """``(dseg, scan)`` pairs of every label map of a study, in scan then source order."""
    wanted = None if sources is None else set(sources)
    pairs = []
    for entry in study.scans:
        for who in entry.label_sources():
            if wanted is None or who in wanted:
                pairs.append((entry.dseg_path(who), entry.path))
    return pairs


def _areas_of_one(args) -> tuple[pd.DataFrame | None, tuple[str | None, str] | None]:
    """One label map's table, or its bad-input error as ``(path, problem)`` (picklable from a pool)."""
    dseg_path, scan_path, qc_map = args
    try:
        return label_file_areas(dseg_path, qc=qc_map, scan_path=scan_path), None
    except ScoreInputError as exc:
        return None, (exc.path, exc.problem)


def study_areas_job(study, sources: Iterable[str] | None = None, qc: QcDecisions | None = None,
                    workers: int | None = None, errors: dict[str, str] | None = None,
                    ) -> Generator[Progress, None, pd.DataFrame]:
    """Areas of every label map in a study (score, raters, consensus, ...), QC applied.

    A generator yielding one :class:`Progress` per label map and returning the table.
    ``workers`` > 1 reads files in a process pool (reading and decompressing the label
    maps is the cost; the default picks ``min(4, cpu count)`` for large studies).

    Without ``errors`` the first bad file stops the job (:class:`ScoreInputError`). With a
    dict, a bad file's error is put there (``{dseg path: message}``) and the table holds
    the label maps that could be read: a cohort run reports the bad ones and keeps the rest.
    """
    import time

    started = time.monotonic()
    pairs = study_label_files(study, sources)
    jobs = []
    for dseg_path, scan_path in pairs:
        names = parse_label_name(dseg_path)
        qc_map = qc.status_map(names.stem, names.source) if qc is not None else None
        jobs.append((dseg_path, scan_path, qc_map))
    if workers is None:
        workers = min(4, _os.cpu_count() or 1) if len(jobs) >= 200 else 1
    tables = []
    if workers > 1 and len(jobs) > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=workers) as pool:
            outcomes = pool.map(_areas_of_one, jobs, chunksize=16)
            for done, (job, (table, error)) in enumerate(zip(jobs, outcomes), start=1):
                _keep(tables, errors, job[0], table, error)
                yield Progress(done, len(jobs), job[0].name, started)
    else:
        for done, job in enumerate(jobs, start=1):
            _keep(tables, errors, job[0], *_areas_of_one(job))
            yield Progress(done, len(jobs), f"{job[0].name}", started)
    if not tables:
        return pd.DataFrame(columns=COLUMNS)
    return pd.concat(tables, ignore_index=True)[COLUMNS]


def _keep(tables: list, errors: dict | None, dseg_path: Path, table, error) -> None:
    if error is None:
        tables.append(table)
    elif errors is None:
        raise ScoreInputError(*error)
    else:
        errors[str(dseg_path)] = str(ScoreInputError(*error))


def study_areas(study, sources=None, qc=None, workers=None, errors=None) -> pd.DataFrame:
    """:func:`study_areas_job` run to the end, silently."""
    from score_gui.progress import drain

    return drain(study_areas_job(study, sources, qc, workers, errors))


def write_areas_table(table: pd.DataFrame, path: str | Path) -> Path:
    """Write an areas table as CSV, or as Excel when ``path`` ends in ``.xlsx``.

    The Excel workbook has an ``areas`` sheet (every row) and a ``summary`` sheet (mean
    and SD per source and compartment over the slices that passed QC).
    """
    path = Path(path)
    if path.suffix.lower() == ".xlsx":
        write_workbook(path, {"areas": table[COLUMNS], "summary": summary_table(table)})
    else:
        write_areas_csv(table, path)
    return path


def write_workbook(path: str | Path, sheets: dict[str, pd.DataFrame]) -> Path:
    """Write an Excel workbook atomically, one sheet per table, in the order given."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with pd.ExcelWriter(tmp, engine="openpyxl") as writer:
            for name, sheet in sheets.items():
                sheet.to_excel(writer, sheet_name=name, index=False)
    return path


def summary_table(table: pd.DataFrame, by: tuple[str, ...] = ("source",)) -> pd.DataFrame:
    """Mean, SD and slice count per group and compartment, failed slices left out.

    Examples
    --------
    >>> t = pd.DataFrame({c: [""] * 2 for c in COLUMNS})
    >>> t["source"] = "score"; t["qc_status"] = ["pass", "fail"]
    >>> for c in AREA_COLUMNS: t[c] = [1.0, 100.0]
    >>> row = summary_table(t).query("compartment == 'cord'").iloc[0]
    >>> float(row["mean_mm2"]), int(row["n_slices"])
    (1.0, 1)
    """
    kept = passed(table)
    long = kept.melt(id_vars=list(by), value_vars=AREA_COLUMNS, var_name="compartment",
                     value_name="area")
    long["area"] = pd.to_numeric(long["area"], errors="coerce")
    grouped = long.dropna(subset=["area"]).groupby(list(by) + ["compartment"], sort=False)["area"]
    out = grouped.agg(mean_mm2="mean", sd_mm2="std", n_slices="count").reset_index()
    order = {c: i for i, c in enumerate(AREA_COLUMNS)}
    return out.sort_values(list(by) + ["compartment"], key=lambda s: s.map(order)
                           if s.name == "compartment" else s).reset_index(drop=True)
