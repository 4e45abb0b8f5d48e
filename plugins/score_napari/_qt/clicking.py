"""The click tool: a mouse click on any pane refines the selected structure around it.

With the tool ``click`` (key K) a click inside a structure the labels missed adds it
(``+``), a Shift+click or a right click where they overreach removes it (``-``); a short
drag is a scribble, its points clicks of one sign. The structure is the one chosen in the
palette: cord/WM refines the cord, gray matter and its parts refine the gray matter,
lesion the lesions (the canal has no click correction). The Qt-free
:class:`score_gui.click_correction.ClickCorrector` decides the labels; each click or
scribble is one undo step. The tool borrows napari's paint mode (so a drag does not pan;
holding Space pans, as in every napari mode) and paints nothing itself.
"""

from __future__ import annotations

import time

import numpy as np

from score_gui.click_correction import ClickCorrector, structure_for_value
from score_gui.errors import ScoreInputError

NEGATIVE_MODIFIERS = {"Shift"}
"""Keys held for a ``-`` click (a right click is ``-`` too)."""

DRAG_TOLERANCE_PX = 0.75
"""A press that moves further than this (data pixels) before the release is a scribble."""


class ClickTool:
    """Mouse clicks of the viewer's panes -> :class:`ClickCorrector` of its editor.

    Parameters
    ----------
    owner : ScoreViewer
        Its ``viewer``, ``editor``, ``editing`` (tool, label value, master layer), ``scan``
        and the ``status_message`` signal the result is told on.

    Attributes
    ----------
    last_seconds : float or None
        How long the last click took to refine (shown in the status message).
    """

    def __init__(self, owner):
        self.owner = owner
        self.corrector: ClickCorrector | None = None
        self.last_seconds: float | None = None
        owner.viewer.mouse_drag_callbacks.append(self._on_mouse)

    def scan_loaded(self, scan) -> None:
        """A new scan: clicks refine its labels, judged on its images."""
        self.corrector = ClickCorrector(self.owner.editor, scan.images, scan.pixel_spacing)

    def set_priors(self, probabilities: dict | None) -> None:
        """The models' structure probabilities on the open scan (after they segmented it):
        clicks weigh them with the image (fewer clicks per correction)."""
        if self.corrector is not None:
            self.corrector.set_priors(probabilities)

    def click(self, slice_index: int, row: int, col: int, positive: bool) -> bool:
        """Refine the palette's structure of a slice at ``(row, col)``; False when refused.

        The outcome (or why nothing happened) goes to ``status_message``.
        """
        return self.scribble(slice_index, [(row, col)], positive)

    def scribble(self, slice_index: int, points, positive: bool) -> bool:
        """:meth:`click` with several ``(row, col)`` points of one sign (a drag)."""
        owner = self.owner
        structure = structure_for_value(owner.editing.label_value)
        if self.corrector is None:
            return False
        if structure is None:
            owner.status_message.emit("Click correction refines the cord, gray matter or lesions: "
                                      "choose one of them in the palette (2, 3 or 7)")
            return False
        started = time.perf_counter()
        try:
            key = self.corrector.scribble(slice_index, points, positive, structure)
        except ScoreInputError as exc:
            owner.status_message.emit(f"Click not applied: {exc.problem}")
            return False
        self.last_seconds = time.perf_counter() - started
        owner.editing.edited(key)
        clicks = len(self.corrector.clicks)
        sign = "+" if positive else "-"
        what = f"click {clicks}" if len(points) == 1 else f"scribble of {len(points)} points"
        owner.status_message.emit(f"{structure}: {what} ({sign}) refined in "
                                  f"{1000 * self.last_seconds:.0f} ms; Ctrl+Z undoes it")
        return key is not None

    def _on_mouse(self, viewer, event):
        """napari drag callback: a press released where it started is a click, else the
        points it went through are a scribble."""
        editing = self.owner.editing
        layer = editing.master
        if editing.tool != "click" or layer is None or self.owner.scan is None:
            return
        if layer.mode != "paint":
            return        # Space held: napari pans and zooms meanwhile
        positive = event.button != 2 and not any(key in event.modifiers for key in NEGATIVE_MODIFIERS)
        start = np.asarray(layer.world_to_data(event.position), float)
        path = [start]
        yield
        while event.type == "mouse_move":
            path.append(np.asarray(layer.world_to_data(event.position), float))
            yield
        path.append(np.asarray(layer.world_to_data(event.position), float))
        slice_index = int(round(start[-3]))
        moved = max(np.abs(p - start)[-2:].max() for p in path) > DRAG_TOLERANCE_PX
        points = _points_along(path) if moved else [tuple(int(round(v)) for v in start[-2:])]
        self.scribble(slice_index, points, positive)


def _points_along(path) -> list[tuple[int, int]]:
    """The pixels a mouse path went through, about one per pixel of its length, in order."""
    points = []
    for a, b in zip(path, path[1:]):
        a, b = np.asarray(a, float)[-2:], np.asarray(b, float)[-2:]
        steps = max(1, int(np.ceil(np.abs(b - a).max())))
        for t in np.linspace(0.0, 1.0, steps + 1):
            points.append(tuple(int(round(v)) for v in a + t * (b - a)))
    return list(dict.fromkeys(points))
