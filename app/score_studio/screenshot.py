"""Rendering the window to a PNG (``score-gui --screenshot``, tests, the demo)."""

from __future__ import annotations

import time
from pathlib import Path

from qtpy.QtWidgets import QApplication

from score_gui.errors import ScoreInputError


def settle(window, timeout: float = 5.0) -> None:
    """Process events until the canvas size of ``window`` (a MainWindow) stops changing."""
    app = QApplication.instance()
    deadline = time.monotonic() + timeout
    previous, stable = None, 0
    while time.monotonic() < deadline and stable < 5:
        app.processEvents()
        size = tuple(window.qt_viewer.canvas.size)
        stable = stable + 1 if size == previous else 0
        previous = size
        time.sleep(0.03)


def render_screenshot(window, path: str | Path, size: tuple[int, int] = (1760, 1040)) -> Path:
    """Show ``window`` at ``size``, let it settle, and save it as a PNG at ``path``.

    Raises
    ------
    ScoreInputError
        The PNG cannot be written.
    """
    window.resize(*size)
    window.show()
    settle(window)
    window.export_widget.wait()       # the export panel's tables, computed in a worker
    if window.scan is not None:
        window.zoom_to_cord()
    else:
        window.viewer.reset_view()
    settle(window, 2.0)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = window.grab().toImage()
    if not image.save(str(path), "PNG"):
        raise ScoreInputError(path, "could not write the PNG")
    return path
