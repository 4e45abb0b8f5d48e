"""SCORE Studio desktop application (``score-gui``): a napari-based shell over the core.

Run ``score-gui --demo`` to open the demo study; see :mod:`score_studio.main`.
"""

from __future__ import annotations

__all__ = ["__version__"]
__version__ = "0.1.0"
