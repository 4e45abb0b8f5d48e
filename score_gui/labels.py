"""Label maps: values, colours, structures, nesting rules, and reading/writing on a scan's grid.

The dseg holds nested tissue classes (contract section 2)::

    0 outside the canal   1 CSF   2 white matter   3 gray matter (not subdivided)
    4 anterior horns      5 posterior horns        6 gray commissure

so canal = 1-6, cord = 2-6, gray matter = 3-6. Lesions are a separate binary map whose
voxels keep their tissue class in the dseg.

Examples
--------
>>> import numpy as np
>>> dseg = np.array([[0, 1, 2, 3, 4, 5, 6]], np.uint8)
>>> structure_mask(dseg, "cord").astype(int).tolist()
[[0, 0, 1, 1, 1, 1, 1]]
>>> int(structure_mask(dseg, "gm").sum())
4
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from score_gui.atomic import atomic_path, write_text_atomic
from score_gui.errors import ScoreInputError
from score_gui.naming import label_file_name, parse_label_name
from score_gui.niftilib import nib
from score_gui.scan import Scan, load_nifti, nifti_for, sidecar_path

OUTSIDE, CSF, WM, GM, ANTERIOR_HORNS, POSTERIOR_HORNS, GRAY_COMMISSURE = range(7)
LESION_VALUE = 7
"""Value used for lesions when they are shown in one overlay with the dseg (never written)."""

LABEL_NAMES = {
    OUTSIDE: "outside",
    CSF: "csf",
    WM: "white_matter",
    GM: "gray_matter",
    ANTERIOR_HORNS: "anterior_horns",
    POSTERIOR_HORNS: "posterior_horns",
    GRAY_COMMISSURE: "gray_commissure",
}

# Colours of the SCORE paper's figures: canal/cord border gold, GM/WM dark brown, anterior
# horns red, posterior horns dark blue, gray commissure dark green, lesions purple.
LABEL_COLORS = {
    OUTSIDE: "#000000",
    CSF: "#d4a017",          # gold: the canal/cord border
    WM: "#f0e6c8",           # pale, so the dark-brown GM border reads against it
    GM: "#6b3e1f",           # dark brown
    ANTERIOR_HORNS: "#d62728",
    POSTERIOR_HORNS: "#1f3a93",
    GRAY_COMMISSURE: "#1e6b30",
    LESION_VALUE: "#8e44ad",
}

STRUCTURES = ("canal", "csf", "cord", "wm", "gm", "anterior_horns", "posterior_horns",
              "gray_commissure", "lesion")
"""Per-structure masks that can be derived from a dseg (+ lesion map)."""

_STRUCTURE_VALUES = {
    "canal": (1, 2, 3, 4, 5, 6),
    "csf": (1,),
    "cord": (2, 3, 4, 5, 6),
    "wm": (2,),
    "gm": (3, 4, 5, 6),
    "anterior_horns": (4,),
    "posterior_horns": (5,),
    "gray_commissure": (6,),
}

LABELLED_STRUCTURE_KEYS = ("canal", "cord", "gm", "horns", "lesion")
"""Values allowed in a label sidecar's ``LabelledStructures`` (contract section 2)."""

WHO_PATTERN = "[A-Za-z0-9]+"

DRAWN = "drawn"
PROPOSED = "proposed"
PROPOSED_ACCEPTED = "proposed-accepted"
PROPOSED_EDITED = "proposed-edited"
SLICE_PROVENANCE = (DRAWN, PROPOSED, PROPOSED_ACCEPTED, PROPOSED_EDITED)
"""Where a labelled slice's labels came from (the sidecar's ``SliceProvenance``): drawn by a
rater; proposed by the models and not reviewed yet; proposed and accepted as it was;
proposed and then edited by the rater. Unlabelled slices have ``""``. Only ``proposed``
slices are unreviewed: training skips them (:mod:`score_gui.training.data`)."""

REVIEWED_PROVENANCE = (DRAWN, PROPOSED_ACCEPTED, PROPOSED_EDITED)


def structure_mask(dseg: np.ndarray, structure: str, lesion: np.ndarray | None = None) -> np.ndarray:
    """Boolean mask of a structure (see :data:`STRUCTURES`)."""
    if structure == "lesion":
        if lesion is None:
            return np.zeros(dseg.shape, bool)
        return np.asarray(lesion) > 0
    try:
        values = _STRUCTURE_VALUES[structure]
    except KeyError:
        raise ValueError(f"unknown structure {structure!r}; one of {STRUCTURES}") from None
    return np.isin(dseg, values)


def masks_from_dseg(dseg: np.ndarray, lesion: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Every structure's mask at once."""
    return {name: structure_mask(dseg, name, lesion) for name in STRUCTURES}


def dseg_from_masks(canal=None, cord=None, gm=None, anterior_horns=None, posterior_horns=None,
                    gray_commissure=None, shape=None) -> np.ndarray:
    """Compose a dseg from nested masks: later (inner) structures overwrite outer ones.

    Examples
    --------
    >>> import numpy as np
    >>> canal = np.array([1, 1, 1, 1], bool); cord = np.array([0, 1, 1, 1], bool)
    >>> gm = np.array([0, 0, 1, 1], bool); ah = np.array([0, 0, 0, 1], bool)
    >>> dseg_from_masks(canal, cord, gm, anterior_horns=ah).tolist()
    [1, 2, 3, 4]
    """
    given = [m for m in (canal, cord, gm, anterior_horns, posterior_horns, gray_commissure) if m is not None]
    if shape is None:
        if not given:
            raise ValueError("give at least one mask or a shape")
        shape = np.shape(given[0])
    dseg = np.zeros(shape, np.uint8)
    for mask, value in ((canal, CSF), (cord, WM), (gm, GM), (anterior_horns, ANTERIOR_HORNS),
                        (posterior_horns, POSTERIOR_HORNS), (gray_commissure, GRAY_COMMISSURE)):
        if mask is not None:
            dseg[np.asarray(mask, bool)] = value
    return dseg


# ---------------------------------------------------------------------------------------
# Nesting rules
# ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Violation:
    """One broken nesting rule on one slice."""

    slice: int
    rule: str
    n_voxels: int

    def __str__(self) -> str:
        return f"slice {self.slice}: {self.rule} ({self.n_voxels} voxels)"


def validate_labels(dseg: np.ndarray, lesion: np.ndarray | None = None) -> list[Violation]:
    """Check values and nesting slice by slice (``dseg`` is ``[S, H, W]``).

    The nested values already put horns inside gray matter and the cord inside the canal;
    what a value map can still break is reported: values above 6, lesions outside the cord,
    and gray matter that is not enclosed by white matter (touching CSF or outside).

    Examples
    --------
    >>> import numpy as np
    >>> dseg = np.zeros((1, 3, 3), np.uint8); dseg[0, 1, 1] = 2
    >>> lesion = np.zeros_like(dseg); lesion[0, 0, 0] = 1
    >>> [str(v) for v in validate_labels(dseg, lesion)]
    ['slice 0: lesion outside the cord (1 voxels)']
    """
    from scipy import ndimage

    dseg = np.asarray(dseg)
    problems = []
    for s in range(dseg.shape[0]):
        bad = int((dseg[s] > GRAY_COMMISSURE).sum())
        if bad:
            problems.append(Violation(s, "label values above 6", bad))
        cord = np.isin(dseg[s], _STRUCTURE_VALUES["cord"])
        if lesion is not None:
            stray = int(((lesion[s] > 0) & ~cord).sum())
            if stray:
                problems.append(Violation(s, "lesion outside the cord", stray))
        gm = np.isin(dseg[s], _STRUCTURE_VALUES["gm"])
        exposed = int((gm & ndimage.binary_dilation(~cord)).sum())
        if exposed:
            problems.append(Violation(s, "gray matter not enclosed by white matter", exposed))
    return problems


def repair_labels(dseg: np.ndarray, lesion: np.ndarray | None = None):
    """Make labels obey the rules: clip values above 6 to 0 and drop lesions outside the cord.

    Returns ``(dseg, lesion)`` as new arrays.
    """
    dseg = np.where(np.asarray(dseg) > GRAY_COMMISSURE, OUTSIDE, dseg).astype(np.uint8)
    if lesion is not None:
        lesion = ((np.asarray(lesion) > 0) & structure_mask(dseg, "cord")).astype(np.uint8)
    return dseg, lesion


def constrain_paint(dseg: np.ndarray, value: int) -> np.ndarray:
    """Where ``value`` may be painted under nesting-aware painting (boolean mask).

    CSF and WM anywhere; gray matter only inside the cord; horns and commissure only
    inside gray matter; the lesion value only inside the cord; 0 (eraser) anywhere.
    """
    if value in (OUTSIDE, CSF, WM):
        return np.ones(dseg.shape, bool)
    if value == GM:
        return structure_mask(dseg, "cord")
    if value in (ANTERIOR_HORNS, POSTERIOR_HORNS, GRAY_COMMISSURE):
        return structure_mask(dseg, "gm")
    if value == LESION_VALUE:
        return structure_mask(dseg, "cord")
    raise ValueError(f"unknown label value {value}")


# ---------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------

def dseg_path(out_dir: str | Path, stem: str, who: str) -> Path:
    return Path(out_dir) / label_file_name(stem, who, "dseg")


def lesion_path(out_dir: str | Path, stem: str, who: str) -> Path:
    return Path(out_dir) / label_file_name(stem, who, "lesion")


def dseg_tsv_text() -> str:
    """The ``dseg.tsv`` lookup table written beside every dseg."""
    rows = ["index\tname\tcolor"]
    rows += [f"{value}\t{name}\t{LABEL_COLORS[value]}" for value, name in LABEL_NAMES.items()]
    return "\n".join(rows) + "\n"


@dataclass
class LabelMap:
    """A dseg and optional lesion map in display orientation ``[S, H, W]``.

    Attributes
    ----------
    labelled : set of str
        Structures that were labelled (:data:`LABELLED_STRUCTURE_KEYS`); what is missing is
        unknown, not absent.
    provenance : list of str or None
        Per slice, one of :data:`SLICE_PROVENANCE` (``""`` for an unlabelled slice), as the
        sidecar's ``SliceProvenance`` records it; None: not recorded, every labelled slice
        counts as drawn.
    """

    dseg: np.ndarray
    lesion: np.ndarray | None = None
    labelled: set[str] = field(default_factory=lambda: set(LABELLED_STRUCTURE_KEYS))
    who: str = ""
    path: Path | None = None
    provenance: list[str] | None = None

    def slice_provenance(self) -> list[str]:
        """Per slice: the recorded provenance, ``drawn`` for a labelled slice without one, else ``""``.

        Examples
        --------
        >>> dseg = np.zeros((3, 2, 2), np.uint8); dseg[:2] = 2
        >>> LabelMap(dseg).slice_provenance()
        ['drawn', 'drawn', '']
        >>> LabelMap(dseg, provenance=["proposed", "", ""]).slice_provenance()
        ['proposed', 'drawn', '']
        """
        labelled = self.labelled_slices()
        recorded = list(self.provenance or [])
        out = []
        for s, on in enumerate(labelled):
            value = recorded[s] if s < len(recorded) else ""
            out.append((value or DRAWN) if on else "")
        return out

    def reviewed_slices(self) -> np.ndarray:
        """Boolean per slice: labelled and not an unreviewed proposal (what training may learn)."""
        return np.array([p in REVIEWED_PROVENANCE for p in self.slice_provenance()], bool)

    def labelled_slices(self) -> np.ndarray:
        """Boolean per slice: anything labelled (an all-0 slice is unlabelled, not zero area)."""
        any_tissue = self.dseg.reshape(self.dseg.shape[0], -1).any(axis=1)
        if self.lesion is not None:
            any_tissue |= self.lesion.reshape(self.lesion.shape[0], -1).any(axis=1)
        return any_tissue


def check_who(who: str) -> str:
    import re

    if not re.fullmatch(WHO_PATTERN, who or ""):
        raise ScoreInputError(None, f"label source {who!r} must be alphanumeric (e.g. raterA, score)")
    return who


def load_label_volume(path: str | Path, kind: str = "label map"):
    """Read a 3D label volume ``(X, Y, S)`` on its file grid: ``(image, data)``, checked for a
    3D integer-valued numeric volume (a 2D file is one slice), with one-line errors."""
    path = Path(path)
    img, data = load_nifti(path)
    data = np.asarray(data)
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim == 2:
        data = data[..., None]
    if data.ndim != 3:
        raise ScoreInputError(path, f"expected a 3D {kind} (X, Y, S), got shape {tuple(data.shape)}")
    if not np.issubdtype(data.dtype, np.number) or np.iscomplexobj(data):
        raise ScoreInputError(path, f"unsupported voxel type {data.dtype} for a {kind}")
    if not np.all(np.isfinite(data)):
        raise ScoreInputError(path, f"{kind} contains NaN or Inf values")
    if np.any(data != np.round(data)):
        raise ScoreInputError(path, f"{kind} contains non-integer values")
    return img, data


def _label_volume(path: Path, scan: Scan, kind: str) -> np.ndarray:
    img, data = load_label_volume(path, kind)
    if tuple(data.shape) != scan.file_shape:
        raise ScoreInputError(path, f"{kind} grid {tuple(data.shape)} does not match the scan's "
                                    f"{scan.file_shape}")
    if not np.allclose(img.affine, scan.affine, atol=1e-3):
        raise ScoreInputError(path, f"{kind} affine differs from the scan's (another grid)")
    return scan.to_display_grid(data)


def check_label_values(path: str | Path, data: np.ndarray, kind: str = "label map",
                       slice_axis: int = 0) -> None:
    """Refuse values outside the table: 0-6 for a label map, 0-1 for a lesion map.

    The one value check of every command that reads labels (areas, evaluate, the GUI's
    reader), so each says the same: which values, how many voxels and the first slice.

    Parameters
    ----------
    path : path
        The file, named in the error.
    data : ndarray
        Its integer-valued voxels.
    kind : {"label map", "lesion map"}
    slice_axis : int
        The slice axis of ``data`` (0 on the display grid, 2 on the file grid).

    Examples
    --------
    >>> check_label_values("a_dseg.nii.gz", np.array([[[0, -3]]]))
    Traceback (most recent call last):
    ...
    score_gui.errors.ScoreInputError: a_dseg.nii.gz: label values [-3] outside the table 0-6 (1 voxels, first on slice 0)
    """
    top = 1 if kind == "lesion map" else GRAY_COMMISSURE
    outside = (data < 0) | (data > top)
    if not outside.any():
        return
    bad = np.unique(data[outside]).astype(int).tolist()
    per_slice = np.moveaxis(outside, slice_axis, 0).reshape(outside.shape[slice_axis], -1).any(1)
    where = f"({int(outside.sum())} voxels, first on slice {int(np.flatnonzero(per_slice)[0])})"
    if kind == "lesion map":
        raise ScoreInputError(path, f"lesion map values {bad[:5]} must be 0 or 1 {where}")
    raise ScoreInputError(path, f"label values {bad[:5]} outside the table 0-{top} {where}")


def lesion_file_beside(dseg_file: str | Path) -> Path | None:
    """The ``_lesion`` file that belongs to a ``_dseg`` file, if it exists."""
    dseg_file = Path(dseg_file)
    candidate = Path(str(dseg_file).replace("_dseg.nii", "_lesion.nii"))
    return candidate if candidate != dseg_file and candidate.exists() else None


def read_labels(dseg_file: str | Path, scan: Scan, lesion_file: str | Path | None = None) -> LabelMap:
    """Read a dseg (and lesion map) on ``scan``'s grid, checking grid, affine and values.

    When ``lesion_file`` is None, the ``_lesion`` file beside the dseg is read if present.
    """
    dseg_file = Path(dseg_file)
    data = _label_volume(dseg_file, scan, "label map")
    check_label_values(dseg_file, data)
    dseg = data.astype(np.uint8)
    if lesion_file is None:
        lesion_file = lesion_file_beside(dseg_file)
    lesion = None
    if lesion_file is not None:
        lesion_data = _label_volume(Path(lesion_file), scan, "lesion map")
        check_label_values(lesion_file, lesion_data, "lesion map")
        lesion = lesion_data.astype(np.uint8)
    meta = read_sidecar_labels(dseg_file)
    labelled = set(meta) if meta is not None else set(LABELLED_STRUCTURE_KEYS) - (
        set() if lesion is not None else {"lesion"})
    who = parse_label_name(dseg_file).source
    provenance = read_sidecar_provenance(dseg_file, dseg.shape[0])
    return LabelMap(dseg=dseg, lesion=lesion, labelled=labelled, who=who, path=dseg_file,
                    provenance=provenance)


def _read_sidecar(dseg_file: str | Path) -> tuple[Path, dict | None]:
    side = sidecar_path(dseg_file)
    if not side.exists():
        return side, None
    try:
        meta = json.loads(side.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ScoreInputError(side, f"invalid JSON ({exc})") from None
    return side, meta if isinstance(meta, dict) else None


def read_sidecar_provenance(dseg_file: str | Path, n_slices: int) -> list[str] | None:
    """``SliceProvenance`` from a label map's sidecar (one entry per slice), or None.

    Raises
    ------
    ScoreInputError
        When the list has another length than the scan's slices or unknown values.
    """
    side, meta = _read_sidecar(dseg_file)
    if meta is None or meta.get("SliceProvenance") is None:
        return None
    values = meta["SliceProvenance"]
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ScoreInputError(side, "SliceProvenance must be a list of strings, one per slice")
    if len(values) != n_slices:
        raise ScoreInputError(side, f"SliceProvenance lists {len(values)} slices, the label map has {n_slices}")
    unknown = set(values) - set(SLICE_PROVENANCE) - {""}
    if unknown:
        raise ScoreInputError(side, f"unknown SliceProvenance {sorted(unknown)}; "
                                    f"allowed: {', '.join(SLICE_PROVENANCE)} or empty")
    return list(values)


def read_sidecar_labels(dseg_file: str | Path) -> list[str] | None:
    """``LabelledStructures`` from a label map's sidecar, or None when there is none."""
    side, meta = _read_sidecar(dseg_file)
    structures = meta.get("LabelledStructures") if meta is not None else None
    if structures is None:
        return None
    if not isinstance(structures, list) or not all(isinstance(k, str) for k in structures):
        raise ScoreInputError(side, "LabelledStructures must be a list of names")
    unknown = set(structures) - set(LABELLED_STRUCTURE_KEYS)
    if unknown:
        raise ScoreInputError(side, f"unknown LabelledStructures {sorted(unknown)}; "
                                    f"allowed: {', '.join(LABELLED_STRUCTURE_KEYS)}")
    return list(structures)


def write_labels(scan: Scan, labels: LabelMap, out_dir: str | Path, who: str,
                 keep_previous: bool = True, write_lesion: bool = True) -> dict[str, Path]:
    """Write a dseg (+ lesion map, ``dseg.tsv`` and sidecar) on the scan's grid, atomically.

    An existing file is kept in ``.history`` first (``keep_previous``), so nobody's
    labels are ever lost by a save.
    """
    check_who(who)
    _check_writable_labels(scan, labels)
    out_dir = Path(out_dir)
    written = {"dseg": _write_volume(scan, labels.dseg, dseg_path(out_dir, scan.stem, who), keep_previous)}
    if write_lesion and labels.lesion is not None:
        written["lesion"] = _write_volume(scan, labels.lesion, lesion_path(out_dir, scan.stem, who),
                                          keep_previous)
    tsv = out_dir / "dseg.tsv"
    if not tsv.exists():
        write_text_atomic(tsv, dseg_tsv_text())
    side = sidecar_path(written["dseg"])
    provenance = labels.slice_provenance() if labels.provenance is not None else None
    proposals = provenance is not None and any(p not in (DRAWN, "") for p in provenance)
    # A stale partial sidecar from an earlier save would make labelled structures "unknown",
    # a stale SliceProvenance would mark drawn slices as proposals.
    if set(labels.labelled) != set(LABELLED_STRUCTURE_KEYS) or side.exists() or proposals:
        ordered = [k for k in LABELLED_STRUCTURE_KEYS if k in labels.labelled]
        meta = {"LabelledStructures": ordered}
        if proposals:
            meta["SliceProvenance"] = provenance
        write_text_atomic(side, json.dumps(meta, indent=2))
    return written


def _check_writable_labels(scan: Scan, labels: LabelMap) -> None:
    """Refuse to write what could not be read back: wrong shape or values outside the table."""
    for name, volume, top in (("labels", labels.dseg, GRAY_COMMISSURE), ("lesion map", labels.lesion, 1)):
        if volume is None:
            continue
        volume = np.asarray(volume)
        if volume.shape != scan.label_shape:
            raise ScoreInputError(labels.path, f"{name} of shape {volume.shape} do not fit the scan "
                                               f"{scan.label_shape}")
        if volume.size and (volume.min() < 0 or volume.max() > top):
            raise ScoreInputError(labels.path, f"{name} hold values outside 0-{top} "
                                               f"({sorted(np.unique(volume[(volume < 0) | (volume > top)]).tolist())[:5]})")


def write_label_volume(scan: Scan, volume: np.ndarray, path: str | Path, keep_previous: bool = True) -> Path:
    """Write one label volume (dseg or lesion map, display ``[S, H, W]``) at any path, atomically.

    For outputs named by the user (``score refine -o``); :func:`write_labels` names its files
    itself. The scan's affine and grid are kept; an existing file goes to ``.history`` first
    (``keep_previous``).

    Examples
    --------
    >>> import tempfile
    >>> scan = Scan.from_arrays(np.zeros((2, 1, 4, 5)), pixel_spacing=(0.7, 0.7))
    >>> path = write_label_volume(scan, np.ones((2, 4, 5), np.uint8), Path(tempfile.mkdtemp()) / "a_dseg.nii.gz")
    >>> nib.load(path).shape
    (5, 4, 2)
    """
    return _write_volume(scan, np.asarray(volume), Path(path), keep_previous)


def _write_volume(scan: Scan, volume: np.ndarray, path: Path, keep_previous: bool) -> Path:
    img = nifti_for(scan, scan.to_file_grid(np.asarray(volume, np.uint8)), np.uint8)
    img.header.set_zooms(tuple(img.header.get_zooms()[:3]))
    img.header.set_intent("label")  # viewers (FSLeyes, ITK-SNAP) then show it as a label map
    with atomic_path(path, keep_previous=keep_previous) as tmp:
        nib.save(img, str(tmp))
    return path


def empty_labels(scan: Scan, with_lesion: bool = True) -> LabelMap:
    """An all-0 label map on the scan's grid (nothing labelled yet)."""
    shape = scan.label_shape
    return LabelMap(np.zeros(shape, np.uint8), np.zeros(shape, np.uint8) if with_lesion else None)
