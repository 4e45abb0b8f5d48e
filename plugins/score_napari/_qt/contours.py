"""Layers from other sources on every pane: other raters' contours and heat maps.

Other raters' labels (and the automatic result, the consensus, a phantom's truth) show
as read-only contours in one colour each; float maps such as the ensemble's disagreement
show as heat maps under the labels. Making a layer on 11 panes costs seconds, so contour
layers no longer needed stay as hidden, empty *spares* that the next reference takes
over (:meth:`ReferenceContours.add` and :meth:`ReferenceContours.remove`).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from score_gui.editing import compose_overlay
from score_gui.labels import LabelMap
from score_napari._qt.display import REFERENCE_COLORS, single_color_colormap
from score_napari._qt.panes import layer_scale

_SPARE_PREFIX = "\x00spare"


def is_spare(who: str) -> bool:
    """Whether ``who`` names a spare set of contour layers (no rater has such a name)."""
    return who.startswith(_SPARE_PREFIX)


def spare_name(taken) -> str:
    """A spare's name not in ``taken``."""
    return next(f"{_SPARE_PREFIX}{i}" for i in range(len(taken) + 1) if f"{_SPARE_PREFIX}{i}" not in taken)


def reference_layer_name(who: str, pane) -> str:
    return f"(spare contours) {pane.title}" if is_spare(who) else f"{who} {pane.title}"


class _PerPaneLayers:
    """What both kinds share: the panes, the layout and the scan being shown.

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


class ReferenceContours(_PerPaneLayers):
    """Other sources' labels as read-only contours on every pane (see :class:`_PerPaneLayers`)."""

    def __init__(self, *args):
        super().__init__(*args)
        self.maps: dict[str, np.ndarray] = {}       # who -> overlay shared by its layers
        self.visible: dict[str, bool] = {}

    @property
    def names(self) -> list[str]:
        """Whose contours are shown or can be (spare layers are not listed)."""
        return [who for who in self.maps if not is_spare(who)]

    def wanted(self, who: str) -> bool:
        """Whether the user wants ``who``'s contours shown (the layout decides where)."""
        return self.visible.get(who, True)

    def color(self, who: str) -> str:
        return self.pool.panes[0].references[who].metadata["score_color"]

    def add(self, who: str, label_map: LabelMap) -> None:
        """Show ``who``'s labels as contours in one colour (in place when already shown)."""
        overlay, _ = compose_overlay(label_map.dseg, label_map.lesion)
        if overlay.shape != self.overlay().shape:
            raise ValueError(f"reference labels of shape {overlay.shape} do not fit the scan")
        if who in self.maps:
            self.maps[who][...] = overlay
            for pane in self.pool.panes:
                pane.references[who].refresh()
            return
        color = REFERENCE_COLORS[len(self.names) % len(REFERENCE_COLORS)]
        spare = next((name for name in self.maps if is_spare(name)), None)
        if spare is not None and not is_spare(who):
            self._adopt_spare(spare, who, overlay, color)
            return
        self._make_layers(who, overlay, color)

    def _make_layers(self, who: str, overlay: np.ndarray, color: str) -> None:
        from napari.layers import Labels

        self.maps[who] = overlay
        self.visible[who] = not is_spare(who)
        cmap = single_color_colormap(color)
        scale = layer_scale(self.scan())

        def make(pane):
            layer = Labels(overlay, name=reference_layer_name(who, pane), scale=scale, colormap=cmap,
                           opacity=0.9, visible=self.layout.reference_shown_on(pane, self.wanted(who)),
                           metadata={"score_pane": pane.key, "score_role": "reference",
                                     "score_who": who, "score_color": color})
            layer.contour = 1
            layer.editable = False
            return layer

        self.pool.insert_per_pane(lambda pane: pane.references, who, make, then=self.relayout)

    def remove(self, who: str, keep_layers: bool = False) -> None:
        """Stop showing ``who``'s contours. With ``keep_layers`` its layers stay, hidden and
        empty, for the next reference to take over (making 11 layers costs seconds)."""
        if who not in self.maps:
            return
        if keep_layers:
            self._make_spare(who)
            return
        self.pool.remove_per_pane(lambda pane: pane.references, who, then=self.relayout)
        del self.maps[who]
        del self.visible[who]

    def _make_spare(self, who: str) -> None:
        spare = spare_name(self.maps)
        array = self.maps.pop(who)
        array[...] = 0
        self.maps[spare] = array
        del self.visible[who]
        self.visible[spare] = False
        for pane in self.pool.panes:
            layer = pane.references[spare] = pane.references.pop(who)
            layer.name = reference_layer_name(spare, pane)
        self.relayout()

    def _adopt_spare(self, spare: str, who: str, overlay: np.ndarray, color: str) -> None:
        array = self.maps.pop(spare)
        array[...] = overlay
        self.maps[who] = array
        del self.visible[spare]
        self.visible[who] = True
        cmap = single_color_colormap(color)
        for pane in self.pool.panes:
            layer = pane.references.pop(spare)
            pane.references[who] = layer
            layer.name = reference_layer_name(who, pane)
            layer.colormap = cmap
            layer.metadata.update(score_who=who, score_color=color)
        self.relayout()
        for pane in self.pool.panes:
            pane.references[who].refresh()

    def add_spares(self, count: int) -> None:
        """Make ``count`` sets of hidden, empty contour layers, for later references."""
        empty = LabelMap(dseg=np.zeros_like(self.overlay()), lesion=None)
        for _ in range(count):
            self.add(spare_name(self.maps), empty)

    def resize_spares(self) -> None:
        """Give the spares arrays of the new scan's shape."""
        for spare in [who for who in self.maps if is_spare(who)]:
            array = self.maps[spare] = np.zeros_like(self.overlay())
            for pane in self.pool.panes:
                pane.references[spare].data = array

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
            for pane in self.pool.panes:
                pane.extras[name].contrast_limits = limits
                pane.extras[name].refresh()
            return
        self._make_layers(name, array, colormap, opacity, limits)

    def _make_layers(self, name, array, colormap, opacity, limits) -> None:
        from napari.layers import Image

        self.arrays[name] = array
        self.visible[name] = True
        scale = layer_scale(self.scan())

        def make(pane):
            return Image(array, name=f"{name} {pane.title}", scale=scale, colormap=colormap,
                         opacity=opacity, blending="additive", contrast_limits=limits,
                         visible=self.layout.pane_shown(pane),
                         metadata={"score_pane": pane.key, "score_role": "overlay", "score_name": name})

        self.pool.insert_per_pane(lambda pane: pane.extras, name, make, then=self.relayout)

    def remove(self, name: str) -> None:
        if name not in self.arrays:
            return
        self.pool.remove_per_pane(lambda pane: pane.extras, name, then=self.relayout)
        del self.arrays[name]
        del self.visible[name]

    def remove_all(self) -> None:
        for name in list(self.arrays):
            self.remove(name)

    def set_visible(self, name: str, visible: bool) -> None:
        self.visible[name] = bool(visible)
        self.relayout()
