"""Whole scans of the evaluation-only generator, and rescans of one subject.

Examples
--------
>>> scan, truth, info = make_variant_scan("ms", seed=3, n_slices=4, shape=(96, 96))
>>> scan.images.shape, truth.dseg.shape, truth.who, scan.levels
((4, 8, 96, 96), (4, 96, 96), 'truth', ['C2', 'C3', 'C4', 'C5'])
>>> bool(truth.lesion.any()), info["generator"]
(True, 'variant')
"""

from __future__ import annotations

import zlib

import numpy as np

from score_gui.labels import LabelMap
from score_gui.phantom_variant.anatomy import SLAB_MM, VariantSubject, variant_subject
from score_gui.phantom_variant.render import render_slice
from score_gui.scan import Scan


def _pixel_pair(pixel_size) -> tuple[float, float]:
    if np.ndim(pixel_size) == 0:
        return (float(pixel_size), float(pixel_size))
    return (float(pixel_size[0]), float(pixel_size[1]))


def subject_rng(seed: int, kind: str) -> np.random.Generator:
    """The generator :func:`make_variant_scan` draws a subject from (its own stream, not the
    project phantom's)."""
    return np.random.default_rng([int(seed), zlib.crc32(f"variant-{kind}".encode()), 31])


def variant_scan_of_subject(subject: VariantSubject, rng: np.random.Generator, *, shape=(192, 192),
                            pixel_size=0.67, contrast: str = "amira", reposition=(0.0, 0.0, 0.0),
                            subject_id: str | None = None, session: str | None = None):
    """Scan ``subject`` once: all its slices, with noise from ``rng``.

    Returns
    -------
    (Scan, LabelMap, dict)
        As :func:`make_variant_scan`.
    """
    pixel = _pixel_pair(pixel_size)
    slices = [render_slice(subject, rng, i, shape=shape, pixel_size=pixel, contrast=contrast,
                           reposition=reposition) for i in range(subject.n_slices)]
    scan = Scan.from_arrays(np.stack([s.images for s in slices]), pixel_spacing=pixel,
                            slice_thickness=SLAB_MM, levels=[s.info["level"] for s in slices],
                            subject=subject_id, session=session)
    truth = LabelMap(dseg=np.stack([s.dseg for s in slices]), lesion=np.stack([s.lesion for s in slices]),
                     who="truth")
    tissues = subject.tissues
    info = {"generator": "variant", "kind": subject.kind, "degraded": [None] * subject.n_slices,
            "slices": [s.info for s in slices], "body_type": subject.body_type,
            "cord_placement": subject.neck["placement"], "n_coils": subject.noise["n_coils"],
            "snr_gm": round(subject.noise["snr_gm"], 2), "n_plaques": len(subject.plaques),
            "flip_angle_deg": round(tissues.flip_deg, 2), "cycle_ms": round(tissues.cycle_ms, 1),
            "inversion_times_ms": [round(t, 1) for t in tissues.inversion_times],
            "reposition": tuple(float(v) for v in reposition)}
    return scan, truth, info


def make_variant_scan(kind: str = "hc", seed: int = 0, n_slices: int = 12, shape=(192, 192),
                      pixel_size=0.67, contrast: str = "amira", subject: VariantSubject | None = None,
                      reposition=(0.0, 0.0, 0.0)):
    """A synthetic AMIRA (or T2*w) scan from the evaluation-only generator.

    Same call and result as :func:`score_gui.phantom.make_scan`, from a deliberately
    different simulator. Use it for evaluation only, never for training.

    Parameters
    ----------
    kind : {"hc", "ms"}
        Healthy control or MS patient (with plaques and a lesion map).
    seed : int
        Determines the subject (when ``subject`` is None) and the noise.
    n_slices : int
        Slices 8 mm apart, levels C2-C5 spread over them (ignored when ``subject`` is
        given: the subject's own count is used).
    shape : (int, int)
    pixel_size : float or (float, float)
        mm.
    contrast : {"amira", "t2star"}
        8 inversion images or one T2*-weighted image (GM brighter than WM, CSF bright).
    subject : VariantSubject, optional
        From :func:`variant_subject`: rescan that subject (``seed`` then only sets the
        noise).
    reposition : (dx_mm, dy_mm, rot_deg)
        Rigid move of the anatomy for a repositioned rescan.

    Returns
    -------
    scan : Scan
        Images ``[S, T, H, W]``, ``subject = "<kind><seed:02d>"``.
    truth : LabelMap
        True dseg (values 1, 2, 4, 5, 6) and lesion map, ``who = "truth"``.
    info : dict
        ``generator = "variant"``, ``degraded`` (all None), per-slice details, subject and
        sequence parameters.
    """
    if subject is None:
        subject = variant_subject(subject_rng(seed, kind), kind, n_slices=n_slices)
    noise_rng = np.random.default_rng([int(seed), zlib.crc32(f"variant-noise-{subject.kind}".encode())])
    return variant_scan_of_subject(subject, noise_rng, shape=shape, pixel_size=pixel_size, contrast=contrast,
                                   reposition=reposition, subject_id=f"{subject.kind}{int(seed):02d}")
