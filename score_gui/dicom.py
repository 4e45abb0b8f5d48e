"""Import AMIRA DICOM images into the scan format (4D NIfTI ``(X, Y, S, T)`` + JSON sidecar).

An AMIRA acquisition comes as one image per slice position and inversion time, in one or
several series (often one series per inversion time), or as multi-frame files. The images
are grouped by

* slice position: ``ImagePositionPatient`` projected on the slice normal (the cross product
  of the two ``ImageOrientationPatient`` directions), and
* inversion time: the ``InversionTime`` tag; when no image has it, the acquisition order
  (series, acquisition and instance number, frame number) within each slice position.

The affine comes from the DICOM geometry (LPS) turned into NIfTI's RAS; pixel values get
``RescaleSlope``/``RescaleIntercept``. Anything incomplete or inconsistent is a
:class:`~score_gui.errors.ScoreInputError` that says what is missing.

Examples
--------
>>> import numpy as np
>>> slice_normal([1, 0, 0, 0, 1, 0]).tolist()
[0.0, 0.0, 1.0]
>>> lps_to_ras(np.eye(4))[:3, :3].diagonal().tolist()
[-1.0, -1.0, 1.0]
"""

from __future__ import annotations

import os
import time
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from score_gui.errors import ScoreInputError
from score_gui.progress import Progress, drain

POSITION_DECIMALS = 2
"""Slice positions closer than 0.01 mm are one slice position."""

TI_DECIMALS = 1
"""Inversion times are told apart to 0.1 ms."""


@dataclass
class Frame:
    """One 2D image of the acquisition with its geometry (from a file or one frame of it)."""

    file: Path
    frame: int | None
    position: np.ndarray          # ImagePositionPatient (LPS mm) of the first pixel
    orientation: np.ndarray       # ImageOrientationPatient: row direction, column direction
    spacing: tuple[float, float]  # PixelSpacing: between rows, between columns (mm)
    shape: tuple[int, int]        # Rows, Columns
    inversion_time: float | None
    order: tuple                  # acquisition order, used when there are no inversion times
    slope: float
    intercept: float
    series: str
    thickness: float | None

    def where(self) -> str:
        return f"{self.file}" + (f" frame {self.frame + 1}" if self.frame is not None else "")


def slice_normal(orientation) -> np.ndarray:
    """Unit normal of the image plane from ``ImageOrientationPatient`` (LPS)."""
    row_dir, col_dir = np.asarray(orientation[:3], float), np.asarray(orientation[3:6], float)
    normal = np.cross(row_dir, col_dir)
    return normal / np.linalg.norm(normal)


def lps_to_ras(affine: np.ndarray) -> np.ndarray:
    """DICOM patient coordinates (LPS) to NIfTI world coordinates (RAS): negate x and y."""
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ np.asarray(affine, float)


# ---------------------------------------------------------------------------------------
# Reading the files
# ---------------------------------------------------------------------------------------

def _float(value, default=None):
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def _first(sequence_owner, keyword: str):
    """The first item of a sequence element, or None."""
    sequence = getattr(sequence_owner, keyword, None)
    return sequence[0] if sequence else None


def _frames_of(path: Path, ds) -> list[Frame]:
    """Every 2D image in one DICOM dataset (classic single-frame or multi-frame)."""
    n_frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    shared = _first(ds, "SharedFunctionalGroupsSequence")
    per_frame = getattr(ds, "PerFrameFunctionalGroupsSequence", None)
    base_order = (int(getattr(ds, "SeriesNumber", 0) or 0), int(getattr(ds, "AcquisitionNumber", 0) or 0),
                  int(getattr(ds, "InstanceNumber", 0) or 0))
    frames = []
    for index in range(n_frames):
        groups = [g for g in ((per_frame[index] if per_frame and index < len(per_frame) else None), shared, ds)
                  if g is not None]
        frames.append(_frame(path, ds, groups, index if n_frames > 1 else None, base_order + (index,)))
    return frames


def _lookup(groups, sequence_keyword: str | None, keyword: str):
    """A value from the first functional group (per-frame, shared) or the dataset that has it."""
    for group in groups:
        owner = _first(group, sequence_keyword) if sequence_keyword else group
        if owner is not None and keyword in owner:
            value = owner[keyword].value
            if value is not None and value != "":
                return value
    return None


def _value(groups, ds, sequence_keyword: str, keyword: str):
    """From a functional group's sequence first (multi-frame), else the dataset's own tag."""
    value = _lookup(groups, sequence_keyword, keyword)
    if value is None and keyword in ds:
        value = ds[keyword].value
    return value


def _first_number(value):
    """A number, or the first of several (``InversionTimes`` is multi-valued)."""
    if value is not None and not isinstance(value, (str, bytes)) and hasattr(value, "__len__"):
        value = value[0] if len(value) else None
    return _float(value)


def _frame(path: Path, ds, groups, frame_index, order) -> Frame:
    where = f"{path}" + (f" frame {frame_index + 1}" if frame_index is not None else "")
    geometry = {
        "ImagePositionPatient": (_value(groups, ds, "PlanePositionSequence", "ImagePositionPatient"), 3),
        "ImageOrientationPatient": (_value(groups, ds, "PlaneOrientationSequence", "ImageOrientationPatient"), 6),
        "PixelSpacing": (_value(groups, ds, "PixelMeasuresSequence", "PixelSpacing"), 2),
    }
    for name, (value, n) in geometry.items():
        if value is None or len(value) != n or any(_float(v) is None for v in value):
            raise ScoreInputError(where, f"missing or invalid {name}; cannot place the image in space")
    position, orientation, spacing = (np.array([float(v) for v in value]) for value, _ in geometry.values())
    if min(spacing) <= 0:
        raise ScoreInputError(where, f"invalid PixelSpacing {tuple(spacing)}")
    if np.linalg.norm(np.cross(orientation[:3], orientation[3:])) < 1e-3:
        raise ScoreInputError(where, f"invalid ImageOrientationPatient {tuple(orientation)}")
    inversion = _first_number(_lookup(groups, "MRModifierSequence", "InversionTimes"))
    if inversion is None:
        inversion = _first_number(_value(groups, ds, "MRModifierSequence", "InversionTime"))
    transform = "PixelValueTransformationSequence"
    return Frame(file=path, frame=frame_index, position=position, orientation=orientation,
                 spacing=(float(spacing[0]), float(spacing[1])), shape=(int(ds.Rows), int(ds.Columns)),
                 inversion_time=inversion, order=order,
                 slope=_float(_value(groups, ds, transform, "RescaleSlope"), 1.0),
                 intercept=_float(_value(groups, ds, transform, "RescaleIntercept"), 0.0),
                 series=str(getattr(ds, "SeriesInstanceUID", "")),
                 thickness=_float(_value(groups, ds, "PixelMeasuresSequence", "SliceThickness")))


def looks_like_dicom(folder: str | Path, limit: int = 200) -> bool:
    """Whether a folder holds DICOM files: one of its first ``limit`` files (recursively)
    has the ``DICM`` marker at byte 128 or a ``.dcm``/``.ima`` name. Cheap: reads 132 bytes
    a file, parses nothing (the app uses it to tell a DICOM folder from a loose NIfTI one).

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "notes.txt").write_text("not an image")
    >>> looks_like_dicom(folder)
    False
    >>> _ = (folder / "IM0001").write_bytes(bytes(128) + b"DICM" + bytes(8))
    >>> looks_like_dicom(folder)
    True
    """
    files = (f for f in Path(folder).rglob("*") if f.is_file())
    for _, file in zip(range(limit), files):
        if file.suffix.lower() in (".dcm", ".ima"):
            return True
        try:
            with open(file, "rb") as handle:
                head = handle.read(132)
        except OSError:
            continue
        if head[128:132] == b"DICM":
            return True
    return False


def _candidate_files(folder: Path) -> list[Path]:
    files = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        files.extend(Path(root) / n for n in sorted(names) if not n.startswith(".") and n.upper() != "DICOMDIR")
    return files


def read_dicom_frames(folder: str | Path) -> Generator[Progress, None, tuple[list[Frame], dict]]:
    """Read every DICOM image in ``folder`` (recursively); other files are skipped.

    ``folder`` may also be a single (multi-frame) DICOM file.
    Yields :class:`~score_gui.progress.Progress` per file and returns ``(frames, datasets)``
    where ``datasets`` maps each file to its pydicom dataset (pixels decoded later).
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    folder = Path(folder)
    if not folder.exists():
        raise ScoreInputError(folder, "folder not found")
    files = _candidate_files(folder) if folder.is_dir() else [folder]  # or one multi-frame file
    frames, datasets, started = [], {}, time.monotonic()
    for done, path in enumerate(files, 1):
        try:
            ds = pydicom.dcmread(path)
        except (InvalidDicomError, EOFError, OSError, ValueError, TypeError, KeyError, AttributeError):
            ds = None  # not DICOM (or unreadable): notes, DICOMDIR leftovers, thumbnails
        if ds is not None and "PixelData" in ds and "Rows" in ds:
            datasets[path] = ds
            frames.extend(_frames_of(path, ds))
        yield Progress(done, len(files), f"reading {path.name}", started)
    if not frames:
        raise ScoreInputError(folder, f"no DICOM images found ({len(files)} files looked at)")
    return frames, datasets


# ---------------------------------------------------------------------------------------
# Grouping and checking
# ---------------------------------------------------------------------------------------

def _check_same_geometry(frames: list[Frame]) -> None:
    first = frames[0]
    for frame in frames[1:]:
        if frame.shape != first.shape:
            raise ScoreInputError(frame.where(), f"image size {frame.shape} differs from {first.shape} "
                                                 f"of {first.where()}; import one scan per folder")
        if not np.allclose(frame.orientation, first.orientation, atol=1e-3):
            raise ScoreInputError(frame.where(), "image orientation differs from the other images "
                                                 "(another scan in the folder?); import one scan per folder")
        if not np.allclose(frame.spacing, first.spacing, atol=1e-4):
            raise ScoreInputError(frame.where(), f"pixel spacing {frame.spacing} differs from "
                                                 f"{first.spacing} of {first.where()}")


def _fmt_ti(value: float) -> str:
    return f"{value:g}"


def group_frames(frames: list[Frame]) -> tuple[list[float], list[list[Frame]], list[float] | None]:
    """Arrange frames as ``[slice][inversion]``, slices sorted along the normal.

    Returns
    -------
    positions : list of float
        Slice positions along the normal (mm), ascending.
    grid : list of list of Frame
        ``grid[s][t]``: the image of slice ``s`` at inversion ``t``.
    inversion_times : list of float or None
        The inversion times in ms (ascending), or None when the files have none.
    """
    _check_same_geometry(frames)
    normal = slice_normal(frames[0].orientation)
    by_position: dict[float, list[Frame]] = {}
    for frame in frames:
        key = round(float(frame.position @ normal), POSITION_DECIMALS) + 0.0
        by_position.setdefault(key, []).append(frame)
    positions = sorted(by_position)
    has_ti = [f.inversion_time is not None for f in frames]
    if any(has_ti) and not all(has_ti):
        lacking = next(f for f in frames if f.inversion_time is None)
        raise ScoreInputError(lacking.where(), "has no InversionTime while other images have one")
    if all(has_ti):
        return positions, _grid_by_inversion_time(positions, by_position), sorted(
            {round(f.inversion_time, TI_DECIMALS) for f in frames})
    return positions, _grid_by_order(positions, by_position), None


def _grid_by_inversion_time(positions, by_position) -> list[list[Frame]]:
    all_times = sorted({round(f.inversion_time, TI_DECIMALS) for fs in by_position.values() for f in fs})
    grid = []
    for index, position in enumerate(positions):
        at = {}
        for frame in by_position[position]:
            ti = round(frame.inversion_time, TI_DECIMALS)
            if ti in at:
                raise ScoreInputError(frame.where(), f"slice {index} ({position:g} mm) has two images for "
                                                     f"TI {_fmt_ti(ti)} ms (also {at[ti].where()})")
            at[ti] = frame
        missing = [t for t in all_times if t not in at]
        if missing:
            raise ScoreInputError(by_position[position][0].file.parent,
                                  f"incomplete series: slice {index} ({position:g} mm) has {len(at)} of "
                                  f"{len(all_times)} inversion times; missing TI "
                                  f"{', '.join(_fmt_ti(t) for t in missing)} ms")
        grid.append([at[t] for t in all_times])
    return grid


def _grid_by_order(positions, by_position) -> list[list[Frame]]:
    counts = [len(by_position[p]) for p in positions]
    expected = max(counts)
    for index, (position, count) in enumerate(zip(positions, counts)):
        if count != expected:
            raise ScoreInputError(by_position[position][0].file.parent,
                                  f"incomplete series: slice {index} ({position:g} mm) has {count} of "
                                  f"{expected} images (no InversionTime tags to say which is missing)")
    return [sorted(by_position[p], key=lambda f: f.order) for p in positions]


def _slice_step(positions: list[float], frames_first: Frame, folder: Path) -> float:
    if len(positions) == 1:
        return frames_first.thickness or 1.0
    gaps = np.diff(positions)
    step = float(np.median(gaps))
    if not np.allclose(gaps, step, atol=max(0.01, 0.01 * step)):
        largest = int(np.argmax(np.abs(gaps - step)))
        raise ScoreInputError(folder, f"slice positions are not evenly spaced ({gaps.min():g} to "
                                      f"{gaps.max():g} mm; gap after slice {largest}): a slice is missing "
                                      f"or two scans are mixed")
    return step


# ---------------------------------------------------------------------------------------
# Assembling the volume
# ---------------------------------------------------------------------------------------

def dicom_affine(first: Frame, step: float) -> np.ndarray:
    """RAS affine of the file grid ``(X = column, Y = row, S = slice)``."""
    row_dir = first.orientation[:3] / np.linalg.norm(first.orientation[:3])
    col_dir = first.orientation[3:6] / np.linalg.norm(first.orientation[3:6])
    row_spacing, col_spacing = first.spacing
    lps = np.eye(4)
    lps[:3, 0] = row_dir * col_spacing   # along a row: the column index grows
    lps[:3, 1] = col_dir * row_spacing   # down a column: the row index grows
    lps[:3, 2] = slice_normal(first.orientation) * step
    lps[:3, 3] = first.position
    return lps_to_ras(lps)


def _pixels(frame: Frame, datasets: dict, cache: dict) -> np.ndarray:
    if frame.file not in cache:
        try:
            cache[frame.file] = datasets[frame.file].pixel_array
        except Exception as exc:  # noqa: BLE001 - compressed syntax without a decoder, bad data
            raise ScoreInputError(frame.file, f"cannot decode pixel data ({exc})") from None
    array = cache[frame.file]
    array = array[frame.frame] if frame.frame is not None else array
    if array.shape != frame.shape:
        raise ScoreInputError(frame.where(), f"pixel data of shape {array.shape}, expected {frame.shape}")
    return array.astype(np.float32) * np.float32(frame.slope) + np.float32(frame.intercept)


def dicom_volume_job(folder: str | Path) -> Generator[Progress, None, tuple[np.ndarray, np.ndarray, dict]]:
    """Read a DICOM folder into ``(data (X, Y, S, T) float32, RAS affine, sidecar dict)``."""
    folder = Path(folder)
    frames, datasets = yield from read_dicom_frames(folder)
    _, grid, inversion_times = group_frames(frames)
    first = grid[0][0]
    # The grouping keys are rounded; the slice step comes from the exact positions.
    normal = slice_normal(first.orientation)
    positions = [float(np.mean([f.position @ normal for f in images])) for images in grid]
    step = _slice_step(positions, first, folder)
    rows, cols = first.shape
    data = np.empty((cols, rows, len(positions), len(grid[0])), np.float32)
    cache: dict = {}
    started = time.monotonic()
    for s, images in enumerate(grid):
        for t, frame in enumerate(images):
            data[:, :, s, t] = _pixels(frame, datasets, cache).T  # (rows, cols) -> (X = col, Y = row)
        yield Progress(s + 1, len(grid), f"slice {s + 1} of {len(grid)}", started)
    # The grid starts at the lowest slice position; its first pixel is that frame's position.
    affine = dicom_affine(grid[0][0], step)
    sidecar = {"Source": "DICOM", "SeriesInstanceUIDs": sorted({f.series for f in frames if f.series})}
    if inversion_times is not None:
        sidecar["InversionTimes"] = inversion_times
    description = getattr(datasets[first.file], "SeriesDescription", None)
    if description:
        sidecar["SeriesDescription"] = str(description)
    return data, affine, sidecar


def import_dicom_folder_job(folder: str | Path, out_path: str | Path, subject: str | None = None,
                            session: str | None = None) -> Generator[Progress, None, Path]:
    """Generator form of :func:`import_dicom_folder` (yields progress, returns the NIfTI path)."""
    from score_gui.scan import InPlaneOrientation, Scan, write_scan

    out_path = Path(out_path)
    if not out_path.name.endswith((".nii.gz", ".nii")):
        raise ScoreInputError(out_path, "output must end with .nii.gz or .nii")
    data, affine, sidecar = yield from dicom_volume_job(folder)
    orientation = InPlaneOrientation.from_affine(affine)
    zooms = tuple(float(np.linalg.norm(affine[:3, i])) for i in range(3))
    scan = Scan(images=orientation.to_display(data), pixel_spacing=orientation.display_spacing(zooms[:2]),
                inversion_times=sidecar.get("InversionTimes"), affine=affine, orientation=orientation,
                path=out_path, subject=subject, session=session, slice_thickness=zooms[2])
    metadata = {k: v for k, v in sidecar.items() if k != "InversionTimes"}
    return write_scan(scan, out_path, metadata=metadata)


def import_dicom_folder(folder: str | Path, out_path: str | Path, subject: str | None = None,
                        session: str | None = None) -> Path:
    """Turn a folder of AMIRA DICOM images into a scan: 4D NIfTI ``(X, Y, S, T)`` + sidecar.

    Parameters
    ----------
    folder : path
        Folder searched recursively; files that are not DICOM images are skipped.
    out_path : path
        ``.nii.gz`` (or ``.nii``) to write; the sidecar goes beside it with the same stem.
    subject, session : str, optional
        ``SubjectID`` and ``SessionID`` for the sidecar (nothing identifying is copied from
        the DICOM headers).

    Returns
    -------
    Path
        The NIfTI file written.

    Raises
    ------
    ScoreInputError
        No DICOM images, images of different scans mixed, a slice or an inversion time
        missing, unevenly spaced slices, undecodable pixel data, or an unwritable output.
    """
    return drain(import_dicom_folder_job(folder, out_path, subject, session))
