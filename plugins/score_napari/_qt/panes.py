"""The panes and their layers: one grid cell per inversion image and average.

napari 0.9 draws each layer in one grid cell only, so every pane has its own layers,
``[image, heat maps..., reference contours..., labels]`` (the grid's stride). Making,
adding, removing, showing or hiding a layer makes napari lay the whole grid out again,
so :class:`PanePool` makes the layers once and then swaps data into them, and batches
changes of the layer list inside :meth:`PanePool.scene_paused`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np

from score_gui.scan import Scan
from score_napari._qt import _napari_compat as compat
from score_napari._qt.display import FILLED_OPACITY, PANE_TITLES, display_range, labels_colormap

PaneSpec = tuple[str, str, np.ndarray]
"""``(key, title, [S, H, W] image)`` of one pane."""


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
        """The pane's layers in drawing order (bottom first)."""
        return [self.image, *self.extras.values(), *self.references.values(), self.labels]


class PaneLayerGroup(Protocol):
    """A kind of layer that every pane has one of per name (other sources' contours, heat
    maps), so that a pane made late gets them too (:meth:`PanePool.make_next`)."""

    def group_of(self, pane: Pane) -> dict:
        """This kind's layers in ``pane``, by name."""

    def layer_names(self) -> list[str]:
        """The names of this kind's layers, each on every pane."""

    def layer_for(self, name: str, pane: Pane):
        """A new layer ``name`` for ``pane``."""


def pane_images(scan: Scan) -> list[PaneSpec]:
    """``(key, title, [S, H, W] image)`` per pane: inversion images, then the averages.

    A one-image scan (e.g. T2*-weighted) has a single pane, ``image``.
    """
    if scan.n_images == 1:
        return [("image", scan.image_titles()[0], scan.images[:, 0])]
    panes = [(f"TI{i + 1}", title, scan.images[:, i]) for i, title in enumerate(scan.image_titles())]
    for key, image in scan.averages().items():
        panes.append((key, PANE_TITLES.get(key, f"avg {key}"), image))
    return panes


def layer_scale(scan: Scan) -> tuple[float, float, float]:
    """World scale of a scan's ``[S, H, W]`` layers: one per slice, mm in-plane."""
    return (1.0, *scan.pixel_spacing)


class PanePool:
    """The panes of one napari viewer and the layers they own.

    The panes a layout shows are made first; the others can be made later, one per
    event-loop turn (:attr:`pending`), with whatever scan, labels and per-pane layers
    (:attr:`groups`) the viewer shows by then, so a scan can open before every pane exists.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer whose layer list the panes fill (and own).

    Attributes
    ----------
    planned : list of str
        Every pane's key, in grid order (made or not).
    pending : list of PaneSpec
        The panes still to make, first to last.
    groups : list of PaneLayerGroup
        Per-pane layer kinds (contours, heat maps) that a pane made late must have too.
    """

    def __init__(self, viewer):
        self.viewer = viewer
        self.panes: list[Pane] = []
        self.planned: list[str] = []
        self.pending: list[PaneSpec] = []
        self.groups: list[PaneLayerGroup] = []
        self._scan: Scan | None = None      # what pending panes show: scan, labels, tissue
        self._overlay = self._under = None
        self._prepare_labels: Callable | None = None
        self._made_visible = True

    @property
    def keys(self) -> list[str]:
        """The keys of the panes made, in grid order."""
        return [pane.key for pane in self.panes]

    def pane(self, key: str) -> Pane:
        return next(pane for pane in self.panes if pane.key == key)

    def holds(self, specs: list[PaneSpec]) -> bool:
        """Whether the panes are (or will be, when the pending ones are made) those of
        ``specs`` and all their layers are in the viewer (then a scan can swap its data
        into them)."""
        return (bool(self.panes) and self.planned == [key for key, _, _ in specs]
                and all(layer in self.viewer.layers for pane in self.panes for layer in pane.layers()))

    # -- batching ----------------------------------------------------------------------------
    def scene_paused(self):
        """Lay the grid out once at the end instead of once per added or hidden layer
        (napari re-lays out every cell for every layer: quadratic in the layer count)."""
        return compat.scene_paused(self.viewer, self.scene_signature)

    def scene_signature(self) -> tuple:
        """What decides the grid's lay-out: grid mode, stride, layers and their visibility."""
        grid = self.viewer.canvas.grid
        return (grid.enabled, grid.stride, tuple((id(layer), layer.visible) for layer in self.viewer.layers))

    def vispy_canvas(self):
        return compat.vispy_canvas(self.viewer)

    def lighten(self, layers) -> None:
        """Spare new layers napari's per-layer costs (:mod:`._napari_compat`)."""
        canvas = self.vispy_canvas()
        for layer in layers:
            compat.lighten_layer(layer, canvas)
            compat.slice_when_visible(layer, self.viewer)

    def update_stride(self) -> None:
        """One grid cell per pane: the stride is the number of layers a pane has."""
        self.viewer.canvas.grid.stride = len(self.panes[0].layers()) if self.panes else 1

    # -- making and filling the layers -------------------------------------------------------
    def build_steps(self, scan: Scan, specs: list[PaneSpec], shown: set[str], overlay: np.ndarray,
                    under: np.ndarray, prepare_labels: Callable):
        """Replace every layer of the viewer with the panes of ``specs``, yielding after each
        pane; the panes in ``shown`` first. ``prepare_labels`` readies each labels layer
        for editing. Stopping early leaves the rest :attr:`pending` (:meth:`make_next`)."""
        self.start_building(scan, specs, shown, overlay, under, prepare_labels)
        while self.make_next(shown) is not None:
            yield

    def start_building(self, scan: Scan, specs: list[PaneSpec], shown: set[str], overlay: np.ndarray,
                       under: np.ndarray, prepare_labels: Callable, visible: bool = True) -> None:
        """Remove every layer and plan the panes of ``specs``, those in ``shown`` first (and
        made hidden unless ``visible``)."""
        self.viewer.canvas.grid.enabled = False   # one grid lay-out at the end, not one per layer
        self.viewer.layers.clear()
        self.panes = []
        self.planned = [key for key, _, _ in specs]
        self.pending = sorted(specs, key=lambda spec: spec[0] not in shown)   # stable: grid order kept
        self._scan, self._overlay, self._under = scan, overlay, under
        self._prepare_labels = prepare_labels
        self._made_visible = visible

    def prioritise(self, keys) -> None:
        """Make the pending panes of ``keys`` first."""
        self.pending.sort(key=lambda spec: spec[0] not in keys)

    def make_next(self, shown: set[str]) -> Pane | None:
        """Make the next pending pane (shown when its key is in ``shown``) with the layers
        of every group, in its place in the grid; None when every pane is made."""
        if not self.pending:
            return None
        key, title, image = self.pending.pop(0)
        pane = self._make_pane(key, title, image, key in shown and self._made_visible)
        for group in self.groups:
            for name in group.layer_names():
                group.group_of(pane)[name] = group.layer_for(name, pane)
        before = [p for p in self.panes if self.planned.index(p.key) < self.planned.index(key)]
        index = sum(len(p.layers()) for p in before)
        self.panes.insert(len(before), pane)
        with self.scene_paused():
            for offset, layer in enumerate(self._in_drawing_order(pane)):
                self.viewer.layers.insert(index + offset, layer)
            self.update_stride()
        self.lighten(pane.layers())
        return pane

    def _in_drawing_order(self, pane: Pane) -> list:
        """``pane``'s layers in the order the other panes' stand in the layer list (a heat
        map added later lies above the contours, under the labels)."""
        others = [p for p in self.panes if p is not pane]
        if not others:
            return pane.layers()
        template = others[0]
        counterpart = {id(template.image): pane.image, id(template.labels): pane.labels}
        for group in (lambda p: p.references, lambda p: p.extras):
            counterpart.update({id(layer): group(pane)[name] for name, layer in group(template).items()})
        return [counterpart[id(layer)] for layer in sorted(template.layers(), key=self.viewer.layers.index)]

    def _make_pane(self, key: str, title: str, image: np.ndarray, visible: bool) -> Pane:
        from napari.layers import Image, Labels

        scale = layer_scale(self._scan)
        image_layer = Image(image, name=title, colormap="gray", scale=scale,
                            contrast_limits=display_range(image), visible=visible,
                            metadata={"score_pane": key, "score_role": "image"})
        image_layer.name_overlay.visible = True
        image_layer.name_overlay.font_size = 11
        labels_layer = Labels(self._overlay, name=f"labels {title}", scale=scale, colormap=labels_colormap(),
                              opacity=FILLED_OPACITY, visible=visible,
                              metadata={"score_pane": key, "score_role": "labels",
                                        "score_scan": self._scan, "score_tissue": self._under})
        compat.hide_editing_overlays(labels_layer)     # the master shows them (painting)
        self._prepare_labels(labels_layer)
        return Pane(key, title, image_layer, labels_layer)

    def swap_images(self, scan: Scan, specs: list[PaneSpec]) -> None:
        """Show ``scan`` in the existing layers (same panes): data, contrast, scale; the
        pending panes will show it when they are made."""
        scale = layer_scale(scan)
        images = {key: image for key, _title, image in specs}
        for pane in self.panes:
            image = images[pane.key]
            pane.image.data = image
            pane.image.contrast_limits_range = display_range(image, 0, 100)
            pane.image.contrast_limits = display_range(image)
            for layer in (pane.image, pane.labels):
                if not np.allclose(layer.scale, scale):
                    layer.scale = scale
            pane.labels.metadata["score_scan"] = scan
        self.pending = [(key, title, images[key]) for key, title, _image in self.pending]
        self._scan = scan

    def share_labels(self, overlay: np.ndarray, under: np.ndarray) -> None:
        """Make every labels layer wrap new label arrays (after their shape changed)."""
        self._overlay, self._under = overlay, under
        for pane in self.panes:
            pane.labels.data = overlay
            pane.labels.metadata["score_tissue"] = under

    # -- per-pane groups (reference contours, heat maps) -------------------------------------
    def insert_per_pane(self, group: Callable, name: str, make: Callable, then: Callable) -> None:
        """Add ``make(pane)`` to every pane under its labels, as ``group(pane)[name]``; run
        ``then()`` (the layout) before the grid is laid out again."""
        with self.scene_paused():
            # From the last pane back, so earlier indices stay valid.
            for pane in reversed(self.panes):
                layer = make(pane)
                index = self.viewer.layers.index(pane.labels)
                self.viewer.layers.insert(index, layer)
                self.lighten([layer])
                group(pane)[name] = layer
            self.update_stride()
            then()

    def remove_per_pane(self, group: Callable, name: str, then: Callable) -> None:
        """Remove ``group(pane)[name]`` from every pane; run ``then()`` as above."""
        with self.scene_paused():
            for pane in self.panes:
                self.viewer.layers.remove(group(pane).pop(name))
            self.update_stride()
            then()

    # -- redrawing the labels copies ---------------------------------------------------------
    def refresh_labels_region(self, key: tuple) -> None:
        """Redraw box ``key`` of every pane's labels (they share one array)."""
        for pane in self.panes:
            compat.refresh_labels_region(pane.labels, key)

    def refresh_labels(self) -> None:
        for pane in self.panes:
            pane.labels.refresh()
