"""Helpers of the tests that build real napari viewers."""

from __future__ import annotations

import gc
import time


def settle(app, viewer, rounds: int = 40) -> None:
    """Process events until the canvas size is stable."""
    last = None
    for _ in range(rounds):
        app.processEvents()
        time.sleep(0.01)
        size = tuple(viewer.canvas.size)
        if size == last:
            break
        last = size


def close_viewer(viewer, app) -> None:
    """Close and free the viewer while Qt is alive (as napari's own fixture does): Qt
    objects left to the collector at interpreter exit crashed PySide6 (none_dealloc)."""
    viewer.close()
    del viewer
    for _ in range(3):
        gc.collect()
        app.processEvents()
