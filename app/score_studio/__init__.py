"""SCORE Studio desktop application (``score-gui``): a napari-based shell over the core.

Run ``score-gui --demo`` to open the demo study; see :mod:`score_studio.main`.
"""

from __future__ import annotations

from score_napari._qt import guard_singleton_refcounts

__all__ = ["__version__"]
__version__ = "0.1.0"

# PySide6 6.12 on CPython 3.11 drops references to None/True/False on void Qt calls; the
# guard (in the plugin, which shares the problem) adds a reserve once per process.
guard_singleton_refcounts()
