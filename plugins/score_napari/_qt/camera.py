"""Where the panes look: boxes around the canal, the camera framing one, canvas positions.

Every pane shares one camera (napari's grid mode), so framing the canal once frames it
on every pane. Boxes are ``(row0, col0, row1, col1)`` in pixels, end exclusive.

Examples
--------
>>> import numpy as np
>>> mask = np.zeros((6, 6), bool)
>>> mask[1:3, 2:5] = True
>>> mask_box(mask)
(1.0, 2.0, 3.0, 5.0)
>>> union_of_boxes((1.0, 2.0, 3.0, 5.0), (0.0, 4.0, 2.0, 6.0))
(0.0, 2.0, 3.0, 6.0)
"""

from __future__ import annotations

import numpy as np

from score_napari._qt import _napari_compat as compat

Box = tuple[float, float, float, float]


def mask_box(mask: np.ndarray) -> Box | None:
    """The pixel box around the true pixels of a 2D ``mask``, or None when there are none.

    Parameters
    ----------
    mask : numpy.ndarray
        ``[H, W]`` booleans.
    """
    if not mask.any():
        return None
    rows, cols = np.nonzero(mask)
    return float(rows.min()), float(cols.min()), float(rows.max() + 1), float(cols.max() + 1)


def union_of_boxes(first: Box | None, second: Box | None) -> Box | None:
    """The smallest box holding both (either may be None)."""
    if first is None or second is None:
        return second if first is None else first
    return (min(first[0], second[0]), min(first[1], second[1]),
            max(first[2], second[2]), max(first[3], second[3]))


def canal_box(overlay: np.ndarray | None, slice_index: int) -> Box | None:
    """The box around the canal (any label) on one slice of ``overlay`` ``[S, H, W]``, or
    around the canal of every slice when that one is empty; None without labels."""
    if overlay is None:
        return None
    box = mask_box(overlay[slice_index] > 0)
    return box if box is not None else mask_box((overlay > 0).any(axis=0))


def frame_box(box: tuple | None, pixel_spacing: tuple[float, float], shape_hw: tuple[int, int],
              cell_size: tuple[float, float], margin: float = 0.4,
              field_mm: float = 30.0) -> tuple[tuple[float, float], float]:
    """Camera ``(centre (y, x) in mm, zoom in screen pixels per mm)`` showing ``box``.

    ``box`` is ``(row0, col0, row1, col1)`` in pixels, shown with ``margin`` of its size on
    each side, in a grid cell of ``cell_size`` (height, width) screen pixels; without a box,
    the image centre with a ``field_mm`` field.

    Examples
    --------
    >>> frame_box((10, 20, 30, 40), (0.5, 0.5), (64, 64), (300, 600), margin=0.5)
    ((10.0, 15.0), 15.0)
    >>> frame_box(None, (1.0, 1.0), (64, 64), (300, 300))
    ((32.0, 32.0), 10.0)
    """
    dy, dx = pixel_spacing
    if box is None:
        h, w = shape_hw
        centre = (h / 2 * dy, w / 2 * dx)
        extent = (field_mm, field_mm)
    else:
        r0, c0, r1, c1 = box
        centre = ((r0 + r1) / 2 * dy, (c0 + c1) / 2 * dx)
        extent = ((r1 - r0) * dy * (1 + 2 * margin), (c1 - c0) * dx * (1 + 2 * margin))
    zoom = min(cell_size[0] / max(extent[0], 1e-3), cell_size[1] / max(extent[1], 1e-3))
    return (float(centre[0]), float(centre[1])), float(zoom)


def frame_on_every_pane(viewer, box: Box | None, pixel_spacing: tuple[float, float],
                        shape_hw: tuple[int, int], margin: float, field_mm: float) -> None:
    """Point the shared camera of ``viewer`` at ``box`` (see :func:`frame_box`), sized for
    one cell of the grid as it is laid out now."""
    rows, cols = viewer.canvas.grid.actual_shape(viewer.layers)
    canvas_h, canvas_w = viewer.canvas.size
    centre, zoom = frame_box(box, pixel_spacing, shape_hw, (canvas_h / rows, canvas_w / cols),
                             margin, field_mm)
    camera = viewer.scene.camera
    camera.center = (camera.center[0], *centre) if len(camera.center) == 3 else centre
    camera.zoom = zoom


def canvas_position(viewer, image_layer, pixel_spacing: tuple[float, float],
                    row: float, col: float) -> tuple[int, int]:
    """Canvas pixel ``(x, y)`` of image pixel ``(row, col)`` of the pane showing
    ``image_layer`` (for tests and scripted interaction)."""
    view = compat.cell_view(viewer, viewer.layers.index(image_layer))
    dy, dx = pixel_spacing
    transform = view.transform * view.scene.transform
    x, y = transform.map([col * dx, row * dy])[:2]
    return int(round(x)), int(round(y))
