"""Click correction: refine one structure of one slice with positive and negative clicks.

A rater clicks ``+`` inside a structure the labels missed and ``-`` on a part that is
not the structure; :func:`refine_slice` returns the slice's labels with that structure
re-decided around the clicks and the nesting rules of contract section 2 kept (gray
matter inside the cord, the cord inside the canal, lesions inside the cord).

Method: a random walker with priors (Grady 2005) on a crop around the structure.

1. The crop is the bounding box of the current structure and the clicks plus a margin.
2. Features are the images' averages (1-5: GM/WM contrast, 6-8: WM/CSF contrast on an
   AMIRA scan; the mean image otherwise), z-scored on the crop.
3. A linear discriminant between the current structure's interior and the ring around
   it gives each pixel a score ``z`` (+1 at the structure's mean intensity, -1 at its
   surroundings', 0 half way: partial volume mixes linearly, so ``z = 0`` is a pixel
   half covered); ``sigmoid(gain * z)`` (or its mean with a model ``prior``) is the
   unary term of the walker.
4. Only pixels near the clicks (a disk whose radius grows with the click's depth in
   the error: a click far inside a missed part frees a large disk) and on the
   structure's border (``band`` pixels) are re-decided; every other pixel keeps its
   label as a seed, the clicked pixels are seeds of their sign, and pixels where the
   structure may not lie (outside the cord for gray matter and lesions) are background.
5. The walker solves ``(L + lam I) x = lam u`` on the free pixels (``L`` the graph
   Laplacian with edge weights ``exp(-beta |grad|^2)``, seeds as boundary values); the
   structure is ``x > 0.5``, and every clicked pixel obeys its click (later clicks win).

``benchmarks/bench_refine.py`` measures it the way interactive segmentation is
measured: NoC@90 (clicks to reach Dice 0.90), clicks simulated at the centre of the
largest error region, against a brush baseline, and the latency per click.

Examples
--------
>>> import numpy as np
>>> truth = np.zeros((40, 40), np.uint8); truth[8:32, 8:32] = 2; truth[14:26, 14:26] = 3
>>> images = np.where(truth == 3, 0.2, np.where(truth == 2, 1.0, 0.0))[None].astype(np.float32)
>>> labels = truth.copy(); labels[14:26, 20:26] = 2           # the right part of the GM missed
>>> dseg, _ = refine_slice(images, labels, None, "gm", [Click(20, 23, True)], (0.7, 0.7))
>>> int((dseg == 3).sum()), int((labels == 3).sum()), int((truth == 3).sum())
(144, 72, 144)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy import sparse
from scipy.sparse.linalg import spsolve

from score_gui import labels as lab
from score_gui.errors import ScoreInputError

STRUCTURES = ("cord", "gm", "lesion")
"""Structures a click refines."""

_CLICK = re.compile(r"\s*([+-]?[0-9]+)\s*,\s*([+-]?[0-9]+)\s*,\s*([+-])\s*")
_FOUR = ndimage.generate_binary_structure(2, 1)


@dataclass(frozen=True)
class Click:
    """One click on the display grid: ``positive`` = inside the structure (``+``).

    Examples
    --------
    >>> Click.parse("12,40,+")
    Click(row=12, col=40, positive=True)
    >>> str(Click(3, 4, False))
    '3,4,-'
    >>> Click.parse("12;40")
    Traceback (most recent call last):
    ...
    ValueError: '12;40' is not ROW,COL,+ or ROW,COL,- (e.g. 80,96,+)
    """

    row: int
    col: int
    positive: bool

    @classmethod
    def parse(cls, text: str) -> "Click":
        match = _CLICK.fullmatch(str(text))
        if not match:
            raise ValueError(f"{text!r} is not ROW,COL,+ or ROW,COL,- (e.g. 80,96,+)")
        return cls(int(match.group(1)), int(match.group(2)), match.group(3) == "+")

    def __str__(self) -> str:
        return f"{self.row},{self.col},{'+' if self.positive else '-'}"


@dataclass(frozen=True)
class RefineSettings:
    """Parameters of the walker (defaults chosen with ``benchmarks/bench_refine.py``).

    Attributes
    ----------
    depth_factor, base_radius : float
        A click frees a disk of radius ``depth_factor * depth + base_radius`` pixels, where
        ``depth`` is the click's distance to the nearest pixel of the other class.
    band : int
        Pixels this close to the structure's border (inside or out) are re-decided too
        once there is a click (0: only around the clicks).
    beta : float
        Edge contrast of the walker (as in :func:`skimage.segmentation.random_walker`).
    gain, lam : float
        Slope of the intensity likelihood and weight of the unary term.
    margin : int
        Pixels around the structure and the clicks in the crop.
    """

    depth_factor: float = 2.0
    base_radius: float = 1.5
    band: int = 1
    beta: float = 130.0
    gain: float = 2.0
    lam: float = 1.0
    margin: int = 6


DEFAULT_SETTINGS = RefineSettings()


def structure_mask(dseg: np.ndarray, lesion: np.ndarray | None, structure: str) -> np.ndarray:
    """The mask of a refinable structure on one slice (``cord``, ``gm`` or ``lesion``).

    >>> structure_mask(np.array([[1, 2, 3]]), None, "cord").tolist()
    [[False, True, True]]
    """
    check_structure(structure)
    if structure == "lesion":
        return np.zeros(np.shape(dseg), bool) if lesion is None else np.asarray(lesion) > 0
    return lab.structure_mask(np.asarray(dseg), structure)


def allowed_region(dseg: np.ndarray, structure: str) -> np.ndarray:
    """Where the structure may lie under the nesting rules.

    Gray matter inside the cord and not touching its border (white matter encloses it,
    as :func:`score_gui.labels.validate_labels` checks), lesions inside the cord, the
    cord anywhere (the canal grows with it).

    >>> d = np.array([[0, 2, 2, 2, 0]] * 3); d[1, 2] = 3
    >>> allowed_region(d, "gm").astype(int).tolist()
    [[0, 0, 0, 0, 0], [0, 0, 1, 0, 0], [0, 0, 0, 0, 0]]
    """
    check_structure(structure)
    if structure == "cord":
        return np.ones(np.shape(dseg), bool)
    cord = lab.structure_mask(np.asarray(dseg), "cord")
    if structure == "lesion":
        return cord
    return ndimage.binary_erosion(cord, _FOUR, border_value=0)


def check_clicks(clicks: Sequence[Click], shape: tuple[int, int], dseg: np.ndarray | None = None,
                 structure: str | None = None) -> None:
    """Refuse clicks outside the slice, and ``+`` clicks where the structure may not lie.

    Raises
    ------
    ScoreInputError
        Naming the click and the problem (the command line exits with code 2).

    Examples
    --------
    >>> check_clicks([Click(5, 70, True)], (64, 64))
    Traceback (most recent call last):
    ...
    score_gui.errors.ScoreInputError: click 5,70,+: outside the slice (64 x 64 pixels: rows and columns from 0)
    """
    if not clicks:
        raise ScoreInputError(None, "give at least one click (ROW,COL,+ or ROW,COL,-)")
    rows, cols = shape
    for click in clicks:
        if not (0 <= click.row < rows and 0 <= click.col < cols):
            raise ScoreInputError(None, f"click {click}: outside the slice ({rows} x {cols} pixels: "
                                        "rows and columns from 0)")
    if dseg is None or structure is None:
        return
    allowed = allowed_region(dseg, structure)
    for click in clicks:
        if click.positive and not allowed[click.row, click.col]:
            where = ("inside the cord, off its border" if structure == "gm" else "inside the cord")
            raise ScoreInputError(None, f"click {click}: {structure} must lie {where}, and this pixel "
                                        "is not; refine the cord first")


def features(images: np.ndarray) -> np.ndarray:
    """The images a click is judged on: averages 1-5 and 6-8 of an AMIRA slice, else the mean.

    >>> features(np.ones((8, 4, 4))).shape, features(np.ones((1, 4, 4))).shape
    ((2, 4, 4), (1, 4, 4))
    """
    images = np.asarray(images, np.float64)
    if images.ndim == 2:
        images = images[None]
    if images.shape[0] == 8:
        return np.stack([images[:5].mean(0), images[5:].mean(0)])
    return images.mean(0, keepdims=True)


def refine_mask(feats: np.ndarray, mask: np.ndarray, clicks: Sequence[Click], allowed: np.ndarray | None = None,
                prior: np.ndarray | None = None, pixel_spacing=(1.0, 1.0),
                settings: RefineSettings = DEFAULT_SETTINGS) -> np.ndarray:
    """Re-decide a binary mask around clicks (the method of the module docstring).

    Parameters
    ----------
    feats : ndarray [C, H, W]
        Features (:func:`features`).
    mask : bool ndarray [H, W]
        The structure before the clicks.
    clicks : sequence of Click
        In order; a later click on the same pixel wins.
    allowed : bool ndarray [H, W], optional
        Where the structure may lie (default: anywhere).
    prior : float ndarray [H, W], optional
        A model's probability of the structure (e.g. the fraction of ensemble members
        that label it), averaged with the image likelihood.
    pixel_spacing : (float, float)
        Row and column pixel size (mm): depths and disks are measured in the smaller one.
    settings : RefineSettings

    Returns
    -------
    bool ndarray [H, W]

    Examples
    --------
    >>> mask = np.zeros((20, 20), bool); mask[5:15, 5:15] = True
    >>> feats = mask[None].astype(float); feats[0, 5:15, 15:18] = 1.0   # the image shows 3 more columns
    >>> out = refine_mask(feats, mask, [Click(10, 16, True)])
    >>> int(out.sum()) - int(mask.sum())
    30
    """
    mask = np.asarray(mask, bool)
    allowed = np.ones(mask.shape, bool) if allowed is None else np.asarray(allowed, bool)
    if not clicks:
        return mask & allowed
    spacing = np.asarray(pixel_spacing, float)
    sampling = spacing / spacing.min()
    points = np.array([(c.row, c.col) for c in clicks])
    # Depth of each click in its error, and so the disk it frees.
    dist_in = ndimage.distance_transform_edt(mask, sampling=sampling) if mask.any() else None
    dist_out = ndimage.distance_transform_edt(~mask, sampling=sampling) if mask.any() else None
    radii = []
    for click in clicks:
        if dist_in is None:
            depth = 0.0
        else:
            depth = float((dist_out if click.positive else dist_in)[click.row, click.col])
        radii.append(settings.depth_factor * depth + settings.base_radius)
    margin = int(np.ceil(max(settings.margin, max(radii) + 2, settings.band + 3)))
    rows, cols = np.nonzero(mask)
    lo = points.min(0) if not rows.size else np.minimum(points.min(0), (rows.min(), cols.min()))
    hi = points.max(0) if not rows.size else np.maximum(points.max(0), (rows.max(), cols.max()))
    r0, c0 = (max(0, int(v) - margin) for v in lo)
    r1, c1 = (min(n, int(v) + margin + 1) for v, n in zip(hi, mask.shape))
    box = (slice(r0, r1), slice(c0, c1))
    crop, ok = mask[box], allowed[box]
    f = np.asarray(feats, float)[(slice(None), *box)]
    f = (f - f.mean(axis=(1, 2), keepdims=True)) / (f.std(axis=(1, 2), keepdims=True) + 1e-6)

    free = np.zeros(crop.shape, bool)
    if settings.band > 0 and dist_in is not None:
        border = np.where(mask, dist_in, dist_out)[box]
        free |= border <= settings.band
    rr, cc = np.mgrid[:crop.shape[0], :crop.shape[1]]
    rr_mm, cc_mm = rr * sampling[0], cc * sampling[1]
    for click, radius in zip(clicks, radii):
        free |= ((rr_mm - (click.row - r0) * sampling[0]) ** 2
                 + (cc_mm - (click.col - c0) * sampling[1]) ** 2) <= radius ** 2
    seeds = np.where(crop, 1, 2).astype(np.int8)
    seeds[free] = 0
    seeds[~ok] = 2
    for click in clicks:
        r, c = click.row - r0, click.col - c0
        seeds[r, c] = 1 if (click.positive and ok[r, c]) else 2

    unary = _likelihood(f, crop, ok, clicks, (r0, c0), settings.gain)
    if prior is not None:
        unary = 0.5 * (unary + np.clip(np.asarray(prior, float)[box], 0.0, 1.0))
    x = _walk(f, seeds, unary, settings.beta, settings.lam, sampling)
    out = mask.copy()
    out[box] = (x > 0.5) & ok
    for click in clicks:  # every clicked pixel obeys its click, later ones win
        out[click.row, click.col] = click.positive and allowed[click.row, click.col]
    return out


def _likelihood(f: np.ndarray, crop: np.ndarray, ok: np.ndarray, clicks, origin, gain: float) -> np.ndarray:
    """``sigmoid(gain * z)`` of a linear discriminant between the structure and its surroundings."""
    X = f.reshape(f.shape[0], -1).T
    inner = ndimage.binary_erosion(crop, _FOUR, border_value=0)
    if inner.sum() < 3:
        inner = crop.copy()
    if inner.sum() < 2:  # no structure yet: what the + clicks mark
        for click in clicks:
            if click.positive:
                inner[click.row - origin[0], click.col - origin[1]] = True
    inner &= ok
    ring = ndimage.binary_dilation(crop, iterations=2) & ~ndimage.binary_dilation(crop) & ok
    if ring.sum() < 3:
        ring = ~ndimage.binary_dilation(crop) & ok
    if inner.sum() < 2 or ring.sum() < 2:
        return np.full(crop.shape, 0.5)
    xi, xo = X[inner.ravel()], X[ring.ravel()]
    mi, mo = xi.mean(0), xo.mean(0)
    pooled = np.concatenate([xi - mi, xo - mo])
    cov = np.atleast_2d(np.cov(pooled.T)) + 1e-3 * np.eye(X.shape[1])
    w = np.linalg.solve(cov, mi - mo)
    half = float((mi - mo) @ w) / 2
    if not np.isfinite(half) or half <= 1e-9:
        return np.full(crop.shape, 0.5)
    z = (X @ w - float((mi + mo) @ w) / 2) / half
    return (1.0 / (1.0 + np.exp(-gain * np.clip(z, -20, 20)))).reshape(crop.shape)


def _walk(f: np.ndarray, seeds: np.ndarray, unary: np.ndarray, beta: float, lam: float,
          sampling) -> np.ndarray:
    """Random walker with priors: probability of the structure per pixel of the crop."""
    h, w = seeds.shape
    n = h * w
    x = (seeds == 1).astype(float).ravel()
    free = np.flatnonzero(seeds.ravel() == 0)
    if not free.size:
        return x.reshape(h, w)
    index = np.arange(n).reshape(h, w)
    scale = beta / (10 * max(float(f.std()), 1e-6)) / np.sqrt(f.shape[0])
    heads, tails, weights = [], [], []
    for a, b, diff, step in ((index[:, :-1], index[:, 1:], f[:, :, :-1] - f[:, :, 1:], sampling[1]),
                             (index[:-1], index[1:], f[:, :-1] - f[:, 1:], sampling[0])):
        heads.append(a.ravel())
        tails.append(b.ravel())
        weights.append(np.exp(-scale * ((diff / step) ** 2).sum(0)).ravel() + 1e-6)
    heads, tails, weights = np.concatenate(heads), np.concatenate(tails), np.concatenate(weights)
    adjacency = sparse.coo_matrix((np.r_[weights, weights], (np.r_[heads, tails], np.r_[tails, heads])),
                                  shape=(n, n)).tocsr()
    laplacian = sparse.diags(np.asarray(adjacency.sum(1)).ravel()) - adjacency
    fixed = np.flatnonzero(seeds.ravel() != 0)
    system = laplacian[free][:, free] + lam * sparse.identity(free.size)
    rhs = lam * unary.ravel()[free] - laplacian[free][:, fixed] @ x[fixed]
    x[free] = spsolve(system.tocsc(), rhs)
    return x.reshape(h, w)


def apply_structure(dseg: np.ndarray, lesion: np.ndarray | None, structure: str,
                    new_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Put a refined structure into a slice's labels, keeping the nesting rules.

    - ``gm``: pixels that left the gray matter become white matter; new ones take the
      value of the nearest gray-matter pixel (so horns and commissure keep their
      subdivision), or 3 when there was none; only inside the cord, off its border.
    - ``cord``: pixels that left the cord become CSF (the canal stays), new ones white
      matter (the canal grows with the cord); gray matter that now touches the cord's
      border becomes white matter, lesions outside the cord go.
    - ``lesion``: the lesion map, inside the cord; the dseg is unchanged.

    Examples
    --------
    >>> d = np.array([[1, 2, 2, 2, 1]]); new = np.array([[1, 1, 1, 1, 0]], bool)
    >>> apply_structure(d, None, "cord", new)[0].tolist()
    [[2, 2, 2, 2, 1]]
    """
    check_structure(structure)
    dseg = np.asarray(dseg, np.uint8).copy()
    lesion = None if lesion is None else (np.asarray(lesion) > 0).astype(np.uint8)
    new_mask = np.asarray(new_mask, bool)
    if structure == "lesion":
        cord = lab.structure_mask(dseg, "cord")
        return dseg, (new_mask & cord).astype(np.uint8)
    if structure == "gm":
        new_mask = new_mask & allowed_region(dseg, "gm")
        old = lab.structure_mask(dseg, "gm")
        dseg[old & ~new_mask] = lab.WM
        added = new_mask & ~old
        if added.any():
            if old.any():
                nearest = ndimage.distance_transform_edt(~old, return_distances=False, return_indices=True)
                dseg[added] = dseg[nearest[0][added], nearest[1][added]]
            else:
                dseg[added] = lab.GM
        return dseg, lesion
    old = lab.structure_mask(dseg, "cord")
    dseg[old & ~new_mask] = lab.CSF
    dseg[new_mask & ~old] = lab.WM
    gm = lab.structure_mask(dseg, "gm")
    dseg[gm & ~allowed_region(dseg, "gm")] = lab.WM
    if lesion is not None:
        lesion = (lesion.astype(bool) & new_mask).astype(np.uint8)
    return dseg, lesion


def refine_slice(images: np.ndarray, dseg: np.ndarray, lesion: np.ndarray | None, structure: str,
                 clicks: Sequence[Click], pixel_spacing=(1.0, 1.0), prior: np.ndarray | None = None,
                 settings: RefineSettings = DEFAULT_SETTINGS) -> tuple[np.ndarray, np.ndarray | None]:
    """One slice's labels with ``structure`` refined by ``clicks`` (given in order).

    Parameters
    ----------
    images : ndarray [T, H, W]
        The slice's images, display grid.
    dseg : uint8 ndarray [H, W]
        Its labels (contract section 2 values).
    lesion : ndarray [H, W] or None
        Its lesion map; a lesion refinement starts from none when None.
    structure : {"cord", "gm", "lesion"}
    clicks : sequence of Click
    pixel_spacing : (float, float)
        Row and column pixel size in mm.
    prior : float ndarray [H, W], optional
        A model's probability of the structure (see :func:`refine_mask`).
    settings : RefineSettings

    Returns
    -------
    dseg : uint8 ndarray [H, W]
    lesion : uint8 ndarray [H, W] or None
        None only when no lesion map was given and the lesion was not refined.

    Raises
    ------
    ScoreInputError
        A click outside the slice, or a ``+`` click where the structure may not lie.

    Examples
    --------
    >>> d = np.zeros((30, 30), np.uint8); d[5:25, 5:25] = 2; d[10:20, 10:20] = 5
    >>> img = np.where(d == 5, 0.0, np.where(d == 2, 1.0, 0.3))[None]
    >>> wrong = d.copy(); wrong[10:20, 16:20] = 2
    >>> out, _ = refine_slice(img, wrong, None, "gm", [Click(15, 18, True)])
    >>> int((out == 5).sum()), sorted(np.unique(out).tolist())
    (100, [0, 2, 5])
    """
    check_structure(structure)
    dseg = np.asarray(dseg, np.uint8)
    check_clicks(clicks, dseg.shape, dseg, structure)
    feats = features(images)
    if feats.shape[1:] != dseg.shape:
        raise ValueError(f"images {feats.shape[1:]} and labels {dseg.shape} differ in shape")
    mask = structure_mask(dseg, lesion, structure)
    new_mask = refine_mask(feats, mask, clicks, allowed_region(dseg, structure), prior,
                           pixel_spacing, settings)
    if structure == "lesion" and lesion is None:
        lesion = np.zeros(dseg.shape, np.uint8)
    return apply_structure(dseg, lesion, structure, new_mask)


def check_structure(structure: str) -> None:
    """Refuse a structure that clicks cannot refine (one line for the command line)."""
    if structure not in STRUCTURES:
        raise ScoreInputError(None, f"structure {structure!r} cannot be refined; one of {', '.join(STRUCTURES)}")
