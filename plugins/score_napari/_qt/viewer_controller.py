"""Multi-pane AMIRA viewer: every inversion image and average side by side, labels over all.

napari 0.9 draws each layer in one grid cell only, so :class:`ScoreViewer` puts ONE
canvas in grid mode and gives every pane its own layers, ``[image, heat maps...,
reference contours..., labels]``. The labels layer of every pane wraps the SAME numpy
array (``overlay``: the dseg with lesions shown as :data:`LESION_VALUE`), so nothing is
copied. One of them, the *master*, is editable and active: mouse strokes from any cell
reach it in shared world coordinates, write the shared array, and the changed region is
pushed to the other copies while the stroke runs.

The labels themselves, and every rule of editing them, live in a Qt-free
:class:`score_gui.editing.LabelEditor` (``ScoreViewer.editor``): the layers wrap its
arrays and only display them. Painting goes through :meth:`ScoreViewer._paint_masked`,
which replaces the master's ``_apply_mask_to_data`` (the one place napari's brush, fill
and polygon write) and hands each piece of a stroke to the editor, which restricts it by
nesting, keeps lesions apart from the tissue class under them, and records the undo
history (across structures and programmatic edits).

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

from dataclasses import dataclass, field

import numpy as np
from psygnal import Signal

from score_gui import labels as lab
from score_gui.editing import DRAWN, LabelEditor, compose_overlay, split_overlay, union_box  # noqa: F401
from score_gui.labels import LESION_VALUE, LabelMap
from score_gui.scan import Scan
from score_napari._qt import _napari_compat as compat
from score_napari._qt._napari_compat import (lighten_layer, refresh_labels_region,  # noqa: F401
                                             skip_repeated_slicing, slice_when_visible)

TOOLS = {"brush": "paint", "eraser": "erase", "fill": "fill", "polygon": "polygon",
         "pan": "pan_zoom", "pick": "pick"}
"""Tool names of :meth:`ScoreViewer.set_tool` and the napari Labels mode each one uses."""

LAYOUTS = ("all", "working", "single")
WORKING_PANES = ("1-5", "6-8")
"""The averages raters work on: 1-5 (GM/WM contrast) and 6-8 (cord/CSF contrast)."""

REFERENCE_PANES = ("1-5", "6-8", "all", "image")
"""Panes that show other raters' contours in the all-panes layout (``image``: a one-image scan)."""

PANE_TITLES = {"1-5": "avg TI1-5 (GM/WM)", "6-8": "avg TI6-8 (cord/CSF)", "all": "avg all"}

REFERENCE_COLORS = ("#00e5ff", "#ff4fd8", "#b6ff3b", "#ffffff", "#ff9f1a")
"""One contour colour per reference rater, chosen to stand apart from the label colours."""

FILLED_OPACITY = 0.45


def labels_colormap(opaque_background: bool = False):
    """napari colormap with the contract colours (:data:`score_gui.labels.LABEL_COLORS`)."""
    from napari.utils.colormaps import DirectLabelColormap

    colors = {value: hex_to_rgba(color) for value, color in lab.LABEL_COLORS.items()}
    if not opaque_background:
        colors[0] = np.zeros(4)
    colors[None] = np.zeros(4)
    return DirectLabelColormap(color_dict=colors)


def single_color_colormap(color: str):
    """Every non-zero value in one colour (reference raters' contours)."""
    from napari.utils.colormaps import DirectLabelColormap

    rgba = hex_to_rgba(color)
    colors = {value: rgba for value in range(1, LESION_VALUE + 1)}
    colors[0] = np.zeros(4)
    colors[None] = np.zeros(4)
    return DirectLabelColormap(color_dict=colors)


def hex_to_rgba(color: str) -> np.ndarray:
    """``'#rrggbb'`` -> RGBA floats.

    Examples
    --------
    >>> hex_to_rgba("#ff0000").tolist()
    [1.0, 0.0, 0.0, 1.0]
    """
    color = color.lstrip("#")
    return np.array([int(color[i:i + 2], 16) / 255 for i in (0, 2, 4)] + [1.0])


def display_range(image: np.ndarray, low: float = 0.5, high: float = 99.5) -> tuple[float, float]:
    """Contrast limits from percentiles (robust to a few bright vessels or fat voxels).

    Examples
    --------
    >>> display_range(np.arange(1001, dtype=np.float32))
    (5.0, 995.0)
    """
    sample = np.asarray(image)
    if sample.ndim >= 2 and sample.size > 200_000:
        sample = sample[..., ::2, ::2]
    lo, hi = (float(v) for v in np.percentile(sample, [low, high]))
    if not hi > lo:
        hi = lo + 1.0
    return lo, hi


@dataclass
class Pane:
    """One grid cell: an image, its labels copy, reference contours and heat maps."""

    key: str
    title: str
    image: object
    labels: object
    references: dict = field(default_factory=dict)
    extras: dict = field(default_factory=dict)

    def layers(self) -> list:
        return [self.image, *self.extras.values(), *self.references.values(), self.labels]


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
    """

    labels_changed = Signal()
    slice_changed = Signal(int)
    scan_loaded = Signal()
    tool_changed = Signal(str)
    label_value_changed = Signal(int)
    brush_size_changed = Signal(int)

    def __init__(self, viewer):
        from score_napari._qt import guard_singleton_refcounts

        guard_singleton_refcounts()   # napari 0.9.2 + PySide6 6.12 on CPython 3.11, see there
        self.viewer = viewer
        self.scan: Scan | None = None
        self.panes: list[Pane] = []
        self.editor = LabelEditor()   # the working labels; every pane's labels layer wraps them
        self._master = None
        self._layout = "all"
        self._single_pane: str | None = None
        self._contours = False
        self._labels_visible = True
        self._reference_visible: dict[str, bool] = {}
        self._reference_maps: dict[str, np.ndarray] = {}
        self._extra_visible: dict[str, bool] = {}
        self._extra_arrays: dict[str, np.ndarray] = {}
        self._label_value = lab.WM
        self._tool = "brush"
        self._brush_size = 5
        self._pending_key: tuple | None = None
        self._recompute_master = False
        self._flushing = False
        self._loading = False
        self._last_slice = -1
        # napari patches for this viewer only, each checked against the napari version
        # (score_napari._qt._napari_compat).
        compat.memoize_grid_layout(viewer)
        compat.skip_repeated_slicing(viewer)
        viewer.dims.events.current_step.connect(self._on_step)

    # ------------------------------------------------------------------------------------
    # Loading
    # ------------------------------------------------------------------------------------
    def pane_images(self, scan: Scan) -> list[tuple[str, str, np.ndarray]]:
        """``(key, title, [S, H, W] image)`` per pane: inversion images, then the averages."""
        if scan.n_images == 1:
            return [("image", scan.image_titles()[0], scan.images[:, 0])]
        panes = [(f"TI{i + 1}", title, scan.images[:, i]) for i, title in enumerate(scan.image_titles())]
        for key, image in scan.averages().items():
            panes.append((key, PANE_TITLES.get(key, f"avg {key}"), image))
        return panes

    def load_scan(self, scan: Scan, labels: LabelMap | None = None, zoom: bool = True,
                  references: dict[str, LabelMap] | None = None) -> None:
        """Show ``scan`` (one pane per image and average) with empty or given labels.

        With labels (and ``zoom``) every pane is zoomed to the canal, else the whole image
        is shown. ``references`` (who -> labels) are other raters' labels to show as
        contours (see :meth:`add_reference_labels`); references of the previous scan not
        named here disappear (their layers stay, hidden, as spares for later ones).

        A scan with the same panes and shape as the one shown reuses the layers, its
        references' layers included, and keeps the layout: only the data changes, which
        is many times faster than building layers (napari lays the grid out again for
        every layer added, removed, shown or hidden).
        """
        references = dict(references or {})
        panes = self.pane_images(scan)
        reuse = (self.overlay is not None and bool(self.panes)
                 and [p.key for p in self.panes] == [key for key, _, _ in panes]
                 and all(layer in self.viewer.layers for p in self.panes for layer in p.layers()))
        same_grid = reuse and self.overlay.shape == scan.label_shape
        for who in list(self._reference_maps):
            if not reuse:
                self.remove_reference_labels(who)
            elif not _is_spare(who) and not (same_grid and who in references):
                self.remove_reference_labels(who, keep_layers=True)   # a spare, for the next
        for name in list(self._extra_arrays):
            self.remove_overlay(name)
        self.scan = scan
        self._loading = True    # no slice_changed from the half-built layer list
        try:
            with self._scene_paused():
                self._load_layers(scan, panes, reuse)
        finally:
            self._loading = False
        if reuse and not same_grid:
            self._resize_spares()
        if labels is not None:
            self.set_labels(labels)
        elif reuse:
            self._refresh_all()      # the editor emptied the labels in _load_layers
        for who, reference in references.items():
            self.add_reference_labels(who, reference)
        self._last_slice = -1
        self.viewer.dims.set_current_step(0, scan.n_slices // 2)
        self._on_step()
        self.viewer.reset_view()
        if zoom and self.cord_box() is not None:
            self.zoom_to_cord()
        self.scan_loaded.emit()

    def _load_layers(self, scan: Scan, panes, reuse: bool) -> None:
        replaced = self.editor.reset(scan.label_shape)   # empty labels, no history
        if reuse:
            self._swap_images(scan, panes)
            for pane in self.panes if replaced else ():
                pane.labels.data = self.overlay
                pane.labels.metadata["score_tissue"] = self.under
        else:
            self._build_layers(scan, panes)
        if self._single_pane not in self.pane_keys:
            self._single_pane = "1-5" if scan.is_amira else self.panes[0].key
        self._apply_layout()    # the layout is kept from scan to scan

    def _vispy_canvas(self):
        return compat.vispy_canvas(self.viewer)

    def _scene_paused(self):
        """Lay the grid out once at the end instead of once per added or hidden layer
        (napari re-lays out every cell for every layer: quadratic in the layer count)."""
        return compat.scene_paused(self.viewer, self._scene_signature)

    def _scene_signature(self) -> tuple:
        grid = self.viewer.canvas.grid
        return (grid.enabled, grid.stride, tuple((id(layer), layer.visible) for layer in self.viewer.layers))

    def canvas_position(self, pane_key: str, row: float, col: float) -> tuple[int, int]:
        """Canvas pixel ``(x, y)`` of image pixel ``(row, col)`` in a pane (for tests and
        scripted interaction)."""
        pane = next(p for p in self.panes if p.key == pane_key)
        if not pane.image.visible:
            raise ValueError(f"pane {pane_key!r} is not shown in layout {self._layout!r}")
        view = compat.cell_view(self.viewer, self.viewer.layers.index(pane.image))
        dy, dx = self.scan.pixel_spacing
        transform = view.transform * view.scene.transform
        x, y = transform.map([col * dx, row * dy])[:2]
        return int(round(x)), int(round(y))

    def warm_up(self, n_images: int = 8, shape: tuple[int, int, int] = (12, 192, 192),
                spare_references: int = 2) -> None:
        """Build the panes' layers for an empty scan with ``n_images`` images now (e.g. while
        the application starts), so the first real :meth:`load_scan` only swaps data.

        Building 22 napari layers costs seconds (vispy visuals, layer controls); swapping
        data in them well under one (fastest when the scan's ``(S, H, W)`` is ``shape``).
        """
        for _ in self.warm_up_steps(n_images, shape, spare_references):
            pass

    def warm_up_step_count(self, n_images: int = 8, spare_references: int = 2) -> int:
        """How many steps :meth:`warm_up_steps` takes (for a progress message)."""
        from score_gui.scan import Scan

        blank = Scan.from_arrays(np.zeros((1, n_images, 2, 2), np.float32))
        return len(self.pane_images(blank)) + spare_references

    def warm_up_steps(self, n_images: int = 8, shape: tuple[int, int, int] = (12, 192, 192),
                      spare_references: int = 2):
        """:meth:`warm_up` one pane at a time: a generator to advance from an event loop, so
        the window stays responsive while the layers are made (about 0.3 s a pane). Then
        ``spare_references`` sets of hidden contour layers for other raters' labels (see
        :meth:`add_spare_references`), one set per step."""
        from score_gui.scan import Scan

        blank = Scan.from_arrays(np.zeros((shape[0], n_images, *shape[1:]), np.float32))
        panes = self.pane_images(blank)
        if [p.key for p in self.panes] == [key for key, _, _ in panes]:
            return
        self.editor.reset(blank.label_shape)
        self._loading = True
        try:
            yield from self._build_layer_steps(blank, panes)
            with self._scene_paused():
                self._apply_layout()
            for _ in range(spare_references):
                yield
                self.scan = blank
                try:
                    self.add_spare_references(1)
                finally:
                    self.scan = None
        finally:
            self._loading = False

    def _swap_images(self, scan: Scan, panes) -> None:
        for pane, (key, title, image) in zip(self.panes, panes):
            pane.image.data = image
            pane.image.contrast_limits_range = display_range(image, 0, 100)
            pane.image.contrast_limits = display_range(image)
            scale = (1.0, *scan.pixel_spacing)
            for layer in (pane.image, pane.labels):
                if not np.allclose(layer.scale, scale):
                    layer.scale = scale
            pane.labels.metadata["score_scan"] = scan

    def _build_layers(self, scan: Scan, panes) -> None:
        for _ in self._build_layer_steps(scan, panes):
            pass

    def _build_layer_steps(self, scan: Scan, panes):
        """Make the panes' layers, yielding after each pane."""
        from napari.layers import Image, Labels

        grid = self.viewer.canvas.grid
        grid.enabled = False   # one grid lay-out at the end instead of one per added layer
        self.viewer.layers.clear()
        self.panes = []
        self._master = None
        scale = (1.0, *scan.pixel_spacing)
        cmap = labels_colormap()
        keys = [key for key, _, _ in panes]
        if self._single_pane not in keys:
            self._single_pane = "1-5" if scan.is_amira else keys[0]
        shown = self._shown_keys(keys)   # made hidden rather than hidden later: see _set_visibility
        for key, title, image in panes:
            image_layer = Image(image, name=title, colormap="gray", scale=scale,
                                contrast_limits=display_range(image), visible=key in shown,
                                metadata={"score_pane": key, "score_role": "image"})
            image_layer.name_overlay.visible = True
            image_layer.name_overlay.font_size = 11
            labels_layer = Labels(self.overlay, name=f"labels {title}", scale=scale, colormap=cmap,
                                  opacity=FILLED_OPACITY, visible=key in shown,
                                  metadata={"score_pane": key, "score_role": "labels",
                                            "score_scan": scan, "score_tissue": self.under})
            self._prepare_labels_layer(labels_layer)
            self.panes.append(Pane(key, title, image_layer, labels_layer))
            with self._scene_paused():
                self.viewer.layers.extend([image_layer, labels_layer])
            self._lighten([image_layer, labels_layer])
            yield
        self._update_stride()
        self._apply_contours()

    def _prepare_labels_layer(self, layer) -> None:
        """Route this copy's painting, undo and events through the viewer."""
        layer.editable = False
        layer.brush_size = self._brush_size
        layer.selected_label = self._label_value
        if compat.install_paint_hook(layer, lambda data, mask, value, key, _layer=layer:
                                     self._paint_masked(_layer, data, mask, value, key)):
            layer.undo = self.undo
            layer.redo = self.redo
        layer.events.paint.connect(self._on_paint_finished)
        layer.events.labels_update.connect(lambda event, _layer=layer: self._on_labels_update(_layer))
        for key, action in self.key_actions().items():
            layer.bind_key(key, lambda _layer, _action=action: _action(), overwrite=True)

    def key_actions(self) -> dict:
        """Keys of the labels layers (they override napari's 1-7 mode keys) and their actions."""
        actions = {str(v): (lambda v=v: self.set_label_value(v)) for v in range(1, LESION_VALUE + 1)}
        actions.update({
            "B": lambda: self.set_tool("brush"), "E": lambda: self.set_tool("eraser"),
            "F": lambda: self.set_tool("fill"), "G": lambda: self.set_tool("polygon"),
            "[": lambda: self.set_brush_size(self._brush_size - 1),
            "]": lambda: self.set_brush_size(self._brush_size + 1),
            "C": lambda: self.copy_from_neighbour(-1), "Shift-C": lambda: self.copy_from_neighbour(+1),
        })
        return actions

    def _lighten(self, layers) -> None:
        canvas = self._vispy_canvas()
        for layer in layers:
            lighten_layer(layer, canvas)
            slice_when_visible(layer, self.viewer)

    def _update_stride(self) -> None:
        grid = self.viewer.canvas.grid
        grid.stride = len(self.panes[0].layers()) if self.panes else 1

    # ------------------------------------------------------------------------------------
    # Labels in and out
    # ------------------------------------------------------------------------------------
    @property
    def overlay(self) -> np.ndarray | None:
        """Shown values ``[S, H, W]`` (lesions as 7), shared by every pane's labels layer;
        None before the first scan or warm-up. The editor's array: change it through
        :attr:`editor` (or refresh the layers after changing it directly)."""
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
        self._refresh_all()
        self.labels_changed.emit()

    def get_labels(self) -> LabelMap:
        """The labels as drawn: dseg and lesion map (split back from the overlay)."""
        self._require_scan()
        return self.editor.get_labels()

    def clear_labels(self) -> None:
        """Erase every label (undoable)."""
        self._require_scan()
        self._edited(self.editor.clear())

    # ------------------------------------------------------------------------------------
    # Painting (called by napari inside the master's brush / fill / polygon)
    # ------------------------------------------------------------------------------------
    def _paint_masked(self, layer, data, mask, value, key):
        """Replacement of ``Labels._apply_mask_to_data`` for the shared overlay.

        ``data`` is the overlay inside box ``key`` (a view, or a copy napari writes back),
        ``mask`` what napari would paint with ``value``. The editor decides what changes
        (:meth:`score_gui.editing.LabelEditor.paint`); returns the voxels whose shown value
        changed (napari uses it to update its caches), or None.
        """
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

    def _on_labels_update(self, layer) -> None:
        """During a stroke: push the region the master just changed to every other copy."""
        if self._flushing or layer is not self._master or self._pending_key is None:
            return
        key, self._pending_key = self._pending_key, None
        recompute_master, self._recompute_master = self._recompute_master, False
        self._flushing = True
        try:
            for pane in self.panes:
                if pane.labels is not self._master or recompute_master:
                    refresh_labels_region(pane.labels, key)
        finally:
            self._flushing = False

    def _on_paint_finished(self, event=None) -> None:
        """A stroke, fill or polygon ended: one undo step, listeners told."""
        if self._master is not None:
            compat.clear_napari_history(self._master)   # the viewer keeps its own history
        if self.editor.commit():
            self.labels_changed.emit()

    def _edited(self, key: tuple | None) -> None:
        """The editor changed box ``key`` outside a stroke: redraw it, tell listeners."""
        if key is None:
            return
        self._refresh_region(key)
        self.labels_changed.emit()

    def undo(self) -> None:
        """Undo the last stroke, fill, polygon or copy (whatever structure it touched)."""
        self._edited(self.editor.undo())

    def redo(self) -> None:
        self._edited(self.editor.redo())

    @property
    def can_undo(self) -> bool:
        return self.editor.can_undo

    @property
    def can_redo(self) -> bool:
        return self.editor.can_redo

    def copy_from_neighbour(self, direction: int = -1) -> bool:
        """Copy the labels of the slice above (-1) or below (+1) into the current slice.

        Returns False (and changes nothing) when there is no such slice.
        """
        self._require_scan()
        key = self.editor.copy_from_neighbour(self.current_slice, direction)
        self._edited(key)
        return key is not None

    # ------------------------------------------------------------------------------------
    # Refreshing the copies
    # ------------------------------------------------------------------------------------
    def _refresh_region(self, key: tuple) -> None:
        for pane in self.panes:
            refresh_labels_region(pane.labels, key)

    def _refresh_all(self) -> None:
        for pane in self.panes:
            pane.labels.refresh()

    # ------------------------------------------------------------------------------------
    # Tools
    # ------------------------------------------------------------------------------------
    @property
    def master(self):
        """The editable labels layer (the one of the first pane shown)."""
        return self._master

    @property
    def label_value(self) -> int:
        return self._label_value

    def set_label_value(self, value: int) -> None:
        """Structure to paint: 1 canal/CSF, 2 cord/WM, 3 GM, 4/5 horns, 6 commissure, 7 lesion."""
        value = int(value)
        if not 1 <= value <= LESION_VALUE:
            raise ValueError(f"label value {value} outside 1..{LESION_VALUE}")
        self._label_value = value
        for pane in self.panes:
            pane.labels.selected_label = value
        if self._tool == "eraser":
            self.set_tool("brush")
        self.label_value_changed.emit(value)

    @property
    def tool(self) -> str:
        return self._tool

    def set_tool(self, tool: str) -> None:
        """``brush``, ``eraser``, ``fill``, ``polygon`` (or ``pan``, ``pick``)."""
        if tool not in TOOLS:
            raise ValueError(f"unknown tool {tool!r}; one of {sorted(TOOLS)}")
        self._tool = tool
        if self._master is not None:
            self.viewer.layers.selection.active = self._master
            self._master.mode = TOOLS[tool]
        self.tool_changed.emit(tool)

    @property
    def brush_size(self) -> int:
        return self._brush_size

    def set_brush_size(self, size: int) -> None:
        self._brush_size = max(1, int(size))
        for pane in self.panes:
            pane.labels.brush_size = self._brush_size
        self.brush_size_changed.emit(self._brush_size)

    # ------------------------------------------------------------------------------------
    # Display options
    # ------------------------------------------------------------------------------------
    @property
    def contours(self) -> bool:
        """Labels drawn as contours (True) or filled (False)."""
        return self._contours

    @contours.setter
    def contours(self, value: bool) -> None:
        self._contours = bool(value)
        self._apply_contours()

    def _apply_contours(self) -> None:
        for pane in self.panes:
            pane.labels.contour = 1 if self._contours else 0
            pane.labels.opacity = self._labels_opacity()

    def _labels_opacity(self) -> float:
        if not self._labels_visible:
            return 0.0
        return 1.0 if self._contours else FILLED_OPACITY

    @property
    def labels_visible(self) -> bool:
        return self._labels_visible

    @labels_visible.setter
    def labels_visible(self, value: bool) -> None:
        # Opacity, not visibility: a hidden master would stop being sliced and painted.
        self._labels_visible = bool(value)
        self._apply_contours()

    # ------------------------------------------------------------------------------------
    # Reference raters and heat maps
    # ------------------------------------------------------------------------------------
    def add_reference_labels(self, who: str, label_map: LabelMap) -> None:
        """Show another rater's labels as read-only contours in one colour on every pane."""
        from napari.layers import Labels

        self._require_scan()
        overlay, _ = compose_overlay(label_map.dseg, label_map.lesion)
        if overlay.shape != self.overlay.shape:
            raise ValueError(f"reference labels of shape {overlay.shape} do not fit the scan")
        if who in self._reference_maps:
            self._reference_maps[who][...] = overlay
            for pane in self.panes:
                pane.references[who].refresh()
            return
        color = REFERENCE_COLORS[len(self.references) % len(REFERENCE_COLORS)]
        spare = next((name for name in self._reference_maps if _is_spare(name)), None)
        if spare is not None and not _is_spare(who):
            self._adopt_spare(spare, who, overlay, color)
            return
        self._reference_maps[who] = overlay
        self._reference_visible[who] = not _is_spare(who)
        cmap = single_color_colormap(color)
        scale = (1.0, *self.scan.pixel_spacing)

        def make(pane):
            layer = Labels(overlay, name=_reference_layer_name(who, pane), scale=scale, colormap=cmap,
                           opacity=0.9, visible=self._reference_shown_on(pane, who),
                           metadata={"score_pane": pane.key, "score_role": "reference",
                                                  "score_who": who, "score_color": color})
            layer.contour = 1
            layer.editable = False
            return layer

        self._insert_per_pane(lambda pane: pane.references, who, make)

    def remove_reference_labels(self, who: str, keep_layers: bool = False) -> None:
        """Stop showing ``who``'s contours. With ``keep_layers`` its layers stay, hidden and
        empty, for the next reference to take over (making 11 layers costs seconds)."""
        if who not in self._reference_maps:
            return
        if keep_layers:
            spare = _spare_name(self._reference_maps)
            array = self._reference_maps.pop(who)
            array[...] = 0
            self._reference_maps[spare] = array
            del self._reference_visible[who]
            self._reference_visible[spare] = False
            for pane in self.panes:
                layer = pane.references[spare] = pane.references.pop(who)
                layer.name = _reference_layer_name(spare, pane)
            self._apply_layout()
            return
        self._remove_per_pane(lambda pane: pane.references, who)
        del self._reference_maps[who]
        del self._reference_visible[who]

    def add_spare_references(self, count: int = 2) -> None:
        """Make ``count`` sets of hidden, empty contour layers now (during a warm-up), which
        the next :meth:`add_reference_labels` take over instead of making layers."""
        self._require_scan()
        empty = LabelMap(dseg=np.zeros_like(self.overlay), lesion=None)
        for _ in range(count):
            self.add_reference_labels(_spare_name(self._reference_maps), empty)

    def _resize_spares(self) -> None:
        for spare in [who for who in self._reference_maps if _is_spare(who)]:
            array = self._reference_maps[spare] = np.zeros_like(self.overlay)
            for pane in self.panes:
                pane.references[spare].data = array

    def _adopt_spare(self, spare: str, who: str, overlay: np.ndarray, color: str) -> None:
        array = self._reference_maps.pop(spare)
        array[...] = overlay
        self._reference_maps[who] = array
        del self._reference_visible[spare]
        self._reference_visible[who] = True
        cmap = single_color_colormap(color)
        for pane in self.panes:
            layer = pane.references.pop(spare)
            pane.references[who] = layer
            layer.name = _reference_layer_name(who, pane)
            layer.colormap = cmap
            layer.metadata.update(score_who=who, score_color=color)
        self._apply_layout()
        for pane in self.panes:
            pane.references[who].refresh()

    def set_reference_visible(self, who: str, visible: bool) -> None:
        self._reference_visible[who] = bool(visible)
        self._apply_layout()

    @property
    def references(self) -> list[str]:
        """Whose contours are shown or can be (spare layers are not listed)."""
        return [who for who in self._reference_maps if not _is_spare(who)]

    def reference_color(self, who: str) -> str:
        return self.panes[0].references[who].metadata["score_color"]

    def add_overlay(self, name: str, array: np.ndarray, colormap: str = "inferno",
                    opacity: float = 0.6) -> None:
        """A float map (e.g. ensemble disagreement ``[S, H, W]``) under the labels of every pane."""
        from napari.layers import Image

        self._require_scan()
        array = np.asarray(array, np.float32)
        if array.shape != self.overlay.shape:
            raise ValueError(f"overlay of shape {array.shape} does not fit the scan {self.overlay.shape}")
        high = float(np.nanmax(array)) if np.isfinite(array).any() else 1.0
        limits = (0.0, high if high > 0 else 1.0)
        if name in self._extra_arrays:
            self._extra_arrays[name][...] = array
            for pane in self.panes:
                pane.extras[name].contrast_limits = limits
                pane.extras[name].refresh()
            return
        self._extra_arrays[name] = array
        self._extra_visible[name] = True
        scale = (1.0, *self.scan.pixel_spacing)

        def make(pane):
            return Image(array, name=f"{name} {pane.title}", scale=scale, colormap=colormap,
                         opacity=opacity, blending="additive", contrast_limits=limits,
                         visible=self._pane_shown(pane),
                         metadata={"score_pane": pane.key, "score_role": "overlay", "score_name": name})

        self._insert_per_pane(lambda pane: pane.extras, name, make)

    def remove_overlay(self, name: str) -> None:
        if name not in self._extra_arrays:
            return
        self._remove_per_pane(lambda pane: pane.extras, name)
        del self._extra_arrays[name]
        del self._extra_visible[name]

    def set_overlay_visible(self, name: str, visible: bool) -> None:
        self._extra_visible[name] = bool(visible)
        self._apply_layout()

    def _insert_per_pane(self, group, name, make) -> None:
        # From the last pane back, so earlier indices stay valid; each goes under the labels.
        with self._scene_paused():
            for pane in reversed(self.panes):
                layer = make(pane)
                index = self.viewer.layers.index(pane.labels)
                self.viewer.layers.insert(index, layer)
                self._lighten([layer])
                group(pane)[name] = layer
            self._update_stride()
            self._apply_layout()

    def _remove_per_pane(self, group, name) -> None:
        with self._scene_paused():
            for pane in self.panes:
                layer = group(pane).pop(name)
                self.viewer.layers.remove(layer)
            self._update_stride()
            self._apply_layout()

    # ------------------------------------------------------------------------------------
    # Layout, slice, camera
    # ------------------------------------------------------------------------------------
    @property
    def layout(self) -> str:
        return self._layout

    def set_layout(self, preset: str, pane: str | None = None) -> None:
        """``all`` (grid of every pane), ``working`` (avg 1-5 and 6-8), ``single`` (one pane).

        ``pane`` picks the pane of ``single`` (a key such as ``"1-5"``, ``"TI3"``, ``"all"``).
        """
        if preset not in LAYOUTS:
            raise ValueError(f"unknown layout {preset!r}; one of {LAYOUTS}")
        if pane is not None:
            if pane not in self.pane_keys:
                raise ValueError(f"unknown pane {pane!r}; one of {self.pane_keys}")
            self._single_pane = pane
        self._layout = preset
        self._apply_layout()
        self.viewer.reset_view()

    @property
    def pane_keys(self) -> list[str]:
        return [pane.key for pane in self.panes]

    def visible_panes(self) -> list[Pane]:
        shown = self._shown_keys(self.pane_keys)
        return [pane for pane in self.panes if pane.key in shown]

    def _shown_keys(self, keys: list[str]) -> set[str]:
        """The pane keys the current layout shows, out of ``keys``."""
        if self._layout == "all" or not keys:
            return set(keys)
        if self._layout == "working":
            return set([key for key in keys if key in WORKING_PANES] or keys[:1])
        return {self._single_pane} if self._single_pane in keys else set(keys[:1])

    def _pane_shown(self, pane: Pane) -> bool:
        return pane.key in self._shown_keys(self.pane_keys)

    def _reference_shown_on(self, pane: Pane, who: str, shown: set[str] | None = None) -> bool:
        """Other raters' contours go on the averages, where raters compare labels, and on
        every pane of a layout of one or two panes. On all 11 panes they would crowd the
        inversion images and make every slice change slice 11 more layers."""
        shown = self._shown_keys(self.pane_keys) if shown is None else shown
        return (pane.key in shown and self._reference_visible.get(who, True)
                and (pane.key in REFERENCE_PANES or len(shown) <= 2))

    def _apply_layout(self) -> None:
        with self._scene_paused():
            self._set_visibility()
        self._select_master()

    def _set_visibility(self) -> None:
        shown = {pane.key for pane in self.visible_panes()}
        for pane in self.panes:
            on = pane.key in shown
            wanted = {pane.image: on, pane.labels: on}
            wanted.update({layer: self._reference_shown_on(pane, who, shown)
                           for who, layer in pane.references.items()})
            wanted.update({layer: on and self._extra_visible.get(name, True)
                           for name, layer in pane.extras.items()})
            for layer, visible in wanted.items():
                if layer.visible != visible:  # every change re-lays out the whole grid
                    layer.visible = visible
        grid = self.viewer.canvas.grid
        if grid.enabled != (len(shown) > 1):
            grid.enabled = len(shown) > 1

    def _select_master(self) -> None:
        """The labels layer of the first visible pane becomes the editable, active one."""
        visible = self.visible_panes()
        if not visible:
            return
        new = visible[0].labels
        old = self._master
        if old is not None and old is not new:
            old.editable = False
        self._master = new
        new.editable = True
        new.brush_size = self._brush_size
        new.selected_label = self._label_value
        self.viewer.layers.selection.active = new
        new.mode = TOOLS[self._tool]

    @property
    def current_slice(self) -> int:
        return int(self.viewer.dims.current_step[0])

    def set_slice(self, index: int) -> None:
        self._require_scan()
        index = int(np.clip(index, 0, self.scan.n_slices - 1))
        self.viewer.dims.set_current_step(0, index)

    def _on_step(self, event=None) -> None:
        if self._loading or self.scan is None:
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
        s = self.current_slice if slice_index is None else slice_index
        mask = self.overlay[s] > 0
        if not mask.any():
            mask = (self.overlay > 0).any(axis=0)
        if not mask.any():
            return None
        rows, cols = np.nonzero(mask)
        return float(rows.min()), float(cols.min()), float(rows.max() + 1), float(cols.max() + 1)

    def zoom_to_cord(self, margin: float = 0.4, field_mm: float = 30.0, box: tuple | None = None) -> None:
        """Centre and zoom every pane on the canal (labels' box plus ``margin`` of its size on
        each side), or on the image centre with a ``field_mm`` field when there are no labels.

        ``box`` (``(row0, col0, row1, col1)`` pixels) frames another region instead, e.g. the
        canal of other raters' labels while this rater has none (see :func:`frame_box`).
        """
        self._require_scan()
        box = self.cord_box() if box is None else box
        rows, cols = self.viewer.canvas.grid.actual_shape(self.viewer.layers)
        canvas_h, canvas_w = self.viewer.canvas.size
        centre, zoom = frame_box(box, self.scan.pixel_spacing, self.scan.shape_hw,
                                 (canvas_h / rows, canvas_w / cols), margin, field_mm)
        camera = self.viewer.scene.camera
        camera.center = (camera.center[0], *centre) if len(camera.center) == 3 else centre
        camera.zoom = zoom

    def _require_scan(self) -> None:
        if self.scan is None:
            raise RuntimeError("no scan loaded: call load_scan first")


_SPARE_PREFIX = "\x00spare"


def frame_box(box: tuple | None, pixel_spacing: tuple[float, float], shape_hw: tuple[int, int],
              cell_size: tuple[float, float], margin: float = 0.4,
              field_mm: float = 30.0) -> tuple[tuple[float, float], float]:
    """Camera ``(centre (y, x) in mm, zoom in screen pixels per mm)`` showing ``box``.

    ``box`` is ``(row0, col0, row1, col1)`` in pixels, shown with ``margin`` of its size on
    each side, in a grid cell of ``cell_size`` (height, width) screen pixels; without a box,
    the image centre with a ``field_mm`` field.

    Examples
    --------
    >>> frame_box((10, 20, 30, 40), (0.5, 0.5), (64, 64), (300, 600), margin=0.5)
    ((10.0, 15.0), 15.0)
    >>> frame_box(None, (1.0, 1.0), (64, 64), (300, 300))
    ((32.0, 32.0), 10.0)
    """
    dy, dx = pixel_spacing
    if box is None:
        h, w = shape_hw
        centre = (h / 2 * dy, w / 2 * dx)
        extent = (field_mm, field_mm)
    else:
        r0, c0, r1, c1 = box
        centre = ((r0 + r1) / 2 * dy, (c0 + c1) / 2 * dx)
        extent = ((r1 - r0) * dy * (1 + 2 * margin), (c1 - c0) * dx * (1 + 2 * margin))
    zoom = min(cell_size[0] / max(extent[0], 1e-3), cell_size[1] / max(extent[1], 1e-3))
    return (float(centre[0]), float(centre[1])), float(zoom)


def _is_spare(who: str) -> bool:
    return who.startswith(_SPARE_PREFIX)


def _reference_layer_name(who: str, pane: Pane) -> str:
    return f"(spare contours) {pane.title}" if _is_spare(who) else f"{who} {pane.title}"


def _spare_name(taken) -> str:
    return next(f"{_SPARE_PREFIX}{i}" for i in range(len(taken) + 1) if f"{_SPARE_PREFIX}{i}" not in taken)
