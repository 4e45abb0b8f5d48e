"""The click tool: a mouse click on any pane refines the selected structure around it.

With the tool ``click`` (key K) a click inside a structure the labels missed adds it
(``+``), a Shift+click or a right click where they overreach removes it (``-``). The
structure is the one chosen in the palette: cord/WM refines the cord, gray matter and its
parts refine the gray matter, lesion the lesions (the canal has no click correction). The
Qt-free :class:`score_gui.click_correction.ClickCorrector` decides the labels; each click
is one undo step. A drag still pans, as in napari's pan/zoom mode, which the tool uses.
"""

from __future__ import annotations

import time

import numpy as np

from score_gui.click_correction import ClickCorrector, structure_for_value
from score_gui.errors import ScoreInputError

NEGATIVE_MODIFIERS = {"Shift"}
"""Keys held for a ``-`` click (a right click is ``-`` too)."""

DRAG_TOLERANCE_PX = 0.5
"""A press that moves further than this (data pixels) before the release is a pan, not a click."""


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
            key = self.corrector.click(slice_index, row, col, positive, structure)
        except ScoreInputError as exc:
            owner.status_message.emit(f"Click not applied: {exc.problem}")
            return False
        self.last_seconds = time.perf_counter() - started
        owner.editing.edited(key)
        clicks = len(self.corrector.clicks)
        sign = "+" if positive else "-"
        owner.status_message.emit(f"{structure}: click {clicks} ({sign}) refined in "
                                  f"{1000 * self.last_seconds:.0f} ms; Ctrl+Z undoes it")
        return key is not None

    def _on_mouse(self, viewer, event):
        """napari drag callback: act on a press released where it started."""
        editing = self.owner.editing
        layer = editing.master
        if editing.tool != "click" or layer is None or self.owner.scan is None:
            return
        start = np.asarray(layer.world_to_data(event.position), float)
        yield
        while event.type == "mouse_move":
            if np.abs(np.asarray(layer.world_to_data(event.position)) - start)[-2:].max() > DRAG_TOLERANCE_PX:
                return  # a pan
            yield
        positive = event.button != 2 and not any(key in event.modifiers for key in NEGATIVE_MODIFIERS)
        slice_index, row, col = (int(round(v)) for v in start[-3:])
        self.click(slice_index, row, col, positive)
