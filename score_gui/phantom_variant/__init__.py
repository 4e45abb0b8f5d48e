"""A second synthetic AMIRA generator, for evaluation only (never for training).

It shares no code with :mod:`score_gui.phantom`: other signal equation (Look-Locker
inversion-recovery spoiled gradient echo), other anatomy (superellipse cord and canal,
spline butterfly with per-side horn control points), other texture, coils and noise
(Rician or non-central chi), 3 x 3 partial-volume sampling. Models trained on the project
phantom meet it as an independent test set.

Examples
--------
>>> import numpy as np
>>> subject = variant_subject(np.random.default_rng(5), "hc", n_slices=2)
>>> first, truth, _ = make_variant_scan(seed=1, subject=subject, shape=(80, 80))
>>> again, truth2, _ = make_variant_scan(seed=2, subject=subject, shape=(80, 80))
>>> bool((truth.dseg == truth2.dseg).all()), bool((first.images != again.images).any())
(True, True)
"""

from score_gui.phantom_variant.anatomy import LEVEL_NAMES, VariantSubject, variant_subject
from score_gui.phantom_variant.render import VariantSlice, render_slice
from score_gui.phantom_variant.scans import make_variant_scan, subject_rng, variant_scan_of_subject

__all__ = ["LEVEL_NAMES", "VariantSlice", "VariantSubject", "make_variant_scan", "render_slice",
           "subject_rng", "variant_scan_of_subject", "variant_subject"]
