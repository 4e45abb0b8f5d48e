"""Simulated human raters: realistic, rater-specific disagreement with the true labels.

Each rater has a systematic tendency (derived from the rater ID, so rater ``"A"`` behaves the
same on every scan) to draw the canal, cord, gray matter and lesions slightly larger or
smaller, and to place the commissure and horn borders differently. On top come random,
smooth boundary jitter per slice and, now and then, a missed small lesion. Inter-rater Dice
lands near GM 0.85-0.9, WM 0.92-0.95 and cord 0.97 (see ``tests/score_gui/test_phantom.py``).

Examples
--------
>>> import numpy as np
>>> from score_gui.phantom import make_slice
>>> s = make_slice(np.random.default_rng(0), degrade="none")
>>> dseg, lesion = simulate_rater(s.dseg, s.lesion, "A", np.random.default_rng(1))
>>> dseg.shape == s.dseg.shape and bool((dseg != s.dseg).any())
True
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from score_gui.labels import (ANTERIOR_HORNS, CSF, GM, GRAY_COMMISSURE, OUTSIDE, POSTERIOR_HORNS,
                              WM, structure_mask)

SMALL_LESION_PX = 14
"""Lesions smaller than this (pixels) are the ones a rater may miss."""


@dataclass(frozen=True)
class RaterProfile:
    """Systematic habits of one rater (pixels; positive = draws larger)."""

    canal_bias: float
    cord_bias: float
    gm_bias: float
    lesion_bias: float
    commissure_bias: float
    anterior_bias: float
    jitter: float
    miss_small_lesion: float

    @classmethod
    def for_rater(cls, rater_id: str) -> "RaterProfile":
        """The same profile for the same rater ID on every call.

        Examples
        --------
        >>> RaterProfile.for_rater("A") == RaterProfile.for_rater("A")
        True
        """
        rng = np.random.default_rng(zlib.crc32(str(rater_id).encode("utf-8")))
        return cls(
            canal_bias=float(rng.uniform(-0.15, 0.15)),
            cord_bias=float(rng.uniform(-0.12, 0.12)),
            gm_bias=float(rng.uniform(-0.15, 0.15)),
            lesion_bias=float(rng.uniform(-0.3, 0.3)),
            commissure_bias=float(rng.uniform(-0.4, 0.4)),
            anterior_bias=float(rng.uniform(-0.4, 0.4)),
            jitter=float(rng.uniform(0.24, 0.3)),
            miss_small_lesion=float(rng.uniform(0.1, 0.35)),
        )


def _smooth_noise(rng: np.random.Generator, shape, sigma: float = 2.0) -> np.ndarray:
    noise = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    return noise / (noise.std() + 1e-9)


def _half_distance(mask: np.ndarray) -> np.ndarray:
    """Signed distance (pixels) to the mask border: -0.5 on inner edge pixels, +0.5 outside them."""
    inside = ndimage.distance_transform_edt(mask)
    outside = ndimage.distance_transform_edt(~mask)
    return np.where(mask, 0.5 - inside, outside - 0.5)


def _redraw(mask: np.ndarray, bias: float, jitter: float, rng: np.random.Generator) -> np.ndarray:
    """The mask as a rater draws it: border moved by ``bias`` plus smooth random jitter."""
    if not mask.any():
        return mask
    return _half_distance(mask) < bias + jitter * _smooth_noise(rng, mask.shape)


def _subdivide(gm: np.ndarray, truth: np.ndarray, profile: RaterProfile,
               rng: np.random.Generator) -> np.ndarray:
    """Horn and commissure labels inside the rater's GM: nearest true part, with biased borders."""
    parts = (ANTERIOR_HORNS, POSTERIOR_HORNS, GRAY_COMMISSURE)
    distances = []
    for value in parts:
        region = truth == value
        distances.append(ndimage.distance_transform_edt(~region) if region.any()
                         else np.full(gm.shape, np.inf))
    distances = np.stack(distances)
    noise = _smooth_noise(rng, gm.shape, 1.5)
    distances[0] -= profile.anterior_bias + 0.6 * noise
    distances[2] -= profile.commissure_bias - 0.6 * noise
    chosen = np.array(parts, np.uint8)[np.argmin(distances, axis=0)]
    if not np.isfinite(distances).any(axis=0).all():
        chosen[~np.isfinite(distances).any(axis=0)] = GM
    return np.where(gm, chosen, 0).astype(np.uint8)


def _rater_lesions(lesion: np.ndarray, cord: np.ndarray, profile: RaterProfile,
                   rng: np.random.Generator) -> np.ndarray:
    labels, n = ndimage.label(lesion > 0)
    out = np.zeros(lesion.shape, bool)
    for index in range(1, n + 1):
        component = labels == index
        if component.sum() < SMALL_LESION_PX and rng.random() < profile.miss_small_lesion:
            continue
        out |= _redraw(component, profile.lesion_bias + rng.normal(0, 0.3), 0.45, rng)
    return out & cord


def _rate_slice(dseg: np.ndarray, lesion: np.ndarray, profile: RaterProfile,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    canal = structure_mask(dseg, "canal")
    if not canal.any():
        return dseg.copy(), lesion.copy()
    rows, cols = np.nonzero(canal)
    pad = 6
    window = (slice(max(0, rows.min() - pad), rows.max() + pad + 1),
              slice(max(0, cols.min() - pad), cols.max() + pad + 1))
    d, les = dseg[window], lesion[window]
    jitter = profile.jitter
    cord = _redraw(structure_mask(d, "cord"), profile.cord_bias, jitter * 1.1, rng)
    canal = _redraw(structure_mask(d, "canal"), profile.canal_bias, jitter, rng) | cord
    cord_eroded = ndimage.binary_erosion(cord)  # GM never touches CSF
    gm = _redraw(structure_mask(d, "gm"), profile.gm_bias, jitter * 1.12, rng) & cord_eroded
    out = np.full(d.shape, OUTSIDE, np.uint8)
    out[canal] = CSF
    out[cord] = WM
    out[gm] = _subdivide(gm, d, profile, rng)[gm]
    new_dseg, new_lesion = dseg.copy(), np.zeros_like(lesion)
    new_dseg[window] = out
    new_lesion[window] = _rater_lesions(les, cord, profile, rng).astype(lesion.dtype)
    return new_dseg, new_lesion


def simulate_rater(dseg: np.ndarray, lesion: np.ndarray | None, rater_id: str,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Labels as rater ``rater_id`` would draw them on the same images.

    Parameters
    ----------
    dseg : ndarray uint8, (H, W) or (S, H, W)
        True labels (contract section 2).
    lesion : ndarray uint8 or None
        True lesion map of the same shape (None = no lesions).
    rater_id : str
        Rater identity; fixes the rater's systematic habits.
    rng : numpy.random.Generator
        Random part (jitter, missed lesions).

    Returns
    -------
    dseg, lesion : ndarray uint8
        The rater's labels, obeying the nesting rules.
    """
    dseg = np.asarray(dseg, np.uint8)
    lesion = np.zeros_like(dseg) if lesion is None else np.asarray(lesion, np.uint8)
    profile = RaterProfile.for_rater(rater_id)
    if dseg.ndim == 2:
        return _rate_slice(dseg, lesion, profile, rng)
    pairs = [_rate_slice(d, les, profile, rng) for d, les in zip(dseg, lesion)]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
