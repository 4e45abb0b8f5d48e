"""From a scan to model inputs and from model outputs back to the scan's grid.

A model sees every slice at its own fixed in-plane pixel size (``pixel_size_mm``,
0.6 mm for the default models) in a square crop of ``crop_size_px`` pixels centred on
the spinal canal (or the whole field of view when ``crop_size_px`` is 0). Steps:

1. :func:`zscore_slices`: per slice and image, subtract the mean and divide by the
   standard deviation of the **whole** native slice (as the reference MDGRU whitens
   whole images, not patches).
2. :func:`find_canal`: the canal centre per slice, from a small localiser network on a
   coarse grid, or the image centre when there is no localiser.
3. :func:`model_grid` + :func:`sample_crops`: resample (linear interpolation) the
   normalised slices onto the model grid around those centres; pixels outside the
   image are 0 (the mean).
4. :func:`to_native`: resample per-class probabilities from the model grid back to the
   native grid (linear), outside the crop "outside the canal" with certainty; label
   maps are then the argmax on the native grid, never nearest-neighbour label copies.

Examples
--------
>>> import numpy as np
>>> grid = model_grid((0.5, 0.5), (40, 40), centre=(19.5, 19.5), pixel_size_mm=1.0, crop_size_px=10)
>>> grid.shape, float(grid.rows[0]), float(grid.step[0])
((10, 10), 10.5, 2.0)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from score_gui.mdgru.numpy_net import softmax
from score_gui.regions import centre_of_mass, largest_region

LOCALISER_PIXEL_SIZE_MM = 2.0
"""Grid of the canal localiser: coarse, so it runs on the whole field of view in milliseconds."""
OUTLIER_DISTANCE_MM = 10.0
"""A slice's canal centre further than this from the scan's median centre is replaced by it."""


def zscore_slices(images: np.ndarray) -> np.ndarray:
    """Normalise ``[S, T, H, W]`` per slice and image to mean 0, standard deviation 1.

    Examples
    --------
    >>> import numpy as np
    >>> out = zscore_slices(np.arange(8, dtype=np.float32).reshape(1, 2, 2, 2))
    >>> [round(float(v), 3) for v in out[0, 1].ravel()]
    [-1.342, -0.447, 0.447, 1.342]
    """
    images = np.asarray(images, np.float32)
    mean = images.mean(axis=(2, 3), keepdims=True)
    std = images.std(axis=(2, 3), keepdims=True)
    return ((images - mean) / np.maximum(std, 1e-6)).astype(np.float32)


@dataclass(frozen=True)
class ModelGrid:
    """Where the model grid's pixel centres lie in native pixel coordinates.

    Attributes
    ----------
    rows, cols : 1-D float arrays
        Native (row, column) coordinates of the model grid's rows and columns.
    step : (float, float)
        Native pixels per model pixel along rows and columns.
    """

    rows: np.ndarray
    cols: np.ndarray
    step: tuple[float, float]

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.rows), len(self.cols))

    def native_box(self, native_shape) -> tuple[slice, slice]:
        """The native pixels covered by the grid (clipped to the image)."""
        half_r, half_c = self.step[0] / 2, self.step[1] / 2
        r0 = max(int(np.floor(self.rows[0] - half_r)), 0)
        r1 = min(int(np.ceil(self.rows[-1] + half_r)) + 1, native_shape[0])
        c0 = max(int(np.floor(self.cols[0] - half_c)), 0)
        c1 = min(int(np.ceil(self.cols[-1] + half_c)) + 1, native_shape[1])
        return slice(r0, max(r1, r0)), slice(c0, max(c1, c0))


def model_grid(native_spacing, native_shape, centre=None, pixel_size_mm: float = 0.6,
               crop_size_px: int = 0) -> ModelGrid:
    """The model grid around ``centre`` (native row, col; default the image centre).

    ``crop_size_px = 0`` covers the whole field of view at ``pixel_size_mm``.
    """
    height, width = native_shape
    dy, dx = (float(v) for v in native_spacing)
    step = (pixel_size_mm / dy, pixel_size_mm / dx)
    if centre is None:
        centre = ((height - 1) / 2, (width - 1) / 2)
    if crop_size_px:
        size = (int(crop_size_px), int(crop_size_px))
    else:
        size = (max(int(round(height * dy / pixel_size_mm)), 8), max(int(round(width * dx / pixel_size_mm)), 8))
    rows = centre[0] + (np.arange(size[0]) - (size[0] - 1) / 2) * step[0]
    cols = centre[1] + (np.arange(size[1]) - (size[1] - 1) / 2) * step[1]
    return ModelGrid(rows.astype(np.float64), cols.astype(np.float64), step)


def linear_weights(positions: np.ndarray, n: int, outside: str = "zero") -> np.ndarray:
    """Linear interpolation along one axis as a matrix: ``values @ linear_weights(...).T``.

    Row ``i`` holds the weights of the ``n`` samples for position ``positions[i]`` (in
    sample units). ``outside="zero"``: a position outside ``[0, n - 1]`` gets no weight
    (value 0), as ``scipy.ndimage.map_coordinates(order=1, mode="constant")``; ``"nearest"``:
    it takes the edge sample, as ``mode="nearest"``. The model grids are separable (one
    row position per grid row, one column position per grid column), so a 2-D resampling
    is two small matrix products, and SciPy need not be imported to run a model.

    >>> linear_weights(np.array([-0.5, 0.25, 1.0]), 2).tolist()
    [[0.0, 0.0], [0.75, 0.25], [0.0, 1.0]]
    """
    positions = np.asarray(positions, np.float64)
    clipped = np.clip(positions, 0, n - 1)
    low = np.minimum(np.floor(clipped).astype(np.int64), max(n - 2, 0))
    fraction = clipped - low
    weights = np.zeros((len(positions), n), np.float64)
    rows = np.arange(len(positions))
    weights[rows, low] = 1 - fraction
    weights[rows, np.minimum(low + 1, n - 1)] += fraction
    if outside == "zero":
        weights[(positions < 0) | (positions > n - 1)] = 0.0
    return weights.astype(np.float32)


def sample_crops(normalised: np.ndarray, grids: list[ModelGrid]) -> np.ndarray:
    """Resample normalised slices ``[S, T, H, W]`` onto one grid per slice -> ``[S, T, h, w]``.

    Plain linear interpolation without anti-aliasing, exactly as training resamples its
    crops (:func:`score_gui.training.augment.warp_images`), so the models see at inference
    what they saw in training; outside the image the value is 0 (the mean).
    """
    n_slices, n_images, height, width = normalised.shape
    out = np.zeros((n_slices, n_images, *grids[0].shape), np.float32)
    for s, grid in enumerate(grids):
        along_rows = linear_weights(grid.rows, height)
        along_cols = linear_weights(grid.cols, width)
        out[s] = along_rows @ np.asarray(normalised[s], np.float32) @ along_cols.T
    return out


def to_native(probs: np.ndarray, grid: ModelGrid, native_shape, outside_class: int = 0) -> np.ndarray:
    """Probabilities ``[K, h, w]`` on the model grid -> ``[K, H, W]`` on the native grid.

    Linear interpolation inside the grid; outside it ``outside_class`` has probability 1.
    """
    n_classes = probs.shape[0]
    out = np.zeros((n_classes, *native_shape), np.float32)
    out[outside_class] = 1.0
    box = grid.native_box(native_shape)
    if box[0].start >= box[0].stop or box[1].start >= box[1].stop:
        return out
    u = (np.arange(box[0].start, box[0].stop) - grid.rows[0]) / grid.step[0]
    v = (np.arange(box[1].start, box[1].stop) - grid.cols[0]) / grid.step[1]
    inside = np.outer((u >= -0.5) & (u <= grid.shape[0] - 0.5), (v >= -0.5) & (v <= grid.shape[1] - 0.5))
    values = (linear_weights(u, grid.shape[0], "nearest") @ np.asarray(probs, np.float32)
              @ linear_weights(v, grid.shape[1], "nearest").T)
    region = out[:, box[0], box[1]]
    region[:, inside] = values[:, inside]  # region is a view of out
    return out


# ---------------------------------------------------------------------------------------
# Finding the canal
# ---------------------------------------------------------------------------------------

def image_centres(scan) -> np.ndarray:
    """The fallback canal position: every slice's image centre, ``[S, 2]`` (row, col)."""
    height, width = scan.shape_hw
    return np.tile([(height - 1) / 2, (width - 1) / 2], (scan.n_slices, 1)).astype(np.float64)


def find_canal(scan, localiser=None, normalised: np.ndarray | None = None) -> np.ndarray:
    """Centre of the spinal canal per slice in native pixel coordinates, ``[S, 2]`` (row, col).

    Parameters
    ----------
    scan : Scan
    localiser : (network, meta) or None
        A small network (:func:`score_gui.mdgru.checkpoint.load_network`) with one head whose first class is "outside" (``canal`` vs rest,
        or cord vs rest when only cords were labelled) trained on a coarse grid
        (``meta["pixel_size_mm"]``, usually 2 mm) over the whole field of view. It lives
        beside the ensemble's members (``ensemble.json`` key ``localiser``).
    normalised : [S, T, H, W], optional
        :func:`zscore_slices` of the scan, if already computed.

    Notes
    -----
    The centre is the probability-weighted centroid of the largest connected region with
    P(canal) > 0.5. Slices without such a region, and slices whose centre lies more than
    :data:`OUTLIER_DISTANCE_MM` from the scan's median centre (the canal hardly moves
    between neighbouring slices), take the median centre. **Fallback**: without a
    localiser, or when it finds the canal on no slice, every slice uses the image centre;
    AMIRA scans are planned with the cord near the centre, and the default crop (38 mm)
    tolerates an offset of about 7 mm, but a scan with the cord far off-centre needs a
    localiser.
    """
    fallback = image_centres(scan)
    if localiser is None:
        return fallback
    model, meta = localiser
    if normalised is None:
        normalised = zscore_slices(scan.images)
    grid = model_grid(scan.pixel_spacing, scan.shape_hw, None, float(meta["pixel_size_mm"]), 0)
    crops = sample_crops(normalised, [grid] * scan.n_slices)
    # 1 - P(first class): the same for a canal-vs-rest and a cord-vs-rest localiser.
    canal_prob = 1.0 - softmax(model(crops), axis=1)[:, 0]
    centres = np.full((scan.n_slices, 2), np.nan)
    for s in range(scan.n_slices):
        centre = _largest_region_centroid(canal_prob[s])
        if centre is not None:
            centres[s] = (grid.rows[0] + centre[0] * grid.step[0], grid.cols[0] + centre[1] * grid.step[1])
    return _fill_and_reject_outliers(centres, fallback, scan.pixel_spacing)


def _largest_region_centroid(prob: np.ndarray):
    mask = prob > 0.5
    if not mask.any():
        return None
    return centre_of_mass(np.where(largest_region(mask, weights=prob), prob, 0.0))


def _fill_and_reject_outliers(centres: np.ndarray, fallback: np.ndarray, spacing) -> np.ndarray:
    found = ~np.isnan(centres[:, 0])
    if not found.any():
        return fallback
    median = np.median(centres[found], axis=0)
    distance_mm = np.hypot((centres[:, 0] - median[0]) * spacing[0], (centres[:, 1] - median[1]) * spacing[1])
    bad = ~found | (distance_mm > OUTLIER_DISTANCE_MM)
    centres[bad] = median
    return centres


def canal_centre_from_labels(dseg: np.ndarray) -> np.ndarray | None:
    """Centroid (row, col) of the canal (or cord, when only that is labelled) of one slice.

    For training crops; None when the slice has no labelled tissue.

    >>> import numpy as np
    >>> d = np.zeros((5, 5), np.uint8); d[1:4, 2:5] = 1
    >>> canal_centre_from_labels(d).tolist()
    [2.0, 3.0]
    """
    mask = np.asarray(dseg) > 0
    if not mask.any():
        return None
    return np.asarray(centre_of_mass(mask))
