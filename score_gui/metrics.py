"""Segmentation agreement per slice and compartment: Dice, Hausdorff distance and HD95 in mm.

Distances are measured between the *boundaries* of two masks on the real pixel grid
(``spacing`` = pixel size in mm along rows and columns, which need not be equal). A
boundary pixel is a mask pixel with at least one 4-connected neighbour outside the mask
(pixels on the image edge count as boundary). For each boundary pixel of A the distance
to the nearest boundary pixel of B comes from
``scipy.ndimage.distance_transform_edt(~boundary_B, sampling=spacing)`` (exact Euclidean
distance between pixel centres), and vice versa.

- ``hausdorff_mm`` = max(max d(A->B), max d(B->A)), the symmetric Hausdorff distance.
- ``hd95_mm`` = 95th percentile of the pooled directed distances d(A->B) and d(B->A)
  (the MedPy/``surface-distance`` convention of pooling both directions).

Empty masks (common for lesions and for slices where a structure is absent):

- both empty: ``dice = 1`` and distances ``0`` (perfect agreement that nothing is there);
- one empty: ``dice = 0`` and distances ``NaN`` (a distance to nothing is undefined, and
  any finite stand-in would bias the means). Means over slices skip NaN
  (``n_undefined`` counts them) so that a reader can see how many were left out.

Examples
--------
>>> import numpy as np
>>> a = np.zeros((8, 8), bool); a[2:6, 2:6] = True
>>> b = np.zeros((8, 8), bool); b[2:6, 3:7] = True
>>> m = mask_metrics(a, b, spacing=(0.5, 1.0))
>>> round(m["dice"], 3), m["hausdorff_mm"], m["area_pred_mm2"]
(0.75, 1.0, 8.0)
>>> mask_metrics(np.zeros((3, 3), bool), np.zeros((3, 3), bool), (1, 1))["dice"]
1.0
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import ndimage

from score_gui.labels import structure_mask

COMPARTMENTS = ("canal", "cord", "wm", "gm", "anterior_horns", "posterior_horns", "gray_commissure",
                "lesion")
"""Compartments of ``score evaluate`` (contract section 6)."""

METRIC_COLUMNS = ["compartment", "slice", "level", "dice", "hausdorff_mm", "hd95_mm", "area_pred_mm2",
                  "area_truth_mm2", "area_diff_mm2", "area_diff_percent"]
"""Columns of the metrics table: per slice rows, then one ``slice = 'mean'`` row per compartment."""

NORMAL_APPEARING = ("na_wm", "na_gm")
"""Normal-appearing compartments (the compartment minus lesion voxels), for agreement studies."""

# Which LabelledStructures key a compartment needs (partial label maps).
_NEEDS = {"canal": {"canal"}, "cord": {"cord"}, "wm": {"cord", "gm"}, "gm": {"gm"},
          "anterior_horns": {"horns"}, "posterior_horns": {"horns"}, "gray_commissure": {"horns"},
          "lesion": {"lesion"}, "na_wm": {"cord", "gm", "lesion"}, "na_gm": {"gm", "lesion"}}


def compartment_mask(dseg: np.ndarray, name: str, lesion: np.ndarray | None = None) -> np.ndarray:
    """Mask of a compartment, including normal-appearing ``na_wm``/``na_gm`` (minus lesion)."""
    if name in NORMAL_APPEARING:
        tissue = structure_mask(dseg, name[3:])
        return tissue if lesion is None else tissue & ~(np.asarray(lesion) > 0)
    return structure_mask(dseg, name, lesion)

_FOUR_CONNECTED = ndimage.generate_binary_structure(2, 1)


def boundary(mask: np.ndarray) -> np.ndarray:
    """Mask pixels with a 4-connected neighbour outside the mask (image edge = outside)."""
    mask = np.asarray(mask, bool)
    return mask & ~ndimage.binary_erosion(mask, _FOUR_CONNECTED, border_value=0)


def directed_distances(a: np.ndarray, b: np.ndarray, spacing) -> np.ndarray:
    """Distance in mm from every boundary pixel of ``a`` to the nearest boundary pixel of ``b``."""
    edge_a, edge_b = boundary(a), boundary(b)
    to_b = ndimage.distance_transform_edt(~edge_b, sampling=tuple(float(s) for s in spacing))
    return to_b[edge_a]


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice similarity coefficient; 1.0 when both masks are empty."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    total = int(a.sum()) + int(b.sum())
    if total == 0:
        return 1.0
    return 2.0 * int(np.logical_and(a, b).sum()) / total


def mask_metrics(pred: np.ndarray, truth: np.ndarray, spacing) -> dict[str, float]:
    """Dice, Hausdorff, HD95 (mm) and areas (mm²) of two 2D masks on one grid."""
    pred, truth = np.asarray(pred, bool), np.asarray(truth, bool)
    if pred.shape != truth.shape:
        raise ValueError(f"masks differ in shape: {pred.shape} vs {truth.shape}")
    pixel_area = float(spacing[0]) * float(spacing[1])
    area_pred, area_truth = pred.sum() * pixel_area, truth.sum() * pixel_area
    result = {"dice": dice(pred, truth), "area_pred_mm2": float(area_pred),
              "area_truth_mm2": float(area_truth)}
    if not pred.any() and not truth.any():
        result.update(hausdorff_mm=0.0, hd95_mm=0.0)
    elif not pred.any() or not truth.any():
        result.update(hausdorff_mm=float("nan"), hd95_mm=float("nan"))
    else:
        d_pt = directed_distances(pred, truth, spacing)
        d_tp = directed_distances(truth, pred, spacing)
        pooled = np.concatenate([d_pt, d_tp])
        result.update(hausdorff_mm=float(max(d_pt.max(), d_tp.max())),
                      hd95_mm=float(np.percentile(pooled, 95)))
    return result


def compare_labels(pred_dseg: np.ndarray, truth_dseg: np.ndarray, spacing, *,
                   pred_lesion: np.ndarray | None = None, truth_lesion: np.ndarray | None = None,
                   levels: list[str] | None = None, compartments=COMPARTMENTS,
                   labelled: set[str] | None = None, slices=None) -> pd.DataFrame:
    """Per-slice metrics of two label maps ``[S, H, W]`` (rows: slice x compartment).

    Slices where the truth is unlabelled (all 0, no lesion) are skipped: there is nothing
    to compare with. ``lesion`` is evaluated only when both lesion maps are given;
    compartments outside ``labelled`` (the structures both maps labelled) are skipped.
    """
    pred_dseg, truth_dseg = np.asarray(pred_dseg), np.asarray(truth_dseg)
    if pred_dseg.shape != truth_dseg.shape:
        raise ValueError(f"label maps differ in shape: {pred_dseg.shape} vs {truth_dseg.shape}")
    labelled = set(labelled) if labelled is not None else {"canal", "cord", "gm", "horns", "lesion"}
    both_lesions = pred_lesion is not None and truth_lesion is not None
    wanted = [c for c in compartments if _NEEDS[c] <= labelled
              and (both_lesions or "lesion" not in _NEEDS[c])]
    n_slices = truth_dseg.shape[0]
    truth_labelled = truth_dseg.reshape(n_slices, -1).any(axis=1)
    if truth_lesion is not None:
        truth_labelled |= np.asarray(truth_lesion).reshape(n_slices, -1).any(axis=1)
    rows = []
    for s in (range(n_slices) if slices is None else slices):
        if not truth_labelled[s]:
            continue
        for name in wanted:
            m_pred = compartment_mask(pred_dseg[s], name, None if pred_lesion is None else pred_lesion[s])
            m_truth = compartment_mask(truth_dseg[s], name, None if truth_lesion is None else truth_lesion[s])
            rows.append({"compartment": name, "slice": s,
                         "level": levels[s] if levels and s < len(levels) else "",
                         **mask_metrics(m_pred, m_truth, spacing)})
    table = pd.DataFrame(rows, columns=[c for c in METRIC_COLUMNS if c not in ("area_diff_mm2",
                                                                                "area_diff_percent")])
    return _with_area_differences(table)


def _with_area_differences(table: pd.DataFrame) -> pd.DataFrame:
    table = table.copy()
    table["area_diff_mm2"] = table["area_pred_mm2"] - table["area_truth_mm2"]
    truth = table["area_truth_mm2"].astype(float).replace(0.0, np.nan)
    table["area_diff_percent"] = 100.0 * table["area_diff_mm2"] / truth
    return table


def with_mean_rows(table: pd.DataFrame) -> pd.DataFrame:
    """Append one row per compartment with ``slice = 'mean'`` (NaN distances skipped).

    ``n_slices`` counts the slices in the mean, ``n_undefined`` the slices whose
    distances were undefined (one mask empty).
    """
    numeric = ["dice", "hausdorff_mm", "hd95_mm", "area_pred_mm2", "area_truth_mm2", "area_diff_mm2",
               "area_diff_percent"]
    per_slice = table.copy()
    per_slice["slice"] = per_slice["slice"].astype(object)
    per_slice["n_slices"] = 1
    per_slice["n_undefined"] = per_slice["hausdorff_mm"].isna().astype(int)
    means = []
    order = [c for c in COMPARTMENTS + NORMAL_APPEARING if c in set(per_slice["compartment"])]
    for name in order:
        group = per_slice[per_slice["compartment"] == name]
        row = {"compartment": name, "slice": "mean", "level": "",
               **{c: float(np.nanmean(group[c])) if group[c].notna().any() else np.nan for c in numeric},
               "n_slices": len(group), "n_undefined": int(group["n_undefined"].sum())}
        means.append(row)
    return pd.concat([per_slice, pd.DataFrame(means)], ignore_index=True)


def read_label_pair(pred_path, truth_path, pred_lesion=None, truth_lesion=None):
    """Read two label maps (and lesion maps) that must share one grid.

    Returns ``(pred_dseg, truth_dseg, pred_lesion, truth_lesion, spacing, labelled)`` with
    volumes as ``[S, X, Y]`` (file grid, slices first) and ``spacing`` = (pixdim[1], pixdim[2]).
    Lesion maps are taken from beside the dseg files when not given. Each pair of files is
    read and checked as ``score areas`` reads them (:func:`score_gui.areas.read_label_files`:
    values, lesion grid and affine, the scan's grid and affine); then pred against truth.
    """
    from score_gui.areas import read_label_files
    from score_gui.errors import ScoreInputError
    from score_gui.labels import read_sidecar_labels

    pred_files = read_label_files(pred_path, pred_lesion)
    truth_files = read_label_files(truth_path, truth_lesion)
    pred, truth = pred_files.dseg, truth_files.dseg
    truth_img = truth_files.img
    if pred.shape != truth.shape:
        raise ScoreInputError(pred_path, f"grid {pred.shape} does not match the truth's {truth.shape}")
    if not np.allclose(pred_files.img.affine, truth_img.affine, atol=1e-3):
        raise ScoreInputError(pred_path, "affine differs from the truth's (another grid)")
    lesions = [None if files.lesion is None else np.moveaxis(files.lesion > 0, 2, 0)
               for files in (pred_files, truth_files)]
    labelled = {"canal", "cord", "gm", "horns", "lesion"}
    for path in (pred_path, truth_path):
        meta = read_sidecar_labels(path)
        if meta is not None:
            labelled &= set(meta) | {"lesion"}
    pixdim = truth_img.header["pixdim"]
    spacing = (abs(float(pixdim[1])), abs(float(pixdim[2])))
    if min(spacing) <= 0 or not np.all(np.isfinite(spacing)):
        raise ScoreInputError(truth_path, f"invalid pixel size {spacing} in the header")
    return (np.moveaxis(pred.astype(np.uint8), 2, 0), np.moveaxis(truth.astype(np.uint8), 2, 0),
            lesions[0], lesions[1], spacing, labelled)


def evaluate_files(pred_path, truth_path, pred_lesion=None, truth_lesion=None) -> pd.DataFrame:
    """``score evaluate``: per-slice metrics of two label map files plus mean rows."""
    from score_gui.areas import _scan_levels, find_scan_for_label

    pred, truth, pred_les, truth_les, spacing, labelled = read_label_pair(
        pred_path, truth_path, pred_lesion, truth_lesion)
    levels = _scan_levels(find_scan_for_label(truth_path), truth.shape[0])
    table = compare_labels(pred, truth, spacing, pred_lesion=pred_les, truth_lesion=truth_les,
                           levels=levels, labelled=labelled)
    return with_mean_rows(table)
