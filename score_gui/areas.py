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

import numpy as np
import pandas as pd

from score_gui.labels import LABELLED_STRUCTURE_KEYS

ID_COLUMNS = ["subject", "session", "scan", "source", "slice", "level", "qc_status", "qc_reason",
              "pixel_area_mm2"]
AREA_COLUMNS = ["canal", "csf", "cord", "wm", "gm", "anterior_horns", "posterior_horns",
                "gray_commissure", "lesion", "lesion_wm", "lesion_gm", "na_wm", "na_gm",
                "na_anterior_horns", "na_posterior_horns", "na_gray_commissure"]
COLUMNS = ID_COLUMNS + AREA_COLUMNS
"""The contract's columns, in order."""

# Which LabelledStructures entry each area needs (lesion-derived ones need both).
_NEEDS = {
    "canal": ("canal",), "csf": ("canal", "cord"), "cord": ("cord",), "wm": ("cord", "gm"),
    "gm": ("gm",), "anterior_horns": ("horns",), "posterior_horns": ("horns",),
    "gray_commissure": ("horns",), "lesion": ("lesion",), "lesion_wm": ("lesion", "cord", "gm"),
    "lesion_gm": ("lesion", "gm"), "na_wm": ("lesion", "cord", "gm"), "na_gm": ("lesion", "gm"),
    "na_anterior_horns": ("lesion", "horns"), "na_posterior_horns": ("lesion", "horns"),
    "na_gray_commissure": ("lesion", "horns"),
}


def slice_pixel_counts(dseg: np.ndarray, lesion: np.ndarray | None) -> np.ndarray:
    """Pixel counts per slice for every area column, shape ``[S, len(AREA_COLUMNS)]``.

    One ``bincount`` per slice of ``dseg + 7 * lesion`` gives every count at once, which
    keeps a 1,000-scan study fast.
    """
    dseg = np.asarray(dseg, np.uint8)
    n_slices = dseg.shape[0]
    les = np.zeros_like(dseg) if lesion is None else (np.asarray(lesion) > 0).astype(np.uint8)
    codes = dseg.reshape(n_slices, -1).astype(np.int64) + 7 * les.reshape(n_slices, -1)
    codes += 14 * np.arange(n_slices)[:, None]
    hist = np.bincount(codes.ravel(), minlength=14 * n_slices).reshape(n_slices, 2, 7)
    normal, lesional = hist[:, 0], hist[:, 1]
    total = normal + lesional
    def s(arr, values):
        return arr[:, list(values)].sum(axis=1)
    columns = {
        "canal": s(total, range(1, 7)), "csf": total[:, 1], "cord": s(total, range(2, 7)),
        "wm": total[:, 2], "gm": s(total, range(3, 7)), "anterior_horns": total[:, 4],
        "posterior_horns": total[:, 5], "gray_commissure": total[:, 6],
        "lesion": lesional.sum(axis=1), "lesion_wm": lesional[:, 2], "lesion_gm": s(lesional, range(3, 7)),
        "na_wm": normal[:, 2], "na_gm": s(normal, range(3, 7)), "na_anterior_horns": normal[:, 4],
        "na_posterior_horns": normal[:, 5], "na_gray_commissure": normal[:, 6],
    }
    return np.stack([columns[c] for c in AREA_COLUMNS], axis=1)


def areas_table(dseg: np.ndarray, lesion: np.ndarray | None, pixel_area_mm2: float, *,
                subject: str = "", session: str = "", scan: str = "", source: str = "",
                levels: list[str] | None = None, labelled: set[str] | None = None,
                qc: dict[int, tuple[str, str]] | None = None) -> pd.DataFrame:
    """Areas of every slice of one label map as a table with :data:`COLUMNS`.

    Parameters
    ----------
    dseg, lesion : ndarray ``[S, H, W]``
        Tissue classes and lesion map (``lesion=None``: lesions not labelled).
    pixel_area_mm2 : float
        In-plane pixel area.
    labelled : set of str, optional
        ``LabelledStructures``; default: all, with ``lesion`` only when a lesion map is given.
    qc : dict, optional
        ``{slice: (status, reason)}`` decisions in force; other slices are ``unreviewed``.
    """
    dseg = np.asarray(dseg)
    n_slices = dseg.shape[0]
    if labelled is None:
        labelled = set(LABELLED_STRUCTURE_KEYS) - (set() if lesion is not None else {"lesion"})
    areas = slice_pixel_counts(dseg, lesion).astype(np.float64) * float(pixel_area_mm2)
    unknown = [i for i, col in enumerate(AREA_COLUMNS) if not set(_NEEDS[col]) <= set(labelled)]
    areas[:, unknown] = np.nan
    labelled_slices = dseg.reshape(n_slices, -1).any(axis=1)
    if lesion is not None:
        labelled_slices |= np.asarray(lesion).reshape(n_slices, -1).any(axis=1)
    areas[~labelled_slices] = np.nan
    qc = qc or {}
    table = pd.DataFrame(areas, columns=AREA_COLUMNS)
    table.insert(0, "pixel_area_mm2", float(pixel_area_mm2))
    table.insert(0, "qc_reason", [qc.get(s, ("unreviewed", ""))[1] or "" for s in range(n_slices)])
    table.insert(0, "qc_status", [qc.get(s, ("unreviewed", ""))[0] for s in range(n_slices)])
    table.insert(0, "level", [levels[s] if levels and s < len(levels) else "" for s in range(n_slices)])
    table.insert(0, "slice", np.arange(n_slices))
    for name, value in (("source", source), ("scan", scan), ("session", session or ""), ("subject", subject or "")):
        table.insert(0, name, value)
    return table[COLUMNS]


def passed(table: pd.DataFrame) -> pd.DataFrame:
    """Rows that count in aggregates: everything except ``qc_status == 'fail'``."""
    return table[table["qc_status"] != "fail"]


def write_areas_csv(table: pd.DataFrame, path) -> None:
    """Write an areas table atomically, columns in contract order."""
    from score_gui.atomic import atomic_path

    with atomic_path(path) as tmp:
        table[COLUMNS].to_csv(tmp, index=False, float_format="%.4f")
