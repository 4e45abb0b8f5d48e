"""The panes and their layers: one grid cell per inversion image and average.

napari 0.9 draws each layer in one grid cell only, so every pane has its own layers,
``[image, heat maps..., reference contours..., labels]`` (the grid's stride). Making,
adding, removing, showing or hiding a layer makes napari lay the whole grid out again,
so :class:`PanePool` makes the layers once and then swaps data into them, and batches
changes of the layer list inside :meth:`PanePool.scene_paused`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

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

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer whose layer list the panes fill (and own).
    """

    def __init__(self, viewer):
        self.viewer = viewer
        self.panes: list[Pane] = []

    @property
    def keys(self) -> list[str]:
        return [pane.key for pane in self.panes]

    def pane(self, key: str) -> Pane:
        return next(pane for pane in self.panes if pane.key == key)

    def holds(self, specs: list[PaneSpec]) -> bool:
        """Whether the panes are those of ``specs`` and all their layers are in the viewer
        (then a scan can swap its data into them)."""
        return (bool(self.panes) and self.keys == [key for key, _, _ in specs]
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
        pane. Layers of panes not in ``shown`` are made hidden (hiding them later would lay
        the grid out again); ``prepare_labels`` readies each labels layer for editing."""
        from napari.layers import Image, Labels

        grid = self.viewer.canvas.grid
        grid.enabled = False   # one grid lay-out at the end instead of one per added layer
        self.viewer.layers.clear()
        self.panes = []
        scale = layer_scale(scan)
        cmap = labels_colormap()
        for key, title, image in specs:
            image_layer = Image(image, name=title, colormap="gray", scale=scale,
                                contrast_limits=display_range(image), visible=key in shown,
                                metadata={"score_pane": key, "score_role": "image"})
            image_layer.name_overlay.visible = True
            image_layer.name_overlay.font_size = 11
            labels_layer = Labels(overlay, name=f"labels {title}", scale=scale, colormap=cmap,
                                  opacity=FILLED_OPACITY, visible=key in shown,
                                  metadata={"score_pane": key, "score_role": "labels",
                                            "score_scan": scan, "score_tissue": under})
            prepare_labels(labels_layer)
            self.panes.append(Pane(key, title, image_layer, labels_layer))
            with self.scene_paused():
                self.viewer.layers.extend([image_layer, labels_layer])
            self.lighten([image_layer, labels_layer])
            yield
        self.update_stride()

    def swap_images(self, scan: Scan, specs: list[PaneSpec]) -> None:
        """Show ``scan`` in the existing layers (same panes): data, contrast, scale."""
        scale = layer_scale(scan)
        for pane, (_key, _title, image) in zip(self.panes, specs):
            pane.image.data = image
            pane.image.contrast_limits_range = display_range(image, 0, 100)
            pane.image.contrast_limits = display_range(image)
            for layer in (pane.image, pane.labels):
                if not np.allclose(layer.scale, scale):
                    layer.scale = scale
            pane.labels.metadata["score_scan"] = scan

    def share_labels(self, overlay: np.ndarray, under: np.ndarray) -> None:
        """Make every labels layer wrap new label arrays (after their shape changed)."""
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
