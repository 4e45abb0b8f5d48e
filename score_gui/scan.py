"""Reading AMIRA scans: 4D (X, Y, S, T) or 3D (X, Y, S) NIfTI plus an optional JSON sidecar.

A :class:`Scan` holds the images as float32 ``[S, T, H, W]`` in display orientation:
anterior up and the patient's left on the screen's right (radiological convention),
whatever the file's orientation. :class:`InPlaneOrientation` maps exactly between the
file grid and the display grid, so label maps drawn on screen go back to the file grid
voxel for voxel.

Examples
--------
>>> import numpy as np
>>> scan = Scan.from_arrays(np.ones((2, 8, 4, 5), np.float32), pixel_spacing=(0.67, 0.67))
>>> scan.n_slices, scan.n_images, scan.shape_hw
(2, 8, (4, 5))
>>> round(scan.pixel_area_mm2, 4)
0.4489
>>> sorted(scan.averages())
['1-5', '6-8', 'all']
"""

from __future__ import annotations

import contextlib
import gzip
import json
import logging
import re
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from score_gui.atomic import atomic_path
from score_gui.errors import ScoreInputError, missing_problem
from score_gui.niftilib import nib

AMIRA_INVERSION_TIMES = (97.1, 158.7, 220.2, 281.8, 343.3, 404.9, 466.5, 528.0)
"""Effective inversion times in ms of the SCORE protocol (Tsagkas et al. 2023)."""

AMIRA_AVERAGES = {"1-5": (0, 1, 2, 3, 4), "6-8": (5, 6, 7)}
"""Image averages used for rating: 1-5 for GM/WM borders, 6-8 for the cord/CSF border."""

NIFTI_SUFFIXES = (".nii.gz", ".nii")


class ScanWarning(UserWarning):
    """Something about a scan the user should know but that does not stop the work."""


def nifti_stem(path: str | Path) -> str:
    """File name without ``.nii``/``.nii.gz``.

    Examples
    --------
    >>> nifti_stem("/data/sub-01_amira.nii.gz")
    'sub-01_amira'
    """
    name = Path(path).name
    for suffix in NIFTI_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def sidecar_path(path: str | Path) -> Path:
    """The JSON sidecar beside a NIfTI file (same stem)."""
    path = Path(path)
    return path.with_name(nifti_stem(path) + ".json")


@dataclass(frozen=True)
class InPlaneOrientation:
    """How the file's first two axes map onto display rows (anterior->posterior) and columns
    (patient right->left).

    Attributes
    ----------
    rows_axis : int
        File axis (0 or 1) shown along display rows.
    flip_rows, flip_cols : bool
        Whether that file axis runs opposite to the display direction.
    """

    rows_axis: int = 1
    flip_rows: bool = False
    flip_cols: bool = False

    @classmethod
    def from_affine(cls, affine: np.ndarray) -> "InPlaneOrientation":
        """Pick the in-plane axis closest to left-right as columns (RAS+ world coordinates)."""
        direction = np.asarray(affine, float)[:3, :2]
        # Normalise so that anisotropic pixels do not bias the choice, then pick the assignment
        # (axis 0 -> columns or axis 1 -> columns) that best matches left-right and
        # anterior-posterior together; robust for oblique slices.
        norms = np.linalg.norm(direction, axis=0)
        direction = direction / np.where(norms > 0, norms, 1.0)
        straight = abs(direction[0, 0]) + abs(direction[1, 1])
        swapped = abs(direction[0, 1]) + abs(direction[1, 0])
        cols_axis = 0 if straight >= swapped else 1
        rows_axis = 1 - cols_axis
        # Columns run toward patient left (world x decreasing), rows toward posterior (y decreasing).
        return cls(
            rows_axis=rows_axis,
            flip_rows=bool(direction[1, rows_axis] > 0),
            flip_cols=bool(direction[0, cols_axis] > 0),
        )

    def to_display(self, volume: np.ndarray) -> np.ndarray:
        """File grid ``(X, Y, S[, T])`` to display ``(S[, T], H, W)``."""
        extra = volume.ndim - 2
        out = np.moveaxis(volume, (0, 1), (extra, extra + 1))
        if self.rows_axis == 1:
            out = np.swapaxes(out, -1, -2)
        if self.flip_rows:
            out = out[..., ::-1, :]
        if self.flip_cols:
            out = out[..., ::-1]
        return np.ascontiguousarray(out)

    def to_file(self, volume: np.ndarray) -> np.ndarray:
        """Display ``(S[, T], H, W)`` back to the file grid ``(X, Y, S[, T])``."""
        out = volume
        if self.flip_cols:
            out = out[..., ::-1]
        if self.flip_rows:
            out = out[..., ::-1, :]
        if self.rows_axis == 1:
            out = np.swapaxes(out, -1, -2)
        extra = out.ndim - 2
        return np.ascontiguousarray(np.moveaxis(out, (extra, extra + 1), (0, 1)))

    def display_spacing(self, zooms: tuple[float, float]) -> tuple[float, float]:
        """Pixel size in mm along display (rows, columns) from the file's first two zooms."""
        return (float(zooms[self.rows_axis]), float(zooms[1 - self.rows_axis]))


@dataclass
class Scan:
    """One scan in display orientation.

    Attributes
    ----------
    images : ndarray, float32, shape (S, T, H, W)
        Inversion images (T = 8 for AMIRA, 1 for a single contrast such as T2*w).
    pixel_spacing : (float, float)
        Pixel size in mm along display rows and columns.
    inversion_times : list of float or None
        Inversion time in ms per image, ``None`` for a single-contrast scan.
    levels : list of str or None
        Vertebral level per slice (e.g. ``"C3"``) when the sidecar gives them.
    affine : ndarray (4, 4)
        The file's affine; every output keeps it.
    orientation : InPlaneOrientation
        Mapping between the file grid and the display grid.
    missing : ndarray of bool (S, T, H, W) or None
        Voxels that were NaN or Inf in the file (read as 0).
    """

    images: np.ndarray
    pixel_spacing: tuple[float, float]
    inversion_times: list[float] | None = None
    levels: list[str] | None = None
    affine: np.ndarray = field(default_factory=lambda: np.eye(4))
    orientation: InPlaneOrientation = field(default_factory=InPlaneOrientation)
    path: Path | None = None
    subject: str | None = None
    session: str | None = None
    slice_thickness: float = 8.0
    missing: np.ndarray | None = None
    header: nib.Nifti1Header | None = None

    # -- construction -------------------------------------------------------------------
    @classmethod
    def from_arrays(cls, images, pixel_spacing=(0.67, 0.67), inversion_times=None,
                    slice_thickness=8.0, **kwargs) -> "Scan":
        """Build a scan from display-oriented images ``[S, T, H, W]`` (or ``[S, H, W]``).

        The affine is LPS-like (``diag(-dx, -dy, dz)``), for which the file grid is the
        display grid transposed.
        """
        images = np.asarray(images, dtype=np.float32)
        if images.ndim == 3:
            images = images[:, None]
        if inversion_times is None and images.shape[1] == len(AMIRA_INVERSION_TIMES):
            inversion_times = list(AMIRA_INVERSION_TIMES)
        dy, dx = (float(v) for v in pixel_spacing)
        affine = kwargs.pop("affine", np.diag([-dx, -dy, float(slice_thickness), 1.0]))
        return cls(images=images, pixel_spacing=(dy, dx), inversion_times=inversion_times,
                   affine=np.asarray(affine, float), slice_thickness=float(slice_thickness),
                   orientation=InPlaneOrientation.from_affine(affine), **kwargs)

    # -- shape --------------------------------------------------------------------------
    @property
    def n_slices(self) -> int:
        return int(self.images.shape[0])

    @property
    def n_images(self) -> int:
        return int(self.images.shape[1])

    @property
    def shape_hw(self) -> tuple[int, int]:
        return (int(self.images.shape[2]), int(self.images.shape[3]))

    @property
    def label_shape(self) -> tuple[int, int, int]:
        """Shape ``(S, H, W)`` of label maps in display orientation."""
        return (self.n_slices, *self.shape_hw)

    @property
    def file_shape(self) -> tuple[int, int, int]:
        """Shape ``(X, Y, S)`` of label maps on the file grid."""
        h, w = self.shape_hw
        x, y = (w, h) if self.orientation.rows_axis == 1 else (h, w)
        return (x, y, self.n_slices)

    @property
    def pixel_area_mm2(self) -> float:
        """In-plane pixel area (contract: pixdim[1] * pixdim[2])."""
        return float(self.pixel_spacing[0] * self.pixel_spacing[1])

    @property
    def stem(self) -> str:
        return nifti_stem(self.path) if self.path is not None else "scan"

    @property
    def is_amira(self) -> bool:
        return self.n_images == len(AMIRA_INVERSION_TIMES)

    # -- images -------------------------------------------------------------------------
    def average(self, frames=None) -> np.ndarray:
        """Mean over the chosen images (0-based indices; ``None`` = all) -> ``[S, H, W]``."""
        if frames is None:
            return self.images.mean(axis=1)
        frames = list(frames)
        if not frames or min(frames) < 0 or max(frames) >= self.n_images:
            raise ValueError(f"image indices {frames} outside 0..{self.n_images - 1}")
        return self.images[:, frames].mean(axis=1)

    def averages(self) -> dict[str, np.ndarray]:
        """The averages shown and used everywhere: 1-5, 6-8 and all (only 'all' if T != 8)."""
        result = {}
        if self.is_amira:
            result = {name: self.average(idx) for name, idx in AMIRA_AVERAGES.items()}
        result["all"] = self.average()
        return result

    def image_titles(self) -> list[str]:
        """One title per image, with its inversion time when known."""
        if self.inversion_times is None:
            return ["image" if self.n_images == 1 else f"image {i + 1}" for i in range(self.n_images)]
        return [f"TI{i + 1} {ti:.0f} ms" for i, ti in enumerate(self.inversion_times)]

    def level(self, slice_index: int) -> str:
        """Vertebral level of a slice, or '' when unknown."""
        if self.levels and 0 <= slice_index < len(self.levels):
            return self.levels[slice_index]
        return ""

    # -- grids --------------------------------------------------------------------------
    def to_file_grid(self, volume_shw: np.ndarray) -> np.ndarray:
        """Display ``(S, H, W)`` label volume -> file grid ``(X, Y, S)``."""
        return self.orientation.to_file(volume_shw)

    def to_display_grid(self, volume_xys: np.ndarray) -> np.ndarray:
        """File grid ``(X, Y, S)`` -> display ``(S, H, W)``."""
        return self.orientation.to_display(volume_xys)


# ---------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------

_GZIP_MAGIC = b"\x1f\x8b"

_KNOWN_MAGIC = {b"\x89PNG": "a PNG image", b"\xff\xd8\xff": "a JPEG image", b"%PDF": "a PDF file",
                b"PK\x03\x04": "a ZIP archive", b"DICM": "a DICOM file"}


def _sniff(path: Path) -> str | None:
    """Say what a file that cannot be a NIfTI looks like, or None if it might be one."""
    with open(path, "rb") as handle:
        head = handle.read(352)
    if len(head) == 0:
        return "empty file"
    if len(head) > 132 and head[128:132] == b"DICM":
        return "a DICOM file (import a DICOM folder with `score dicom`)"
    for magic, what in _KNOWN_MAGIC.items():
        if head.startswith(magic):
            return what
    if path.name.endswith(".gz") and not head.startswith(_GZIP_MAGIC):
        looks_like_text = all(32 <= b < 127 or b in (9, 10, 13) for b in head[:64])
        return "a text file, not gzip-compressed" if looks_like_text else "not gzip-compressed"
    return None


def load_nifti(path: str | Path) -> tuple[nib.Nifti1Image, np.ndarray]:
    """Load a NIfTI image and its data, turning every failure into a one-line error.

    Raises
    ------
    ScoreInputError
        Whatever is wrong with the file: missing, a folder, another format, corrupt or
        truncated data, an empty axis. No other exception type escapes for a bad file.
    """
    path = Path(path)
    if not path.exists():
        raise ScoreInputError(path, missing_problem(path))
    if path.is_dir():
        raise ScoreInputError(path, "is a folder, expected a NIfTI file (.nii or .nii.gz)")
    try:
        looks_like = _sniff(path)
    except OSError as exc:
        raise ScoreInputError(path, f"cannot read file ({exc.strerror or exc})") from None
    if looks_like is not None:
        raise ScoreInputError(path, f"not a NIfTI file ({looks_like})")
    with _quiet_nibabel():
        img = _load_header(path)
    if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
        raise ScoreInputError(path, f"not a NIfTI file (read as {type(img).__name__})")
    _check_pixel_size(path, img)
    shape = tuple(int(n) for n in img.shape)
    if any(n == 0 for n in shape):
        raise ScoreInputError(path, f"axis {shape.index(0)} has size 0 (shape {shape})")
    _check_plausible_size(path, img, shape)
    try:
        data = np.asanyarray(img.dataobj)
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise ScoreInputError(path, f"truncated or corrupt gzip data ({exc})") from None
    except Exception as exc:  # noqa: BLE001 - nibabel raises many types for damaged data
        raise ScoreInputError(path, f"truncated or unreadable image data ({exc})") from None
    return img, data


def _raw_header_bytes(path: Path, img) -> bytes:
    raw = getattr(img, "_score_head", None)
    if raw is None:
        with open(path, "rb") as handle:
            raw = handle.read(540)
    return raw


def _check_pixel_size(path: Path, img) -> None:
    """Refuse an in-plane pixel size that is zero, negative, NaN or infinite in the file.

    nibabel silently "fixes" a zero pixdim to 1 mm and a negative one to its absolute value
    when it loads a header, so areas would come out in pixel counts labelled mm². The check
    reads the header again without nibabel's fixes.
    """
    header_class = type(img.header)
    raw = _raw_header_bytes(path, img)[:header_class.template_dtype.itemsize]
    try:
        pixdim = header_class(binaryblock=raw, check=False)["pixdim"][1:3]
    except Exception as exc:  # noqa: BLE001 - nibabel read the same bytes a moment ago
        raise ScoreInputError(path, f"cannot read NIfTI header ({exc})") from None
    sizes = tuple(float(p) for p in pixdim)
    if not all(np.isfinite(sizes)) or min(sizes) <= 0:
        shown = " x ".join(f"{s:g}" for s in sizes)
        raise ScoreInputError(path, f"invalid pixel size {shown} mm in the header (pixdim[1], pixdim[2] "
                                    "must be finite and positive)")


@contextlib.contextmanager
def _quiet_nibabel():
    """nibabel logs header fix-ups ("sizeof_hdr should be 348") to stderr: keep the CLI's one line."""
    logger = nib.imageglobals.logger
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _load_header(path: Path):
    if path.name.endswith(".gz"):
        return _load_gzipped(path)
    try:
        return nib.load(str(path))
    except nib.filebasedimages.ImageFileError:
        raise ScoreInputError(path, "not a NIfTI file") from None
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise ScoreInputError(path, f"truncated or corrupt gzip data ({exc})") from None
    except Exception as exc:  # noqa: BLE001 - HeaderDataError, struct errors, ...
        raise ScoreInputError(path, f"cannot read NIfTI header ({exc})") from None


def _load_gzipped(path: Path):
    """Decompress a .nii.gz whole, so the gzip CRC catches damage that still inflates."""
    try:
        raw = gzip.decompress(path.read_bytes())
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise ScoreInputError(path, f"truncated or corrupt gzip data ({exc})") from None
    except MemoryError:
        raise ScoreInputError(path, "too large to decompress in memory") from None
    except OSError as exc:
        raise ScoreInputError(path, f"cannot read file ({exc.strerror or exc})") from None
    if len(raw) < 348:
        raise ScoreInputError(path, f"not a NIfTI file (only {len(raw)} bytes after decompression)")
    header_sizes = {int.from_bytes(raw[:4], "little"), int.from_bytes(raw[:4], "big")}
    image_class = nib.Nifti2Image if 540 in header_sizes else nib.Nifti1Image
    if not header_sizes & {348, 540}:
        raise ScoreInputError(path, "not a NIfTI file (no NIfTI header after decompression)")
    try:
        img = image_class.from_bytes(raw)
    except Exception as exc:  # noqa: BLE001 - HeaderDataError, struct errors, ...
        raise ScoreInputError(path, f"cannot read NIfTI header ({exc})") from None
    img._score_raw_size = len(raw)  # for the size check: the exact decompressed length
    img._score_head = raw[:540]  # the header as written, for checks nibabel's fix-ups would hide
    return img


def _check_plausible_size(path: Path, img, shape: tuple[int, ...]) -> None:
    """Refuse a header whose data cannot be in the file (before allocating memory for it)."""
    try:
        itemsize = np.dtype(img.get_data_dtype()).itemsize
        offset = int(img.header.get_data_offset())
    except Exception as exc:  # noqa: BLE001
        raise ScoreInputError(path, f"cannot read NIfTI header ({exc})") from None
    expected = int(np.prod(shape, dtype=np.float64)) * itemsize
    size = getattr(img, "_score_raw_size", None) or path.stat().st_size
    available = size - offset
    if expected > available:
        raise ScoreInputError(path, f"truncated image data: the header's shape {shape} needs "
                                    f"{expected} bytes, the file holds {max(available, 0)}")


def _squeeze_trailing(data: np.ndarray) -> np.ndarray:
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    return data


def read_sidecar(path: str | Path) -> dict:
    """Read a scan's or label map's JSON sidecar; ``{}`` when there is none."""
    side = sidecar_path(path)
    if not side.exists():
        return {}
    try:
        content = json.loads(side.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ScoreInputError(side, f"invalid JSON ({exc})") from None
    if not isinstance(content, dict):
        raise ScoreInputError(side, "expected a JSON object")
    return content


def _inversion_times(path: Path, meta: dict, n_images: int) -> list[float] | None:
    times = meta.get("InversionTimes")
    if times is not None:
        if isinstance(times, (int, float)) and not isinstance(times, bool):
            times = [times]
        numbers = isinstance(times, list) and all(
            isinstance(t, (int, float)) and not isinstance(t, bool) for t in times)
        if not numbers or not all(np.isfinite(times)) or any(t < 0 for t in times):
            raise ScoreInputError(sidecar_path(path), "InversionTimes must be a list of numbers in ms")
        times = [float(t) for t in times]
        if len(times) != n_images:
            raise ScoreInputError(sidecar_path(path),
                                  f"{len(times)} InversionTimes but the scan has {n_images} volumes")
        return times
    if n_images == len(AMIRA_INVERSION_TIMES):
        warnings.warn(f"{path}: no sidecar with InversionTimes; assuming the AMIRA protocol times",
                      ScanWarning, stacklevel=3)
        return list(AMIRA_INVERSION_TIMES)
    return None


def _levels(path: Path, meta: dict, n_slices: int) -> list[str] | None:
    levels = meta.get("VertebralLevels")
    if levels is None:
        return None
    if not isinstance(levels, list) or len(levels) != n_slices:
        got = len(levels) if isinstance(levels, list) else type(levels).__name__
        raise ScoreInputError(sidecar_path(path),
                              f"VertebralLevels has {got} entries but the scan has {n_slices} slices")
    return [str(v) for v in levels]


def _text_field(meta: dict, key: str, default: str | None) -> str | None:
    value = meta.get(key)
    if value is None or str(value).strip() == "":
        return default or None
    return str(value).strip()


_BIDS_ENTITY = re.compile(r"(?:^|_)(sub|ses)-([A-Za-z0-9]+)")  # whole entities: not "presub-3"


def bids_entities(path: str | Path) -> dict[str, str]:
    """``sub`` and ``ses`` from a BIDS-like file name.

    Examples
    --------
    >>> bids_entities("sub-01_ses-2_amira.nii.gz")
    {'sub': '01', 'ses': '2'}
    >>> bids_entities("presub-3_scan.nii.gz")
    {}
    """
    return {key: value for key, value in _BIDS_ENTITY.findall(Path(path).name)}


def read_scan(path: str | Path) -> Scan:
    """Read a scan (contract section 1) into display orientation.

    NaN and Inf voxels are read as 0, recorded in ``Scan.missing`` and reported with a
    :class:`ScanWarning`.

    Raises
    ------
    ScoreInputError
        Missing file, not a NIfTI, corrupt data, wrong dimensionality, empty axis,
        or a sidecar that does not match the volumes.
    """
    path = Path(path)
    img, data = load_nifti(path)
    data = _squeeze_trailing(np.asarray(data))
    if data.ndim not in (3, 4):
        raise ScoreInputError(path, f"expected a 3D (X, Y, S) or 4D (X, Y, S, T) image, "
                                    f"got {data.ndim}D with shape {tuple(data.shape)}")
    if not np.issubdtype(data.dtype, np.number) or np.iscomplexobj(data):
        raise ScoreInputError(path, f"unsupported voxel type {data.dtype}")
    data = data.astype(np.float32, copy=False)
    if data.ndim == 3:
        data = data[..., None]
    finite = np.isfinite(data)
    missing = None
    if not finite.all():
        n_bad = int((~finite).sum())
        warnings.warn(f"{path}: {n_bad} NaN/Inf voxels treated as missing (set to 0)",
                      ScanWarning, stacklevel=2)
        data = np.where(finite, data, 0).astype(np.float32)
    meta = read_sidecar(path)
    n_images = int(data.shape[3])
    n_slices = int(data.shape[2])
    if not np.all(np.isfinite(img.affine)) or abs(np.linalg.det(img.affine[:3, :3])) < 1e-12:
        raise ScoreInputError(path, "invalid affine in the header (not finite or singular)")
    orientation = InPlaneOrientation.from_affine(img.affine)
    zooms = tuple(float(z) for z in img.header.get_zooms()[:3])
    if not all(np.isfinite(zooms[:2])) or min(zooms[:2]) <= 0:
        raise ScoreInputError(path, f"invalid pixel size {zooms[:2]} in the header")
    entities = bids_entities(path)
    scan = Scan(
        images=orientation.to_display(data),
        pixel_spacing=orientation.display_spacing(zooms[:2]),
        inversion_times=_inversion_times(path, meta, n_images),
        levels=_levels(path, meta, n_slices),
        affine=np.asarray(img.affine, float),
        orientation=orientation,
        path=path,
        subject=_text_field(meta, "SubjectID", entities.get("sub")),
        session=_text_field(meta, "SessionID", entities.get("ses")),
        slice_thickness=zooms[2] if len(zooms) > 2 and zooms[2] > 0 else 8.0,
        missing=None if finite.all() else orientation.to_display(~finite),
        header=img.header.copy(),
    )
    return scan


# ---------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------

def nifti_for(scan: Scan, volume_file_grid: np.ndarray, dtype) -> nib.Nifti1Image:
    """A NIfTI image on the scan's grid and affine holding ``volume_file_grid``."""
    header = scan.header.copy() if scan.header is not None else nib.Nifti1Header()
    img = nib.Nifti1Image(np.asarray(volume_file_grid, dtype=dtype), scan.affine, header=header)
    img.set_data_dtype(dtype)
    img.header.set_xyzt_units("mm", "msec")
    # Display range and intent describe the source's values, not these (e.g. labels).
    img.header["cal_min"] = img.header["cal_max"] = 0
    img.header.set_intent("none")
    img.set_qform(scan.affine, code=1)
    img.set_sform(scan.affine, code=1)
    return img


def write_scan(scan: Scan, path: str | Path, metadata: dict | None = None) -> Path:
    """Write a scan as NIfTI (4D, or 3D when T = 1) plus its JSON sidecar, atomically."""
    path = Path(path)
    data = scan.orientation.to_file(scan.images)  # (X, Y, S, T)
    if data.shape[-1] == 1:
        data = data[..., 0]
    img = nifti_for(scan, data, np.float32)
    dy, dx = scan.pixel_spacing
    zooms = (dx, dy) if scan.orientation.rows_axis == 1 else (dy, dx)
    img.header.set_zooms(zooms + (scan.slice_thickness,) + ((1.0,) if data.ndim == 4 else ()))
    with atomic_path(path) as tmp:
        nib.save(img, str(tmp))
    sidecar = dict(metadata or {})
    if scan.inversion_times is not None:
        sidecar.setdefault("InversionTimes", [round(float(t), 1) for t in scan.inversion_times])
    if scan.levels:
        sidecar.setdefault("VertebralLevels", list(scan.levels))
    if scan.subject:
        sidecar.setdefault("SubjectID", scan.subject)
    if scan.session:
        sidecar.setdefault("SessionID", scan.session)
    if sidecar:
        with atomic_path(sidecar_path(path)) as tmp:
            tmp.write_text(json.dumps(sidecar, indent=2), encoding="utf-8")
    return path
