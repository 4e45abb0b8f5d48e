"""Multi-pane AMIRA viewer: every inversion image and average side by side, labels over all.

napari 0.9 draws each layer in one grid cell only, so :class:`ScoreViewer` puts ONE
canvas in grid mode and gives every pane its own layers. The labels layer of every pane
wraps the SAME numpy array (``overlay``: the dseg with lesions shown as
:data:`~score_gui.labels.LESION_VALUE`), so nothing is copied; the labels, and every rule
of editing them, live in a Qt-free :class:`score_gui.editing.LabelEditor`
(``ScoreViewer.editor``).

:class:`ScoreViewer` composes one part per job, each in its own module:

- :mod:`.panes` (:class:`~.panes.PanePool`): the panes and their layers, made once and
  then given each scan's data;
- :mod:`.loading` (:class:`~.loading.LayerLoader`): making the layers or swapping a
  scan's data into them, the warm-up;
- :mod:`.layout` (:class:`~.layout.PaneLayout`): the layout presets, which layers show;
- :mod:`.camera`: framing the canal on every pane, canvas positions;
- :mod:`.painting` (:class:`~.painting.LabelsEditing`): the master layer, the tools,
  strokes handed to the editor and pushed to every pane, undo;
- :mod:`.clicking` (:class:`~.clicking.ClickTool`): click correction of a structure;
- :mod:`.contours` (:class:`~.contours.ReferenceContours`, :class:`~.contours.HeatMaps`):
  other sources' labels as contours, heat maps;
- :mod:`.display`: colormaps, contrast limits, filled or contour labels.

Examples
--------
>>> import numpy as np
>>> overlay, under = compose_overlay(np.array([[2, 3]], np.uint8), np.array([[0, 1]], np.uint8))
>>> overlay.tolist(), under.tolist()
([[2, 7]], [[2, 3]])
>>> split_overlay(overlay, under)[0].tolist()
[[2, 3]]
"""

from __future__ import annotations

import weakref
from functools import partial

import numpy as np
from psygnal import Signal
from qtpy.QtCore import QTimer

from score_gui.editing import DRAWN, LabelEditor, compose_overlay, split_overlay  # noqa: F401 (public here)
from score_gui.labels import LabelMap
from score_gui.scan import Scan
from score_napari._qt import _napari_compat as compat
from score_napari._qt.clicking import ClickTool
from score_napari._qt.camera import canal_box, canvas_position, frame_box, frame_on_every_pane  # noqa: F401
from score_napari._qt.contours import HeatMaps, ReferenceContours
from score_napari._qt.display import (PANE_TITLES, REFERENCE_COLORS, LabelsStyle,  # noqa: F401
                                      display_range, hex_to_rgba, labels_colormap)
from score_napari._qt.layout import LAYOUTS, PaneLayout  # noqa: F401
from score_napari._qt.loading import LayerLoader
from score_napari._qt.painting import TOOLS, LabelsEditing  # noqa: F401
from score_napari._qt.panes import Pane, PanePool, pane_images
from score_napari._qt.proposals import ProposalMarker


class ScoreViewer:
    """AMIRA panes with shared, editable labels in one napari viewer.

    The viewer's layer list belongs to this object: :meth:`load_scan` replaces whatever
    was there.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer to drive (napari's own window or one embedded in SCORE Studio).

    Attributes
    ----------
    labels_changed : psygnal.Signal
        Emitted after every stroke, fill, polygon, undo, redo, copy and :meth:`set_labels`.
    slice_changed : psygnal.Signal(int)
        Emitted with the new slice index.
    scan_loaded : psygnal.Signal
        Emitted after :meth:`load_scan`.
    tool_changed, label_value_changed, brush_size_changed : psygnal.Signal
        Emitted with the new tool name, label value, brush size.
    status_message : psygnal.Signal(str)
        A sentence for the status bar (e.g. what a click correction did, or why not).
    """

    labels_changed = Signal()
    slice_changed = Signal(int)
    scan_loaded = Signal()
    labels_style_changed = Signal(bool)      # my labels drawn as outlines (True) or filled
    tool_changed = Signal(str)
    label_value_changed = Signal(int)
    brush_size_changed = Signal(int)
    status_message = Signal(str)

    def __init__(self, viewer):
        from score_napari._qt import guard_singleton_refcounts

        guard_singleton_refcounts()   # napari 0.9.2 + PySide6 6.12 on CPython 3.11, see there
        self.viewer = viewer
        self.scan: Scan | None = None
        self.editor = LabelEditor()   # the working labels; every pane's labels layer wraps them
        self.pool = PanePool(viewer)
        self.pane_layout = PaneLayout(self.pool)
        self.style = LabelsStyle(self.pool)
        self.editing = LabelsEditing(viewer, self.pool, self.editor, self, self._slice_of_scan)
        parts = (self.pool, self.pane_layout, self._scan_or_raise, lambda: self.overlay, self.relayout)
        self.reference_layers = ReferenceContours(*parts)
        self.heat_maps = HeatMaps(*parts)
        self.loader = LayerLoader(self)
        self._last_slice = -1
        # napari patches for this viewer only, each checked against the napari version
        # (score_napari._qt._napari_compat).
        compat.memoize_grid_layout(viewer)
        compat.skip_repeated_slicing(viewer)
        compat.make_controls_on_demand(viewer)
        viewer.dims.events.current_step.connect(self._on_step)
        # Outlines of other sources stay a screen pixel or two wide at any zoom.
        # Fit outlines once the zoom settles; a weak slot (Qt's hold on it is invisible to gc).
        self._line_width_timer = QTimer()
        self._line_width_timer.setSingleShot(True)
        self._line_width_timer.setInterval(40)
        self._line_width_timer.timeout.connect(partial(_fit_line_width, weakref.ref(self)))
        viewer.scene.camera.events.zoom.connect(lambda _event: self._line_width_timer.start())
        self.editing.extra_keys["O"] = lambda: setattr(self, "contours", not self.contours)   # fill / outline
        self.proposal_marker = ProposalMarker(self)
        self.click_tool = ClickTool(self)

    # ------------------------------------------------------------------------------------
    # Loading
    # ------------------------------------------------------------------------------------
    @property
    def panes(self) -> list[Pane]:
        return self.pool.panes

    @property
    def pane_keys(self) -> list[str]:
        return self.pool.keys

    def pane_images(self, scan: Scan) -> list[tuple[str, str, np.ndarray]]:
        """``(key, title, [S, H, W] image)`` per pane: inversion images, then the averages."""
        return pane_images(scan)

    def load_scan(self, scan: Scan, labels: LabelMap | None = None, zoom: bool = True,
                  references: dict[str, LabelMap] | None = None, frame_box: tuple | None = None,
                  margin: float = 0.4) -> None:
        """Show ``scan`` (one pane per image and average) with empty or given labels.

        With labels (and ``zoom``) every pane is zoomed to the canal (``margin`` of its size
        around it), or to ``frame_box`` (pixels, e.g. other raters' canal) when the labels
        are empty; else the whole image is shown. ``references`` (who -> labels) are other
        raters' labels to show as contours (see :meth:`add_reference_labels`), drawn once
        the zoom is set so their outline grid is made once; references of the previous scan
        not named here disappear (their layers stay, hidden, as spares for later ones).

        A scan with the same panes and shape as the one shown reuses the layers, its
        references' layers included, and keeps the layout: only the data changes, which
        is many times faster than building layers (napari lays the grid out again for
        every layer added, removed, shown or hidden).
        """
        references = dict(references or {})
        specs = pane_images(scan)
        reuse = self.overlay is not None and self.pool.holds(specs)
        same_grid = reuse and self.overlay.shape == scan.label_shape
        self.reference_layers.forget_previous_scan(reuse, same_grid, set(references))
        self.heat_maps.remove_all()
        self.scan = scan
        self.loader.load_layers(scan, specs, reuse)
        if reuse and not same_grid:
            self.reference_layers.resize_spares()
        if reuse:
            self.reference_layers.place()
        if labels is not None:
            self.set_labels(labels)
        elif reuse:
            self.pool.refresh_labels()      # the loader emptied the labels
        self._show_middle_slice()
        self.viewer.reset_view()
        box = self.cord_box()
        box = frame_box if box is None else box
        if zoom and box is not None:
            self.zoom_to_cord(margin=margin, box=box)
        self.reference_layers.match_zoom(self.viewer.camera.zoom)
        for who, reference in references.items():
            self.add_reference_labels(who, reference)
        self.click_tool.scan_loaded(scan)
        self.scan_loaded.emit()

    def _show_middle_slice(self) -> None:
        self._last_slice = -1
        self.viewer.dims.set_current_step(0, self.scan.n_slices // 2)
        self._on_step()

    def warm_up(self, n_images: int = 8, shape: tuple[int, int, int] = (12, 192, 192),
                spare_references: int = 2) -> None:
        """Make the panes' layers for an empty scan now, so the first :meth:`load_scan` only
        swaps data (building 22 layers costs seconds, swapping well under one)."""
        for _ in self.warm_up_steps(n_images, shape, spare_references):
            pass

    def shown_panes_left(self) -> int:
        """How many of the layout's panes the warm-up has still to make (a scan opens at 0)."""
        return self.loader.shown_panes_left()

    def make_shown_panes(self) -> None:
        """Make the layout's panes that the warm-up has not made yet."""
        self.loader.make_shown_panes()

    def warm_up_steps(self, n_images: int = 8, shape: tuple[int, int, int] = (12, 192, 192),
                      spare_references: int = 2):
        """:meth:`warm_up` one pane (then one set of spare contour layers) per step
        (:meth:`~.loading.LayerLoader.warm_up_steps`), to advance from an event loop."""
        return self.loader.warm_up_steps(n_images, shape, spare_references)

    def canvas_position(self, pane_key: str, row: float, col: float) -> tuple[int, int]:
        """Canvas pixel ``(x, y)`` of image pixel ``(row, col)`` in a pane (for tests and
        scripted interaction)."""
        pane = self.pool.pane(pane_key)
        if not pane.image.visible:
            raise ValueError(f"pane {pane_key!r} is not shown in layout {self.layout!r}")
        return canvas_position(self.viewer, pane.image, self.scan.pixel_spacing, row, col)

    # ------------------------------------------------------------------------------------
    # Labels in and out
    # ------------------------------------------------------------------------------------
    @property
    def overlay(self) -> np.ndarray | None:
        """The editor's shown values ``[S, H, W]`` (lesions as 7), shared by every pane's
        labels layer (None before a scan); change them through :attr:`editor`."""
        return self.editor.overlay if self.editor.shape[0] else None

    @property
    def under(self) -> np.ndarray | None:
        """Tissue class of every voxel (what counts under a lesion)."""
        return self.editor.under if self.editor.shape[0] else None

    @property
    def nesting_aware(self) -> bool:
        """Painting restricted by nesting (:func:`score_gui.labels.constrain_paint`)."""
        return self.editor.nesting_aware

    @nesting_aware.setter
    def nesting_aware(self, value: bool) -> None:
        self.editor.nesting_aware = bool(value)

    def set_labels(self, label_map: LabelMap, provenance: str = DRAWN) -> None:
        """Show ``label_map`` on every pane (in place: the copies keep sharing the array).

        ``provenance`` (:data:`score_gui.editing.PROVENANCE`) marks its labelled slices:
        ``drawn`` for a rater's labels, ``proposed`` for the models' to be corrected.
        """
        self._require_scan()
        self.editor.set_labels(label_map, provenance)
        self.pool.refresh_labels()
        self.labels_changed.emit()

    def propose(self, proposal: LabelMap, replace_drawn: bool = False) -> bool:
        """The models' labels as a proposal (:meth:`LabelsEditing.propose`)."""
        self._require_scan()
        return self.editing.propose(proposal, replace_drawn)

    def accept_slices(self, slices) -> list[int]:
        """Accept proposals as they are (:meth:`LabelsEditing.accept`)."""
        return self.editing.accept(slices)

    def get_labels(self) -> LabelMap:
        """The labels as drawn: dseg and lesion map (split back from the overlay)."""
        self._require_scan()
        return self.editor.get_labels()

    def clear_labels(self) -> None:
        """Erase every label (undoable)."""
        self._require_scan()
        self.editing.edited(self.editor.clear())

    def undo(self) -> None:
        """Undo the last stroke, fill, polygon, click or copy (any structure)."""
        self.editing.undo()

    def redo(self) -> None:
        self.editing.redo()

    @property
    def can_undo(self) -> bool:
        return self.editor.can_undo

    @property
    def can_redo(self) -> bool:
        return self.editor.can_redo

    def copy_from_neighbour(self, direction: int = -1) -> bool:
        """Copy the slice above (-1) or below (+1) into this one; False when there is none."""
        return self.editing.copy_from_neighbour(direction)

    # ------------------------------------------------------------------------------------
    # Tools and display
    # ------------------------------------------------------------------------------------
    @property
    def master(self):
        """The editable labels layer (the one of the first pane shown)."""
        return self.editing.master

    @property
    def label_value(self) -> int:
        return self.editing.label_value

    def set_label_value(self, value: int) -> None:
        """Structure to paint: 1 canal/CSF, 2 cord/WM, 3 GM, 4/5 horns, 6 commissure, 7 lesion."""
        self.editing.set_label_value(value)

    @property
    def tool(self) -> str:
        return self.editing.tool

    def set_tool(self, tool: str) -> None:
        """``brush``, ``eraser``, ``fill``, ``polygon``, ``click`` (or ``pan``, ``pick``)."""
        self.editing.set_tool(tool)

    @property
    def brush_size(self) -> int:
        return self.editing.brush_size

    def set_brush_size(self, size: int) -> None:
        self.editing.set_brush_size(size)

    def key_actions(self) -> dict:
        """Keys of the labels layers (they override napari's 1-7 mode keys) and their actions."""
        return self.editing.key_actions()

    @property
    def contours(self) -> bool:
        """Labels drawn as contours (True) or filled (False)."""
        return self.style.contours

    @contours.setter
    def contours(self, value: bool) -> None:
        self.style.set(contours=value)
        self.labels_style_changed.emit(self.style.contours)

    @property
    def labels_visible(self) -> bool:
        return self.style.visible

    @labels_visible.setter
    def labels_visible(self, value: bool) -> None:
        self.style.set(visible=value)

    # ------------------------------------------------------------------------------------
    # Reference raters and heat maps
    # ------------------------------------------------------------------------------------
    def add_reference_labels(self, who: str, label_map: LabelMap) -> None:
        """Show another rater's labels as read-only contours in one colour on every pane."""
        self._require_scan()
        self.reference_layers.add(who, label_map)

    def remove_reference_labels(self, who: str, keep_layers: bool = False) -> None:
        """Stop showing ``who``'s contours. With ``keep_layers`` its layers stay, hidden and
        empty, for the next reference to take over (making 11 layers costs seconds)."""
        self.reference_layers.remove(who, keep_layers)

    def add_spare_references(self, count: int = 2) -> None:
        """``count`` sets of hidden, empty contour layers for later references to take over."""
        self._require_scan()
        self.reference_layers.add_spares(count)

    def set_reference_visible(self, who: str, visible: bool) -> None:
        self.reference_layers.set_visible(who, visible)

    @property
    def references(self) -> list[str]:
        """Whose contours are shown or can be (spare layers are not listed)."""
        return self.reference_layers.names

    def reference_color(self, who: str) -> str:
        return self.reference_layers.color(who)

    def add_overlay(self, name: str, array: np.ndarray, colormap: str = "inferno",
                    opacity: float = 0.6) -> None:
        """A float map (e.g. ensemble disagreement ``[S, H, W]``) under the labels of every pane."""
        self._require_scan()
        self.heat_maps.add(name, array, colormap, opacity)

    def remove_overlay(self, name: str) -> None:
        self.heat_maps.remove(name)

    def set_overlay_visible(self, name: str, visible: bool) -> None:
        self.heat_maps.set_visible(name, visible)

    # ------------------------------------------------------------------------------------
    # Layout, slice, camera
    # ------------------------------------------------------------------------------------
    @property
    def layout(self) -> str:
        return self.pane_layout.preset

    def set_layout(self, preset: str, pane: str | None = None) -> None:
        """``all`` (grid of every pane), ``working`` (avg 1-5 and 6-8), ``single`` (one pane).

        ``pane`` picks the pane of ``single`` (a key such as ``"1-5"``, ``"TI3"``, ``"all"``).
        """
        self.pane_layout.choose(preset, pane)
        self.make_shown_panes()       # still in the warm-up: this layout's panes now
        self.relayout()
        self.viewer.reset_view()

    def visible_panes(self) -> list[Pane]:
        return self.pane_layout.visible_panes()

    def relayout(self) -> None:
        """Show the layers of the layout's panes, then make the first one's labels the master."""
        with self.pool.scene_paused():
            self.pane_layout.show(self.reference_layers.wanted, self.heat_maps.wanted)
        self.editing.select_master(self.pane_layout.visible_panes())

    @property
    def current_slice(self) -> int:
        return int(self.viewer.dims.current_step[0])

    def set_slice(self, index: int) -> None:
        self._require_scan()
        index = int(np.clip(index, 0, self.scan.n_slices - 1))
        self.viewer.dims.set_current_step(0, index)

    def _on_step(self, event=None) -> None:
        if self.loader.busy or self.scan is None:
            return
        index = self.current_slice
        if index != self._last_slice and 0 <= index < self.scan.n_slices:
            self._last_slice = index
            self.slice_changed.emit(index)

    def cord_box(self, slice_index: int | None = None) -> tuple[float, float, float, float] | None:
        """``(row0, col0, row1, col1)`` in pixels around the canal on a slice (any slice if
        that one is empty), or None without labels."""
        if self.overlay is None:
            return None
        return canal_box(self.overlay, self.current_slice if slice_index is None else slice_index)

    def zoom_to_cord(self, margin: float = 0.4, field_mm: float = 30.0, box: tuple | None = None) -> None:
        """Centre and zoom every pane on the canal (labels' box plus ``margin`` of its size on
        each side), or on the image centre with a ``field_mm`` field when there are no labels.

        ``box`` (``(row0, col0, row1, col1)`` pixels) frames another region instead, e.g. the
        canal of other raters' labels while this rater has none (see :func:`frame_box`).
        """
        self._require_scan()
        box = self.cord_box() if box is None else box
        frame_on_every_pane(self.viewer, box, self.scan.pixel_spacing, self.scan.shape_hw, margin, field_mm)

    def _require_scan(self) -> None:
        if self.scan is None:
            raise RuntimeError("no scan loaded: call load_scan first")

    def _scan_or_raise(self) -> Scan:
        self._require_scan()
        return self.scan

    def _slice_of_scan(self) -> int:
        """The slice shown, for editing that needs a scan (raises without one)."""
        self._require_scan()
        return self.current_slice


def _fit_line_width(viewer_ref) -> None:
    """Fit the outlines of a :class:`ScoreViewer` (if still alive) to its camera's zoom."""
    score_viewer = viewer_ref()
    if score_viewer is not None:
        score_viewer.reference_layers.fit_line_width(score_viewer.viewer.scene.camera.zoom)
