"""Per-slice areas of one label map, and the areas CSV, without pandas.

``score segment`` writes one ``<stem>_areas.csv`` per scan; importing pandas for it would
cost 0.2-0.3 s of a run that should take about two. Study tables, QC and statistics live
in :mod:`score_gui.areas` (pandas), which builds on these rows and writes through
:func:`write_areas_csv` too, so every areas CSV is written one way.

Examples
--------
>>> import numpy as np
>>> dseg = np.zeros((2, 4, 4), np.uint8); dseg[0, 1:3, 1:3] = 2; dseg[0, 1, 1] = 3
>>> rows = area_rows(dseg, None, pixel_area_mm2=0.5, labelled={"canal", "cord", "gm", "horns"})
>>> [rows[0][c] for c in ("cord", "wm", "gm")], list(rows[0]) == COLUMNS
([2.0, 1.5, 0.5], True)
"""

from __future__ import annotations

import csv
import math

import numpy as np

from score_gui.atomic import atomic_path
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


def area_rows(dseg: np.ndarray, lesion: np.ndarray | None, pixel_area_mm2: float, *,
              subject: str = "", session: str = "", scan: str = "", source: str = "",
              levels: list[str] | None = None, labelled: set[str] | None = None,
              qc: dict[int, tuple[str, str]] | None = None) -> list[dict]:
    """Areas of every slice of one label map: one dict per slice, keys :data:`COLUMNS` in order.

    Parameters
    ----------
    dseg, lesion : ndarray ``[S, H, W]``
        Tissue classes and lesion map (``lesion=None``: lesions not labelled).
    pixel_area_mm2 : float
        In-plane pixel area.
    labelled : set of str, optional
        ``LabelledStructures``; default: all, with ``lesion`` only when a lesion map is given.
        Areas of structures not labelled are NaN, as are all areas of an unlabelled slice.
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
    rows = []
    for s in range(n_slices):
        status, reason = qc.get(s, ("unreviewed", ""))
        rows.append({"subject": subject or "", "session": session or "", "scan": scan, "source": source,
                     "slice": s, "level": levels[s] if levels and s < len(levels) else "",
                     "qc_status": status, "qc_reason": reason or "", "pixel_area_mm2": float(pixel_area_mm2),
                     **dict(zip(AREA_COLUMNS, areas[s].tolist()))})
    return rows


def write_areas_csv(rows, path) -> None:
    """Write areas rows (dicts with :data:`COLUMNS`) atomically as CSV, columns in contract order.

    Numbers with 4 decimals, unknown areas empty; the same bytes as pandas'
    ``to_csv(index=False, float_format="%.4f")`` of the same table.
    """
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(COLUMNS)
        for row in rows:
            writer.writerow([_cell(row[c]) for c in COLUMNS])


def _cell(value) -> str:
    """``12.3457`` for floats, empty for NaN or None, the text of anything else.

    >>> [_cell(v) for v in (0.5, float("nan"), None, 3, "C2")]
    ['0.5000', '', '', '3', 'C2']
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:.4f}" if isinstance(value, float) else str(value)
