"""npe2 writer: a labels layer -> ``<stem>_desc-<who>_dseg.nii.gz`` (+ ``_lesion``) on the
scan's grid, with the scan's affine (taken from ``layer.metadata["score_scan"]``).

Value 7 (lesion) is split back: the lesion map gets 1 there and the dseg the tissue
class kept in ``metadata["score_tissue"]`` (white matter when a layer has none).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from score_gui import labels as lab
from score_gui.atomic import atomic_path, write_text_atomic
from score_gui.errors import ScoreInputError
from score_gui.scan import Scan, nifti_for, nifti_stem, sidecar_path


def write_labels_layer(path: str, data, meta: dict) -> list[str]:
    """npe2 single-layer writer for labels. Returns the paths written."""
    path = Path(path)
    if not str(path).endswith((".nii.gz", ".nii")):
        path = path.with_name(path.name + ".nii.gz")
    data = np.asarray(data)
    metadata = meta.get("metadata") or {}
    scan = metadata.get("score_scan")
    if not isinstance(scan, Scan):
        scan = _grid_from_layer(data, meta)
    if data.shape != scan.label_shape:
        raise ScoreInputError(path, f"labels of shape {data.shape} do not fit the scan {scan.label_shape}")
    if data.min() < 0 or data.max() > lab.LESION_VALUE:
        raise ScoreInputError(path, f"label values outside 0-{lab.LESION_VALUE}")
    overlay = data.astype(np.uint8)
    under = metadata.get("score_tissue")
    if under is None or np.shape(under) != overlay.shape:
        under = np.where(overlay == lab.LESION_VALUE, lab.WM, overlay)
    from score_gui.editing import split_overlay

    dseg, lesion = split_overlay(overlay, np.asarray(under))
    written = [_save(scan, dseg, path)]
    labelled = metadata.get("score_labelled")
    if lesion.any() or (labelled and "lesion" in labelled):
        stem = nifti_stem(path)
        lesion_stem = stem[: -len("_dseg")] + "_lesion" if stem.endswith("_dseg") else stem + "_lesion"
        written.append(_save(scan, lesion, path.with_name(lesion_stem + ".nii.gz")))
    if labelled is not None and set(labelled) != set(lab.LABELLED_STRUCTURE_KEYS):
        ordered = [k for k in lab.LABELLED_STRUCTURE_KEYS if k in set(labelled) | ({"lesion"} if lesion.any() else set())]
        write_text_atomic(sidecar_path(path), json.dumps({"LabelledStructures": ordered}, indent=2))
    tsv = path.parent / "dseg.tsv"
    if not tsv.exists():
        write_text_atomic(tsv, lab.dseg_tsv_text())
    return [str(p) for p in written]


def _save(scan: Scan, volume: np.ndarray, path: Path) -> Path:
    from score_gui.niftilib import nib

    img = nifti_for(scan, scan.to_file_grid(volume.astype(np.uint8)), np.uint8)
    img.header.set_zooms(tuple(img.header.get_zooms()[:3]))
    with atomic_path(path, keep_previous=True) as tmp:
        nib.save(img, str(tmp))
    return path


def _grid_from_layer(data: np.ndarray, meta: dict) -> Scan:
    """No scan attached (a labels layer made in plain napari): use the layer's scale."""
    if data.ndim != 3:
        raise ScoreInputError(None, f"expected 3D labels (slices, rows, columns), got shape {data.shape}")
    scale = meta.get("scale") or (1.0, 1.0, 1.0)
    images = np.zeros((data.shape[0], 1, *data.shape[1:]), np.float32)
    return Scan.from_arrays(images, pixel_spacing=(float(scale[-2]), float(scale[-1])))
