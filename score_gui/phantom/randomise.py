"""Randomisation beyond the plausible, so that networks learn shapes rather than this phantom.

The idea of SynthSeg (Billot et al., Medical Image Analysis 2023): render the same label
maps with contrasts, anatomy and acquisition drawn far wider than any real scanner would
produce, so that nothing but the shapes and their arrangement stays predictive. Two parts:

* :func:`random_tissue_values` replaces the phantom's IR-bSSFP signal table by one of
  several contrast families (random inversion-recovery curves with random T1 and proton
  density, arbitrary intensities per tissue and image, or the physical curves inverted).
* :func:`widen_subject` redraws a subject's anatomy from wide ranges: small, large,
  flattened and compressed cords, narrow and wide canals, cords off-centre up to the
  canal wall, long, short, thin, thick and asymmetric horns, thick and thin commissures,
  small anterior horns (thoracic-like GM), and a wide SNR range.

Examples
--------
>>> import numpy as np
>>> from score_gui.phantom import make_slice, random_subject
>>> rng = np.random.default_rng(0)
>>> subject = widen_subject(rng, random_subject(rng, "hc"))
>>> values = random_tissue_values(rng, subject, n_images=8)
>>> values.shape
(12, 8)
>>> s = make_slice(rng, level="C4", shape=(96, 96), subject=subject, tissue_values=values)
>>> s.images.shape, bool((s.dseg == 4).any())
((8, 96, 96), True)
"""

from __future__ import annotations

import dataclasses

import numpy as np

from score_gui.phantom.anatomy import LEVELS, Subject
from score_gui.phantom.signal import TISSUE_INDEX, TISSUES, signal_curves
from score_gui.scan import AMIRA_INVERSION_TIMES

CONTRAST_FAMILIES = ("inversion_recovery", "arbitrary", "inverted")
"""The families :func:`random_tissue_values` draws from (with equal probability)."""

IMAGE_SCALE = 4000.0
"""Signal units of the phantom (GM at TI1 is about 900): the random tables use the same scale."""


def random_tissue_values(rng: np.random.Generator, subject: Subject, n_images: int = 8,
                         family: str | None = None) -> np.ndarray:
    """A random signed signal table ``(n_tissues, n_images)`` for :func:`make_slice`.

    Parameters
    ----------
    rng : numpy.random.Generator
    subject : Subject
        Used by the ``inverted`` family (its physical curves).
    n_images : int
        8 for AMIRA-like scans, 1 for a single contrast.
    family : str, optional
        One of :data:`CONTRAST_FAMILIES`; drawn at random when None.

    Notes
    -----
    Air stays dark (every scanner shows it dark, and the localiser may rely on the
    neck's outline). Every other tissue, CSF, WM, GM and lesions included, gets values
    that may make any pair of them equal, swapped or inverted, so a network can only
    tell them apart by shape and position: e.g. a cord whose border against CSF is faint
    while its GM is clearly visible.

    >>> import numpy as np
    >>> from score_gui.phantom import random_subject
    >>> rng = np.random.default_rng(1)
    >>> table = random_tissue_values(rng, random_subject(rng), 8, family="arbitrary")
    >>> bool(table[0].max() < 0.1 * table.max()), table.dtype
    (True, dtype('float32'))
    """
    family = family or str(rng.choice(CONTRAST_FAMILIES))
    if family == "inversion_recovery":
        table = _inversion_recovery_table(rng, n_images)
    elif family == "arbitrary":
        table = _arbitrary_table(rng, n_images)
    elif family == "inverted":
        table = _inverted_table(rng, subject, n_images)
    else:
        raise ValueError(f"family must be one of {CONTRAST_FAMILIES}, not {family!r}")
    table[TISSUE_INDEX["air"]] = rng.uniform(0.0, 0.03) * np.abs(table).max()
    return (table * np.float32(IMAGE_SCALE)).astype(np.float32)


def _inversion_recovery_table(rng: np.random.Generator, n_images: int) -> np.ndarray:
    """Signed inversion-recovery curves with T1 and proton density drawn per tissue.

    ``s(TI) = PD (1 - (1 + e) exp(-TI / T1))`` at inversion times stretched by a random
    factor: another sequence and field strength than the phantom's bSSFP readout.
    """
    times = np.asarray(AMIRA_INVERSION_TIMES[:n_images] if n_images > 1 else [rng.uniform(50, 3000)])
    times = times * rng.uniform(0.4, 2.5)
    t1 = np.exp(rng.uniform(np.log(150.0), np.log(5000.0), size=len(TISSUES)))
    pd = rng.uniform(0.1, 1.0, size=len(TISSUES))
    efficiency = rng.uniform(0.6, 1.0)
    curves = pd[:, None] * (1.0 - (1.0 + efficiency) * np.exp(-times[None, :] / t1[:, None]))
    return (0.25 * curves).astype(np.float32)


def _arbitrary_table(rng: np.random.Generator, n_images: int) -> np.ndarray:
    """Positive intensities per tissue, a smooth random walk across the images."""
    start = rng.uniform(0.02, 0.3, size=(len(TISSUES), 1))
    steps = rng.normal(0.0, rng.uniform(0.0, 0.08), size=(len(TISSUES), n_images))
    steps[:, 0] = 0.0
    return np.clip(start + np.cumsum(steps, axis=1), 0.005, None).astype(np.float32)


def _inverted_table(rng: np.random.Generator, subject: Subject, n_images: int) -> np.ndarray:
    """The physical magnitude curves turned upside down (bright becomes dark), with jitter."""
    curves = np.abs(signal_curves(subject.signal))[:, :n_images] if n_images > 1 else \
        np.abs(signal_curves(subject.signal))[:, [int(rng.integers(8))]]
    inverted = curves.max(axis=0, keepdims=True) * 1.05 - curves
    jitter = rng.uniform(0.7, 1.3, size=(len(TISSUES), 1))
    return (inverted * jitter).astype(np.float32)


def widen_subject(rng: np.random.Generator, subject: Subject) -> Subject:
    """``subject`` with its anatomy redrawn from ranges far wider than the paper's.

    The plaques, neck and acquisition settings are kept; the cord, canal and gray matter
    of every level, the cord's position and rotation in the canal, and the SNR change.

    >>> import numpy as np
    >>> from score_gui.phantom import random_subject
    >>> rng = np.random.default_rng(2)
    >>> wide = [widen_subject(rng, random_subject(rng)).levels["C3"].cord_ap for _ in range(40)]
    >>> bool(min(wide) < 6.0 and max(wide) > 9.0)
    True
    """
    size = float(np.exp(rng.uniform(np.log(0.75), np.log(1.3))))
    flattening = float(rng.uniform(0.55, 1.1))
    canal = float(np.exp(rng.uniform(np.log(0.85), np.log(1.35))))
    levels = {level: _wide_geometry(rng, geometry, size, flattening, canal)
              for level, geometry in subject.levels.items() if level in LEVELS}
    # Cord off-centre in the canal (up to touching the wall), rotated against it.
    return dataclasses.replace(
        subject, levels=levels,
        cord_offset_mm=(float(rng.normal(0, 1.2)), float(rng.normal(0.2, 1.0))),
        cord_rotation_deg=float(rng.normal(0, 10)),
        rotation_deg=float(rng.normal(0, 12)),
        snr_gm=float(np.exp(rng.uniform(np.log(6.0), np.log(60.0)))),
        cord_shape=(float(rng.uniform(0, 0.08)), float(rng.uniform(0, 2 * np.pi)),
                    float(rng.uniform(0, 0.06)), float(rng.uniform(0, 2 * np.pi))))


def _wide_geometry(rng: np.random.Generator, geometry, size: float, flattening: float, canal: float):
    local = rng.normal(1.0, 0.03)
    cord_ap = geometry.cord_ap * size * flattening * local
    cord_rl = geometry.cord_rl * size * local
    return dataclasses.replace(
        geometry,
        cord_ap=cord_ap,
        cord_rl=cord_rl,
        # The canal always holds the cord, however large the cord was drawn.
        canal_ap=max(geometry.canal_ap * canal * rng.normal(1.0, 0.04), cord_ap + 0.6),
        canal_rl=max(geometry.canal_rl * canal * rng.normal(1.0, 0.04), cord_rl + 1.0),
        gm_fraction=geometry.gm_fraction * float(np.exp(rng.uniform(np.log(0.7), np.log(1.45)))),
        anterior_horn=float(rng.uniform(0.55, 1.5)),
        posterior_horn_angle=float(np.deg2rad(rng.uniform(12, 58))),
        posterior_horn_width=float(rng.uniform(0.3, 0.95)),
        posterior_horn_length=float(rng.uniform(0.65, 1.15)),
        horn_asymmetry=float(rng.normal(0, 0.08)),
        commissure_scale=float(np.exp(rng.uniform(np.log(0.5), np.log(2.0)))),
    )
