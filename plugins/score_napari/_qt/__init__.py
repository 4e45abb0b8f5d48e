"""Qt side of the SCORE napari plugin (widgets and the multi-pane viewer controller)."""

from __future__ import annotations

import ctypes
import sys

_GUARDED = False


def guard_singleton_refcounts() -> bool:
    """Keep CPython 3.11 alive under a reference-count bug of napari 0.9.2's Qt widgets on
    PySide6 6.12.

    Measured here: with a Qt viewer shown, every slice change drops about 10 references
    to ``None`` that were never taken (3 per ``Labels.selected_label`` change, ~50 per
    contour toggle), also without SCORE code; without Qt (``ViewerModel``) nothing
    leaks. When the count reaches 0 the interpreter aborts (``Fatal Python error:
    none_dealloc`` / ``bool_dealloc``) after some 10,000 slice changes. CPython 3.12 and
    later make these singletons immortal; on 3.11 this adds a large reserve of
    references once per process. Returns True when the reserve was added.

    Applied explicitly where a Qt viewer is made: by
    :class:`~score_napari._qt.viewer_controller.ScoreViewer` (so the plugin's widgets in
    plain napari are covered) and by the application's ``create_window``; never on import
    (the npe2 reader and writer import this package without any Qt viewer).
    """
    global _GUARDED
    if _GUARDED or sys.version_info >= (3, 12) or sys.implementation.name != "cpython":
        return False
    for singleton in (None, True, False, Ellipsis, NotImplemented):
        # ob_refcnt is the first field of every object in a release build of CPython.
        ctypes.c_ssize_t.from_address(id(singleton)).value += 1 << 40
    _GUARDED = True
    return True

