"""Editing through napari: the master labels layer, the tools, and strokes pushed to every pane.

Every pane's labels layer wraps the SAME arrays of a Qt-free
:class:`score_gui.editing.LabelEditor`. One of them, the *master* (the first pane shown),
is editable and active: mouse strokes from any cell reach it in shared world
coordinates. :meth:`LabelsEditing.paint_masked` replaces its ``_apply_mask_to_data``
(the one place napari's brush, fill and polygon write) and hands each piece of a stroke
to the editor, which restricts it by nesting, keeps lesions apart from the tissue class
under them and records the undo history; the changed region is pushed to the other
copies while the stroke runs.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from score_gui import labels as lab
from score_gui.editing import union_box
from score_gui.labels import LESION_VALUE
from score_napari._qt import _napari_compat as compat

TOOLS = {"brush": "paint", "eraser": "erase", "fill": "fill", "polygon": "polygon",
         "click": "paint", "pan": "pan_zoom", "pick": "pick"}
"""Tool names of :meth:`LabelsEditing.set_tool` and the napari Labels mode each one uses (the
click tool borrows the paint mode, where a drag does not pan, and paints nothing: its clicks and
scribbles go to :class:`~score_napari._qt.clicking.ClickTool`; Space held pans)."""


class LabelsEditing:
    """Tools, painting and undo of the panes' shared labels.

    Parameters
    ----------
    viewer : napari.Viewer
    pool : PanePool
        The panes whose labels layers show the editor's arrays.
    editor : score_gui.editing.LabelEditor
    signals : object
        Has the signals ``labels_changed``, ``tool_changed``, ``label_value_changed`` and
        ``brush_size_changed`` to emit (the :class:`ScoreViewer`).
    current_slice : callable
        Returns the slice shown (for copying from a neighbour).
    """

    def __init__(self, viewer, pool, editor, signals, current_slice: Callable[[], int]):
        self.viewer = viewer
        self.pool = pool
        self.editor = editor
        self.signals = signals
        self.current_slice = current_slice
        self.master = None
        self.label_value = lab.WM
        self.tool = "brush"
        self.brush_size = 5
        self._pending_key: tuple | None = None
        self._recompute_master = False
        self._flushing = False
        self.extra_keys: dict[str, callable] = {}     # keys the viewer adds (e.g. O: outline)

    # -- the labels layers -------------------------------------------------------------------
    def prepare_labels_layer(self, layer) -> None:
        """Route this copy's painting, undo and events through the editor."""
        layer.editable = False
        layer.brush_size = self.brush_size
        layer.selected_label = self.label_value
        if compat.install_paint_hook(layer, lambda data, mask, value, key, _layer=layer:
                                     self.paint_masked(_layer, data, mask, value, key)):
            layer.undo = self.undo
            layer.redo = self.redo
        layer.events.paint.connect(self.on_paint_finished)
        layer.events.labels_update.connect(lambda event, _layer=layer: self.on_labels_update(_layer))
        for key, action in self.key_actions().items():
            layer.bind_key(key, lambda _layer, _action=action: _action(), overwrite=True)

    def key_actions(self) -> dict:
        """Keys of the labels layers (they override napari's 1-7 mode keys) and their actions."""
        actions = {str(v): (lambda v=v: self.set_label_value(v)) for v in range(1, LESION_VALUE + 1)}
        actions.update({
            "B": lambda: self.set_tool("brush"), "E": lambda: self.set_tool("eraser"),
            "F": lambda: self.set_tool("fill"), "G": lambda: self.set_tool("polygon"),
            "K": lambda: self.set_tool("click"),
            "[": lambda: self.set_brush_size(self.brush_size - 1),
            "]": lambda: self.set_brush_size(self.brush_size + 1),
            "C": lambda: self.copy_from_neighbour(-1), "Shift-C": lambda: self.copy_from_neighbour(+1),
        })
        actions.update(self.extra_keys)
        return actions

    def forget_master(self) -> None:
        """The layers are being replaced: no master until :meth:`select_master`."""
        self.master = None

    def select_master(self, visible_panes: list) -> None:
        """The labels layer of the first visible pane becomes the editable, active one."""
        if not visible_panes:
            return
        new = visible_panes[0].labels
        old = self.master
        if old is not None and old is not new:
            old.editable = False
        self.master = new
        compat.show_editing_overlays(new)      # and the polygon one with that tool (_apply_mode)
        new.editable = True
        new.brush_size = self.brush_size
        new.selected_label = self.label_value
        self.viewer.layers.selection.active = new
        self._apply_mode(new)

    # -- painting (called by napari inside the master's brush / fill / polygon) ---------------
    def paint_masked(self, layer, data, mask, value, key):
        """Replacement of ``Labels._apply_mask_to_data`` for the shared overlay.

        ``data`` is the overlay inside box ``key`` (a view, or a copy napari writes back),
        ``mask`` what napari would paint with ``value``. The editor decides what changes
        (:meth:`score_gui.editing.LabelEditor.paint`); returns the voxels whose shown value
        changed (napari uses it to update its caches), or None.
        """
        if self.tool == "click":
            return None          # the click tool's strokes are clicks and scribbles, not paint
        old_overlay = np.array(data, copy=True)
        shown = self.editor.paint(key, mask, value, selected=layer.selected_label)
        if shown is None:
            return None
        if value == 0 and layer.selected_label == LESION_VALUE:
            self._recompute_master = True  # napari colours the whole mask as background
        data[shown] = self.editor.overlay[key][shown]
        self._pending_key = key if self._pending_key is None else union_box(self._pending_key, key)
        # Last: outside a drag this fires napari's paint event, which ends our undo step.
        compat.record_paint_history(layer, key, old_overlay, shown, value)
        return shown if shown.any() else None

    def on_labels_update(self, layer) -> None:
        """During a stroke: push the region the master just changed to every other copy."""
        if self._flushing or layer is not self.master or self._pending_key is None:
            return
        key, self._pending_key = self._pending_key, None
        recompute_master, self._recompute_master = self._recompute_master, False
        self._flushing = True
        try:
            for pane in self.pool.panes:
                if pane.labels is not self.master or recompute_master:
                    compat.refresh_labels_region(pane.labels, key)
        finally:
            self._flushing = False

    def on_paint_finished(self, event=None) -> None:
        """A stroke, fill or polygon ended: one undo step, listeners told."""
        if self.master is not None:
            compat.clear_napari_history(self.master)   # the editor keeps its own history
        if self.editor.commit():
            self.signals.labels_changed.emit()

    def edited(self, key: tuple | None) -> None:
        """The editor changed box ``key`` outside a stroke: redraw it, tell listeners."""
        if key is None:
            return
        self.pool.refresh_labels_region(key)
        self.signals.labels_changed.emit()

    def propose(self, proposal, replace_drawn: bool = False) -> bool:
        """The models' labels into the working labels as a proposal, as one undo step.

        Slices the rater has labelled are kept unless ``replace_drawn``; the proposed ones
        stay marked (:class:`~score_napari._qt.proposals.ProposalMarker`) until edited or
        accepted. Returns whether any slice was proposed.
        """
        key = self.editor.propose(proposal, replace_drawn=replace_drawn)
        self.edited(key)
        return key is not None

    def accept(self, slices) -> list[int]:
        """Accept the proposals of ``slices`` as they are (``proposed-accepted``); returns those accepted."""
        accepted = self.editor.accept(slices)
        if accepted:
            self.signals.labels_changed.emit()
        return accepted

    def undo(self) -> None:
        """Undo the last stroke, fill, polygon or copy (whatever structure it touched)."""
        self.edited(self.editor.undo())

    def redo(self) -> None:
        self.edited(self.editor.redo())

    def copy_from_neighbour(self, direction: int = -1) -> bool:
        """Copy the labels of the slice above (-1) or below (+1) into the current slice;
        False (and nothing changed) when there is no such slice."""
        key = self.editor.copy_from_neighbour(self.current_slice(), direction)
        self.edited(key)
        return key is not None

    # -- tools -------------------------------------------------------------------------------
    def set_label_value(self, value: int) -> None:
        """Structure to paint: 1 canal/CSF, 2 cord/WM, 3 GM, 4/5 horns, 6 commissure, 7 lesion."""
        value = int(value)
        if not 1 <= value <= LESION_VALUE:
            raise ValueError(f"label value {value} outside 1..{LESION_VALUE}")
        self.label_value = value
        for pane in self.pool.panes:
            pane.labels.selected_label = value
        if self.tool == "eraser":
            self.set_tool("brush")
        self.signals.label_value_changed.emit(value)

    def set_tool(self, tool: str) -> None:
        """``brush``, ``eraser``, ``fill``, ``polygon``, ``click`` (or ``pan``, ``pick``)."""
        if tool not in TOOLS:
            raise ValueError(f"unknown tool {tool!r}; one of {sorted(TOOLS)}")
        self.tool = tool
        if self.master is not None:
            self.viewer.layers.selection.active = self.master
            self._apply_mode(self.master)
        self.signals.tool_changed.emit(tool)

    def _apply_mode(self, layer) -> None:
        if self.tool == "polygon":
            compat.show_editing_overlays(layer, polygon=True)
        layer.mode = TOOLS[self.tool]
        if self.tool == "click":
            layer.cursor = "crosshair"      # a point, not the brush circle of the paint mode it borrows

    def set_brush_size(self, size: int) -> None:
        self.brush_size = max(1, int(size))
        for pane in self.pool.panes:
            pane.labels.brush_size = self.brush_size
        self.signals.brush_size_changed.emit(self.brush_size)
