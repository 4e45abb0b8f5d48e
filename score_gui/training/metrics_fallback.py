"""Minimal Dice and HD95 used by cross-validation when :mod:`score_gui.metrics` is absent.

Examples
--------
>>> import numpy as np
>>> a = np.zeros((10, 10), bool); a[2:6, 2:6] = True
>>> b = np.zeros((10, 10), bool); b[2:6, 3:7] = True
>>> round(dice(a, b), 3), hausdorff95(a, b, (0.5, 0.5))
(0.75, 0.5)
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def dice(pred: np.ndarray, truth: np.ndarray) -> float:
    """Dice of two masks; 1.0 when both are empty."""
    pred, truth = np.asarray(pred, bool), np.asarray(truth, bool)
    total = int(pred.sum()) + int(truth.sum())
    if total == 0:
        return 1.0
    return 2.0 * int((pred & truth).sum()) / total


def _surface(mask: np.ndarray) -> np.ndarray:
    return mask & ~ndimage.binary_erosion(mask, border_value=0)


def hausdorff95(pred: np.ndarray, truth: np.ndarray, spacing=(1.0, 1.0)) -> float:
    """95th percentile of the symmetric surface distances in mm; NaN when a mask is empty."""
    pred, truth = np.asarray(pred, bool), np.asarray(truth, bool)
    if not pred.any() or not truth.any():
        return float("nan")
    sp, st = _surface(pred), _surface(truth)
    to_truth = ndimage.distance_transform_edt(~st, sampling=spacing)[sp]
    to_pred = ndimage.distance_transform_edt(~sp, sampling=spacing)[st]
    return float(np.percentile(np.concatenate([to_truth, to_pred]), 95))
