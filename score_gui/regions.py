"""Connected regions of a 2-D mask, in numpy alone.

``score segment`` needs only two region operations (the largest canal region of a slice,
the localiser's largest canal blob), and ``scipy.ndimage`` costs 0.2 s to import, a tenth
of a whole run; so the inference path uses these, and the rest of the core keeps SciPy.
The numbering is SciPy's (``scipy.ndimage.label`` with its default 4-connected structure),
which the tests check on random masks.

Examples
--------
>>> import numpy as np
>>> mask = np.array([[1, 1, 0, 1],
...                  [0, 1, 0, 1],
...                  [1, 0, 0, 0]], bool)
>>> labels, count = label_regions(mask)
>>> count
3
>>> labels.tolist()
[[1, 1, 0, 2], [0, 1, 0, 2], [3, 0, 0, 0]]
>>> largest_region(mask).astype(int).tolist()
[[1, 1, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0]]
"""

from __future__ import annotations

import numpy as np


def label_regions(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """Number the 4-connected regions of a 2-D mask 1, 2, ... in raster order of their first pixel.

    Every pixel starts with its own raster index and repeatedly takes the smallest index
    among its neighbours, then the label of the pixel its label names (pointer jumping,
    so that long regions need a few dozen passes, not one per pixel of their length).
    At the end each region carries the index of its first pixel.

    Returns
    -------
    labels : int32 array of the mask's shape, 0 outside the mask
    count : int
    """
    mask = np.asarray(mask, bool)
    if mask.ndim != 2:
        raise ValueError(f"label_regions takes a 2-D mask, not {mask.ndim}-D")
    out = np.zeros(mask.shape, np.int32)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return out, 0
    box = slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)  # a canal fills a small part of a slice
    labels, count = _label_box(mask[box])
    out[box] = labels
    return out, count


def _label_box(mask: np.ndarray) -> tuple[np.ndarray, int]:
    outside = mask.size  # larger than every pixel index, so a minimum never picks it
    labels = np.where(mask, np.arange(mask.size, dtype=np.int32).reshape(mask.shape), outside)
    while True:
        previous = labels.copy()
        np.minimum(labels[1:], previous[:-1], out=labels[1:])
        np.minimum(labels[:-1], previous[1:], out=labels[:-1])
        np.minimum(labels[:, 1:], previous[:, :-1], out=labels[:, 1:])
        np.minimum(labels[:, :-1], previous[:, 1:], out=labels[:, :-1])
        labels[~mask] = outside
        flat = labels.ravel()
        inside = flat < outside
        flat[inside] = flat[flat[inside]]
        if np.array_equal(labels, previous):
            break
    firsts, numbered = np.unique(labels[mask], return_inverse=True)
    out = np.zeros(mask.shape, np.int32)
    out[mask] = numbered.ravel() + 1
    return out, len(firsts)


def largest_region(mask: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """The region of a 2-D mask with the most pixels (or the largest sum of ``weights``).

    Ties go to the region that comes first in raster order; an empty mask gives an empty one.
    """
    labels, count = label_regions(mask)
    if count <= 1:
        return labels > 0
    sizes = np.bincount(labels.ravel(), weights=None if weights is None else np.ravel(weights))[1:]
    return labels == int(np.argmax(sizes)) + 1


def centre_of_mass(weights: np.ndarray) -> tuple[float, float]:
    """The weighted mean (row, column) of a 2-D array, as ``scipy.ndimage.center_of_mass``.

    >>> centre_of_mass(np.array([[0, 1], [0, 3]]))
    (0.75, 1.0)
    """
    weights = np.asarray(weights, np.float64)
    total = weights.sum()
    rows = np.arange(weights.shape[0]) @ weights.sum(axis=1)
    cols = np.arange(weights.shape[1]) @ weights.sum(axis=0)
    return float(rows / total), float(cols / total)
