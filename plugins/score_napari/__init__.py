"""SCORE napari plugin: multi-pane AMIRA viewer, annotation tools, live areas, reader/writer.

Entry point ``score-napari = "score_napari:napari.yaml"`` (npe2 manifest beside this file).
The Qt code lives in :mod:`score_napari._qt`; :mod:`score_gui` stays Qt-free.
"""

__version__ = "0.1.0"
