"""Sample data: a synthetic AMIRA scan with its true labels (no download, made in code)."""

from __future__ import annotations

import numpy as np

from score_gui import labels as lab
from score_gui.labels import LabelMap
from score_gui.scan import AMIRA_INVERSION_TIMES, Scan


def demo_scan(n_slices: int = 12, size: int = 192, seed: int = 0, kind: str = "ms") -> tuple[Scan, LabelMap]:
    """A demo scan and its labels: ``score_gui.phantom`` when available, else a small phantom.

    Examples
    --------
    >>> scan, labels = demo_scan(n_slices=2, size=64)
    >>> scan.images.shape, labels.dseg.shape
    ((2, 8, 64, 64), (2, 64, 64))
    """
    made = _from_phantom(n_slices, size, seed, kind)
    return made if made is not None else simple_phantom(n_slices, size, seed, kind)


def _from_phantom(n_slices, size, seed, kind):
    try:
        from score_gui.phantom import make_scan
    except ImportError:
        return None
    try:
        result = make_scan(kind=kind, seed=seed, n_slices=n_slices, shape=(size, size))
    except TypeError:
        return None
    items = result if isinstance(result, tuple) else (result,)
    scan = next((x for x in items if isinstance(x, Scan)), None)
    labels = next((x for x in items if isinstance(x, LabelMap)), None)
    if scan is None or labels is None:
        return None
    return scan, labels


def simple_phantom(n_slices: int = 6, size: int = 128, seed: int = 0, kind: str = "ms") -> tuple[Scan, LabelMap]:
    """Canal, cord, butterfly gray matter (horns + commissure) and a lesion, with AMIRA-like
    contrast: CSF dark early and bright late, GM brighter than WM in the early images."""
    rng = np.random.default_rng(seed)
    spacing = 0.67
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    cy, cx = size / 2, size / 2
    dseg = np.zeros((n_slices, size, size), np.uint8)
    lesion = np.zeros_like(dseg)
    for s in range(n_slices):
        scale = 1.0 + 0.05 * np.sin(s)
        ry, rx = 7.0 / spacing * scale, 10.0 / spacing * scale
        canal = ((yy - cy) / (ry * 1.45)) ** 2 + ((xx - cx) / (rx * 1.35)) ** 2 <= 1
        cord = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
        d = dseg[s]
        d[canal] = lab.CSF
        d[cord] = lab.WM
        for side in (-1, 1):
            hx = cx + side * rx * 0.35
            anterior = ((yy - (cy - ry * 0.35)) / (ry * 0.28)) ** 2 + ((xx - hx) / (rx * 0.16)) ** 2 <= 1
            posterior = ((yy - (cy + ry * 0.4)) / (ry * 0.35)) ** 2 + ((xx - (cx + side * rx * 0.2)) / (rx * 0.09)) ** 2 <= 1
            d[anterior & cord] = lab.ANTERIOR_HORNS
            d[posterior & cord] = lab.POSTERIOR_HORNS
        commissure = (np.abs(yy - cy) <= ry * 0.09) & (np.abs(xx - cx) <= rx * 0.38)
        d[commissure & cord] = lab.GRAY_COMMISSURE
        if kind == "ms" and s % 2 == 0:
            spot = ((yy - (cy + ry * 0.1)) ** 2 + (xx - (cx - rx * 0.72)) ** 2) <= (ry * 0.18) ** 2
            lesion[s][spot & cord] = 1
    # Signal per class and inversion time: CSF nulls early, GM/WM contrast early.
    times = np.asarray(AMIRA_INVERSION_TIMES, np.float32)
    t1 = {0: 900.0, 1: 3000.0, 2: 700.0, 3: 1100.0, 4: 1100.0, 5: 1100.0, 6: 1100.0}
    pd = {0: 0.5, 1: 1.0, 2: 0.75, 3: 0.85, 4: 0.85, 5: 0.85, 6: 0.85}
    table = np.zeros((lab.LESION_VALUE + 1, len(times)), np.float32)
    for value in range(7):
        table[value] = np.abs(pd[value] * (1 - 2 * np.exp(-times / t1[value])))
    table[lab.LESION_VALUE] = np.abs(0.8 * (1 - 2 * np.exp(-times / 1400.0)))
    shown = np.where(lesion > 0, lab.LESION_VALUE, dseg)
    images = np.moveaxis(table[shown], -1, 1)  # [S, H, W, T] -> [S, T, H, W]
    images += rng.normal(0, 0.03, images.shape).astype(np.float32)
    images = np.clip(images, 0, None) * 1000
    scan = Scan.from_arrays(images, pixel_spacing=(spacing, spacing), subject="demo")
    return scan, LabelMap(dseg=dseg, lesion=lesion, who="truth")


def make_sample_data():
    """npe2 sample data: the demo scan's panes as image layers and its labels as one layer."""
    from score_napari._reader import label_layer_data, scan_layer_data

    scan, labels = demo_scan()
    return scan_layer_data(scan) + [label_layer_data(scan, labels, name="demo labels")]
