"""SCORE Studio headless core.

Scan and label I/O, label rules, synthetic AMIRA data, areas, metrics, QC log,
the MDGRU model with its training and inference, and the ``score`` command line.

This package never imports Qt, napari or magicgui (``tests/score_gui/test_headless.py``
enforces it), so it runs on clusters and in scripts.
"""

__version__ = "0.1.0"

from score_gui.errors import ScoreInputError  # noqa: E402

__all__ = ["ScoreInputError", "__version__"]
