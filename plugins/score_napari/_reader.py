"""npe2 reader: AMIRA scans (one image layer per inversion image and average) and label
maps (``*_dseg.nii.gz`` -> one labels layer in the contract colours, lesions as value 7).

Every layer keeps the scan in ``metadata["score_scan"]`` so the writer can put labels
back on the scan's grid with its affine, and so the SCORE widgets can take the scan over.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from score_gui import labels as lab
from score_gui.labels import LabelMap
from score_gui.scan import NIFTI_SUFFIXES, InPlaneOrientation, Scan, load_nifti, nifti_stem, read_scan

LABEL_SUFFIXES = ("_dseg", "_lesion")


def is_label_file(path: str | Path) -> bool:
    """``*_dseg.nii[.gz]`` or ``*_lesion.nii[.gz]``.

    Examples
    --------
    >>> is_label_file("sub-01_amira_desc-raterA_dseg.nii.gz"), is_label_file("sub-01_amira.nii.gz")
    (True, False)
    """
    return nifti_stem(path).endswith(LABEL_SUFFIXES)


def get_reader(path):
    """npe2 ``get_reader``: a reader for one NIfTI scan or label map, else None."""
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    if not str(path).endswith(NIFTI_SUFFIXES):
        return None
    return read_label_file if is_label_file(path) else read_scan_file


def read_scan_file(path):
    """Read a scan into image layer data (panes as in the SCORE viewer)."""
    path = path[0] if isinstance(path, list) else path
    return scan_layer_data(read_scan(path))


def read_label_file(path):
    """Read a dseg (with the lesion map beside it) into one labels layer.

    The scan's grid is taken from the label map's own header (same affine by contract).
    """
    path = Path(path[0] if isinstance(path, list) else path)
    if nifti_stem(path).endswith("_lesion"):
        dseg_path = Path(str(path).replace("_lesion.nii", "_dseg.nii"))
        if dseg_path.exists():
            path = dseg_path
    scan = grid_scan_from_file(path)
    if nifti_stem(path).endswith("_lesion"):
        lesion = lab._label_volume(path, scan, "lesion map").astype(np.uint8)
        labels = LabelMap(dseg=np.zeros_like(lesion), lesion=lesion, labelled={"lesion"})
    else:
        labels = lab.read_labels(path, scan)
    return [label_layer_data(scan, labels, name=nifti_stem(path))]


def grid_scan_from_file(path: str | Path) -> Scan:
    """An image-less :class:`Scan` carrying a label file's grid (shape, affine, spacing)."""
    img, _ = load_nifti(path)
    shape = tuple(int(n) for n in img.shape[:3])
    if len(shape) == 2:
        shape = (*shape, 1)
    orientation = InPlaneOrientation.from_affine(img.affine)
    zooms = tuple(float(z) for z in img.header.get_zooms()[:2])
    h, w = (shape[1], shape[0]) if orientation.rows_axis == 1 else (shape[0], shape[1])
    images = np.zeros((shape[2], 1, h, w), np.float32)
    return Scan(images=images, pixel_spacing=orientation.display_spacing(zooms), affine=img.affine,
                orientation=orientation, path=Path(path), header=img.header)


def pane_images(scan: Scan) -> list[tuple[str, str, np.ndarray]]:
    """``(key, title, [S, H, W])`` per pane: inversion images then averages 1-5, 6-8, all."""
    from score_napari._qt.viewer_controller import PANE_TITLES

    if scan.n_images == 1:
        return [("image", scan.image_titles()[0], scan.images[:, 0])]
    panes = [(f"TI{i + 1}", title, scan.images[:, i]) for i, title in enumerate(scan.image_titles())]
    panes += [(key, PANE_TITLES.get(key, f"avg {key}"), image) for key, image in scan.averages().items()]
    return panes


def scan_layer_data(scan: Scan) -> list[tuple]:
    """Image layer data, one per pane, each with percentile contrast and the scan attached."""
    from score_napari._qt.viewer_controller import display_range

    layers = []
    for key, title, image in pane_images(scan):
        meta = {"name": f"{scan.stem} {title}" if scan.path else title, "colormap": "gray",
                "contrast_limits": display_range(image), "scale": (1.0, *scan.pixel_spacing),
                "visible": key in ("1-5", "image"),
                "metadata": {"score_scan": scan, "score_pane": key, "score_role": "image"}}
        layers.append((image, meta, "image"))
    return layers


def label_colors() -> dict:
    """Contract colours as napari's ``colormap`` dict (0 transparent, lesions = 7)."""
    colors = {value: color for value, color in lab.LABEL_COLORS.items() if value}
    colors[0] = "transparent"
    colors[None] = "transparent"
    return colors


def label_layer_data(scan: Scan, labels: LabelMap, name: str = "labels") -> tuple:
    """One labels layer: the dseg with lesion voxels as 7; the tissue under them is kept in
    ``metadata["score_tissue"]`` so saving splits them back exactly."""
    from score_gui.editing import compose_overlay

    overlay, under = compose_overlay(labels.dseg, labels.lesion)
    meta = {"name": name, "colormap": label_colors(), "opacity": 0.5,
            "scale": (1.0, *scan.pixel_spacing),
            "metadata": {"score_scan": scan, "score_tissue": under, "score_role": "labels",
                         "score_labelled": sorted(labels.labelled), "score_who": labels.who}}
    return (overlay, meta, "labels")
