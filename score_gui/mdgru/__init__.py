"""MDGRU segmentation model: network, output heads, checkpoints and preprocessing.

* :mod:`~score_gui.mdgru.model`: :class:`CGRU`, :class:`MDGRULayer`, :class:`MDGRUNet`,
  :data:`DEFAULT_ARCHITECTURE`.
* :mod:`~score_gui.mdgru.heads`: heads, partial-label targets and loss, labels from probabilities.
* :mod:`~score_gui.mdgru.checkpoint`: ``save_model`` / ``load_model`` with metadata.
* :mod:`~score_gui.mdgru.preprocess`: resampling, normalisation, crops, canal localisation.
"""

from score_gui.mdgru.model import (DEFAULT_ARCHITECTURE, LOCALISER_ARCHITECTURE, CGRU, MDGRULayer,
                                   MDGRUNet)

__all__ = ["CGRU", "DEFAULT_ARCHITECTURE", "LOCALISER_ARCHITECTURE", "MDGRULayer", "MDGRUNet"]
