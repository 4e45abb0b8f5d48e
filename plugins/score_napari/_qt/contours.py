"""Layers from other sources on every pane: other raters' contours and heat maps.

Other raters' labels (and the automatic result, the consensus, a phantom's truth) show
as read-only outlines in the paper's colours per structure (:func:`outline_colors`;
automatic sources lighter), thin at any zoom: the box around each source's labels is
shown on a grid F times finer than the scan (F from :data:`FINE_STEPS`, chosen by the
camera's zoom), so a one-fine-pixel outline stays about :data:`LINE_PX` screen pixels
wide (a one-pixel contour on the scan's own grid is many screen pixels wide at 400 %
zoom and hides the gray matter under three raters, and breaks into speckle when zoomed out). Float maps such as the
ensemble's disagreement show as heat maps under the labels. Making a layer on 11 panes
costs seconds, so contour
layers no longer needed stay as hidden, empty *spares* that the next reference takes
over (:meth:`ReferenceContours.add` and :meth:`ReferenceContours.remove`).
"""

from __future__ import annotations

from functools import partial
from typing import Callable

import numpy as np

from score_gui.editing import compose_overlay
from score_gui.labels import LabelMap
from score_napari._qt import _napari_compat as compat
from score_napari._qt.display import is_automatic, outline_colormap, source_color
from score_napari._qt.panes import layer_scale

_SPARE_PREFIX = "\x00spare"

FINE_STEPS = (2, 4, 8, 16)
"""Outline grids: scan pixels split into F x F, F chosen from these by the zoom."""

LINE_PX = 1.5
"""Target outline width on screen, in screen pixels (at most; coarser at extreme zooms)."""

MARGIN_PX = 2
"""Scan pixels kept around a source's labels in its outline grid."""

DEFAULT_OPACITY = 0.9


def fine_factor(zoom: float, pixel_mm: float) -> int:
    """The outline grid's split F for a one-fine-pixel outline about :data:`LINE_PX` wide.

    ``zoom`` is the camera's screen pixels per mm.

    >>> fine_factor(zoom=3.0, pixel_mm=0.67), fine_factor(zoom=26.0, pixel_mm=0.67), fine_factor(zoom=104.0, pixel_mm=0.67)
    (2, 16, 16)
    >>> fine_factor(zoom=8.0, pixel_mm=0.67)
    4
    """
    wanted = zoom * pixel_mm / LINE_PX
    return next((step for step in FINE_STEPS if step >= wanted), FINE_STEPS[-1])


def labels_box(overlay: np.ndarray, margin: int = MARGIN_PX) -> tuple[int, int, int, int]:
    """``(row0, col0, row1, col1)``: every slice's labels plus ``margin``, inside the image.

    >>> labels = np.zeros((2, 10, 10), np.uint8); labels[1, 4:6, 3:5] = 1
    >>> labels_box(labels)
    (2, 1, 8, 7)
    >>> labels_box(np.zeros((1, 4, 4), np.uint8))
    (0, 0, 1, 1)
    """
    rows = np.flatnonzero(overlay.any(axis=(0, 2)))
    cols = np.flatnonzero(overlay.any(axis=(0, 1)))
    if not rows.size:
        return 0, 0, 1, 1
    h, w = overlay.shape[1:]
    return (int(max(rows[0] - margin, 0)), int(max(cols[0] - margin, 0)),
            int(min(rows[-1] + 1 + margin, h)), int(min(cols[-1] + 1 + margin, w)))


def fine_grid(overlay: np.ndarray, box: tuple, fine: int) -> np.ndarray:
    """The ``box`` of ``[S, H, W]`` labels with every pixel split ``fine`` x ``fine``.

    >>> fine_grid(np.array([[[1, 2]]], np.uint8), (0, 0, 1, 2), 2).tolist()
    [[[1, 1, 2, 2], [1, 1, 2, 2]]]
    """
    r0, c0, r1, c1 = box
    crop = overlay[:, r0:r1, c0:c1]
    return np.repeat(np.repeat(crop, fine, axis=1), fine, axis=2)


def fine_placement(scan, box: tuple, fine: int) -> tuple[tuple, tuple]:
    """``(scale, translate)`` putting a :func:`fine_grid` layer exactly over the scan's pixels."""
    _, sy, sx = layer_scale(scan)
    offset = 0.5 / fine - 0.5      # fine pixel 0's centre inside the box's first scan pixel
    return (1.0, sy / fine, sx / fine), (0.0, (box[0] + offset) * sy, (box[1] + offset) * sx)


def is_spare(who: str) -> bool:
    """Whether ``who`` names a spare set of contour layers (no rater has such a name)."""
    return who.startswith(_SPARE_PREFIX)


def spare_name(taken) -> str:
    """A spare's name not in ``taken``."""
    return next(f"{_SPARE_PREFIX}{i}" for i in range(len(taken) + 1) if f"{_SPARE_PREFIX}{i}" not in taken)


def reference_layer_name(who: str, pane) -> str:
    return f"(spare contours) {pane.title}" if is_spare(who) else f"{who} {pane.title}"


class _PerPaneLayers:
    """What both kinds share: the panes, the layout and the scan being shown. Each kind is a
    :class:`~score_napari._qt.panes.PaneLayerGroup` of the pool.

    Parameters
    ----------
    pool : PanePool
    layout : PaneLayout
    scan : callable
        Returns the scan shown (raises without one).
    overlay : callable
        Returns the working labels ``[S, H, W]`` shown (the shape and type to match).
    relayout : callable
        Shows and hides every layer for the current layout.
    """

    def __init__(self, pool, layout, scan: Callable, overlay: Callable, relayout: Callable):
        self.pool = pool
        self.layout = layout
        self.scan = scan
        self.overlay = overlay
        self.relayout = relayout
        pool.groups.append(self)        # a pane made later gets this kind's layers too


class ReferenceContours(_PerPaneLayers):
    """Other sources' labels as read-only outlines on every pane (see :class:`_PerPaneLayers`).

    Each source keeps its labels on the scan grid (:attr:`sources`) and, for display, the
    box around them on the outline grid (:attr:`maps`, shared by the source's layers on
    every pane), remade when the zoom asks for another split (:meth:`fit_line_width`).
    """

    def __init__(self, *args):
        super().__init__(*args)
        self.sources: dict[str, np.ndarray] = {}    # who -> labels [S, H, W], lesions as 7
        self.maps: dict[str, np.ndarray] = {}       # who -> outline grid of its box
        self.boxes: dict[str, tuple] = {}
        self.visible: dict[str, bool] = {}
        self.opacity = DEFAULT_OPACITY
        self.fine = FINE_STEPS[0]

    @property
    def names(self) -> list[str]:
        """Whose contours are shown or can be (spare layers are not listed)."""
        return [who for who in self.maps if not is_spare(who)]

    def wanted(self, who: str) -> bool:
        """Whether the user wants ``who``'s contours shown (the layout decides where)."""
        return self.visible.get(who, True)

    def color(self, who: str) -> str:
        """The colour that names ``who`` in legends (:func:`source_color`)."""
        return source_color(who)

    def add(self, who: str, label_map: LabelMap) -> None:
        """Show ``who``'s labels as outlines (in place when already shown)."""
        overlay, _ = compose_overlay(label_map.dseg, label_map.lesion)
        if overlay.shape != self.overlay().shape:
            raise ValueError(f"reference labels of shape {overlay.shape} do not fit the scan")
        if who in self.maps:
            self.sources[who] = overlay
            self._regrid(who)
            return
        spare = next((name for name in self.maps if is_spare(name)), None)
        if spare is not None and not is_spare(who):
            self._adopt_spare(spare, who, overlay)
            return
        self._make_layers(who, overlay)

    def set_opacity(self, opacity: float) -> None:
        """Opacity of every source's outlines (0 to 1)."""
        self.opacity = float(np.clip(opacity, 0.0, 1.0))
        for pane in self.pool.panes:
            for layer in pane.references.values():
                layer.opacity = self.opacity

    def fit_line_width(self, zoom: float) -> int:
        """Keep outlines about :data:`LINE_PX` wide on screen at camera ``zoom`` (screen px
        per mm): a finer outline grid when zooming in, a coarser one when zooming out."""
        try:
            pixel_mm = float(min(self.scan().pixel_spacing))
        except Exception:     # no scan yet (warm-up): nothing to fit
            return self.fine
        fine = fine_factor(zoom, pixel_mm)
        if fine != self.fine:
            self.fine = fine
            self.place()
        return fine

    def match_zoom(self, zoom: float) -> None:
        """Choose the outline grid for camera ``zoom`` before a scan's sources are added
        (they are then gridded once; shown sources are remade by :meth:`fit_line_width`)."""
        try:
            self.fine = fine_factor(zoom, float(min(self.scan().pixel_spacing)))
        except Exception:     # no scan yet: nothing to match
            pass

    def place(self) -> None:
        """Remake every source's outline grid (the zoom or the scan's pixel size changed).

        Spares are empty: theirs is remade when a source takes them over."""
        for who in [name for name in self.maps if not is_spare(name)]:
            self._regrid(who)

    def _regrid(self, who: str) -> None:
        overlay = self.sources[who]
        box = self.boxes[who] = labels_box(overlay)
        array = self.maps[who] = fine_grid(overlay, box, self.fine)
        scale, translate = fine_placement(self.scan(), box, self.fine)
        layers = [pane.references[who] for pane in self.pool.panes if who in pane.references]
        # The grid lies inside the scan: the viewer's extent needs one update, not 33.
        with compat.one_extent_update(self.pool.viewer, layers):
            for layer in layers:
                if tuple(layer.scale) != scale or tuple(layer.translate) != translate:
                    layer.scale, layer.translate = scale, translate
                layer.data = array

    def group_of(self, pane) -> dict:
        return pane.references

    def layer_names(self) -> list[str]:
        return list(self.maps)     # spares included: every pane has their layers

    def layer_for(self, who: str, pane):
        from napari.layers import Labels

        scale, translate = fine_placement(self.scan(), self.boxes[who], self.fine)
        layer = Labels(self.maps[who], name=reference_layer_name(who, pane), scale=scale, translate=translate,
                       colormap=outline_colormap(is_automatic(who)), opacity=self.opacity,
                       visible=self.layout.reference_shown_on(pane, self.wanted(who)),
                       metadata={"score_pane": pane.key, "score_role": "reference", "score_who": who})
        layer.contour = 1
        layer.editable = False
        compat.hide_editing_overlays(layer)
        return layer

    def _make_layers(self, who: str, overlay: np.ndarray) -> None:
        self.sources[who] = overlay
        self.boxes[who] = labels_box(overlay)
        self.maps[who] = fine_grid(overlay, self.boxes[who], self.fine)
        self.visible[who] = not is_spare(who)
        self.pool.insert_per_pane(self.group_of, who, partial(self.layer_for, who), then=self.relayout)

    def remove(self, who: str, keep_layers: bool = False) -> None:
        """Stop showing ``who``'s contours. With ``keep_layers`` its layers stay, hidden and
        empty, for the next reference to take over (making 11 layers costs seconds)."""
        if who not in self.maps:
            return
        if keep_layers:
            self._make_spare(who)
            return
        self.pool.remove_per_pane(self.group_of, who, then=self.relayout)
        for table in (self.maps, self.sources, self.boxes, self.visible):
            del table[who]

    def _rename(self, old: str, new: str) -> None:
        for table in (self.maps, self.sources, self.boxes, self.visible):
            table[new] = table.pop(old)
        for pane in self.pool.panes:
            layer = pane.references[new] = pane.references.pop(old)
            layer.name = reference_layer_name(new, pane)

    def _make_spare(self, who: str) -> None:
        spare = spare_name(self.maps)
        self._rename(who, spare)
        self.visible[spare] = False
        self.sources[spare] = np.zeros_like(self.sources[spare])
        self._regrid(spare)
        self.relayout()

    def _adopt_spare(self, spare: str, who: str, overlay: np.ndarray) -> None:
        self._rename(spare, who)
        self.visible[who] = True
        self.sources[who] = overlay
        cmap = outline_colormap(is_automatic(who))
        for pane in self.pool.panes:
            layer = pane.references[who]
            layer.colormap = cmap
            layer.metadata.update(score_who=who)
        self._regrid(who)
        self.relayout()

    def add_spares(self, count: int) -> None:
        """Make ``count`` sets of hidden, empty contour layers, for later references."""
        empty = LabelMap(dseg=np.zeros_like(self.overlay()), lesion=None)
        for _ in range(count):
            self.add(spare_name(self.maps), empty)

    def resize_spares(self) -> None:
        """Give the spares empty labels of the new scan's shape."""
        for spare in [who for who in self.maps if is_spare(who)]:
            self.sources[spare] = np.zeros_like(self.overlay())
            self._regrid(spare)

    def set_visible(self, who: str, visible: bool) -> None:
        self.visible[who] = bool(visible)
        self.relayout()

    def forget_previous_scan(self, reuse: bool, same_grid: bool, kept: set[str]) -> None:
        """Before another scan shows: without reusable panes every contour layer goes; with
        them, references not in ``kept`` (or all, when the grid changes) become spares."""
        for who in list(self.maps):
            if not reuse:
                self.remove(who)
            elif not is_spare(who) and not (same_grid and who in kept):
                self.remove(who, keep_layers=True)


class HeatMaps(_PerPaneLayers):
    """Float maps under the labels of every pane (see :class:`_PerPaneLayers`)."""

    def __init__(self, *args):
        super().__init__(*args)
        self.arrays: dict[str, np.ndarray] = {}
        self.styles: dict[str, tuple] = {}       # name -> (colormap, opacity, contrast limits)
        self.visible: dict[str, bool] = {}

    def wanted(self, name: str) -> bool:
        return self.visible.get(name, True)

    def add(self, name: str, array: np.ndarray, colormap: str = "inferno", opacity: float = 0.6) -> None:
        """Show ``array`` ``[S, H, W]`` (e.g. ensemble disagreement) on every pane, from 0 to
        its maximum (in place when ``name`` is shown already)."""
        array = np.asarray(array, np.float32)
        if array.shape != self.overlay().shape:
            raise ValueError(f"overlay of shape {array.shape} does not fit the scan {self.overlay().shape}")
        high = float(np.nanmax(array)) if np.isfinite(array).any() else 1.0
        limits = (0.0, high if high > 0 else 1.0)
        if name in self.arrays:
            self.arrays[name][...] = array
            self.styles[name] = (*self.styles[name][:2], limits)
            for pane in self.pool.panes:
                pane.extras[name].contrast_limits = limits
                pane.extras[name].refresh()
            return
        self._make_layers(name, array, colormap, opacity, limits)

    def group_of(self, pane) -> dict:
        return pane.extras

    def layer_names(self) -> list[str]:
        return list(self.arrays)

    def layer_for(self, name: str, pane):
        from napari.layers import Image

        colormap, opacity, limits = self.styles[name]
        return Image(self.arrays[name], name=f"{name} {pane.title}", scale=layer_scale(self.scan()),
                     colormap=colormap, opacity=opacity, blending="additive", contrast_limits=limits,
                     visible=self.layout.pane_shown(pane),
                     metadata={"score_pane": pane.key, "score_role": "overlay", "score_name": name})

    def _make_layers(self, name, array, colormap, opacity, limits) -> None:
        self.arrays[name] = array
        self.styles[name] = (colormap, opacity, limits)
        self.visible[name] = True
        self.pool.insert_per_pane(self.group_of, name, partial(self.layer_for, name), then=self.relayout)

    def remove(self, name: str) -> None:
        if name not in self.arrays:
            return
        self.pool.remove_per_pane(self.group_of, name, then=self.relayout)
        for table in (self.arrays, self.styles, self.visible):
            del table[name]

    def remove_all(self) -> None:
        for name in list(self.arrays):
            self.remove(name)

    def set_visible(self, name: str, visible: bool) -> None:
        self.visible[name] = bool(visible)
        self.relayout()
