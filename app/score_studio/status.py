"""The status bar's reading of the pixel under the mouse.

Examples
--------
>>> import numpy as np
>>> from score_gui.scan import Scan
>>> scan = Scan.from_arrays(np.zeros((2, 1, 4, 4), np.float32))
>>> voxel_at(scan, [1.2, 2.6, 0.4], current_slice=1)
(1, 3, 0)
>>> voxel_at(scan, [0, 9, 0], current_slice=0) is None
True
"""

from __future__ import annotations

import numpy as np

from score_gui.labels import LABEL_NAMES, LabelMap
from score_gui.scan import Scan


def voxel_at(scan: Scan | None, coords, current_slice: int) -> tuple[int, int, int] | None:
    """``(slice, row, col)`` of data coordinates ``coords`` on the slice shown, or None
    outside the scan (or while the layers are going away: fewer than 3 coordinates)."""
    if scan is None or coords is None or len(coords) < 3:
        return None
    index = np.round(np.asarray(coords[-3:], float)).astype(int)
    index[0] = current_slice
    if np.any(index < 0) or np.any(index >= scan.label_shape):
        return None
    return int(index[0]), int(index[1]), int(index[2])


def describe_voxel(scan: Scan, where: tuple[int, int, int], averages: dict[str, np.ndarray],
                   labels: LabelMap) -> str:
    """Slice, level, pixel, mm position, the averages' intensities and the label at ``where``."""
    s, r, c = where
    level = scan.level(s)
    values = "  ".join(f"{name}: {avg[s, r, c]:.0f}" for name, avg in averages.items())
    label = LABEL_NAMES.get(int(labels.dseg[s, r, c]), "?")
    if labels.lesion is not None and labels.lesion[s, r, c]:
        label += " + lesion"
    dy, dx = scan.pixel_spacing
    return (f"slice {s + 1}{' ' + level if level else ''}  pixel ({r}, {c})  "
            f"{r * dy:.1f}, {c * dx:.1f} mm  |  {values}  |  {label}")


def describe_position(window, position) -> str:
    """Status bar text for a world position over the window's viewer ("" outside the scan)."""
    if window.scan is None or position is None:
        return ""
    layer = window.score_viewer.master      # None before the panes exist
    coords = layer.world_to_data(position) if layer is not None else position
    where = voxel_at(window.scan, coords, window.current_slice())
    return "" if where is None else describe_voxel(window.scan, where, window.averages,
                                                   window.score_viewer.get_labels())


def window_title(entry, study) -> str:
    """``<scan> - <study> - SCORE Studio`` (the study named when it has several scans)."""
    parts = ["SCORE Studio"]
    if entry is not None:
        parts.insert(0, entry.stem)
    if study is not None and len(study.scans) > 1:
        parts.insert(1, study.root.name)
    return " - ".join(parts)
