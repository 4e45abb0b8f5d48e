"""Making the panes' layers for a scan, or giving the existing ones its data; the warm-up.

Building 22 napari layers costs seconds (vispy visuals, layer controls); swapping a
scan's data into them well under one. So the layers are made once, in the background of
the application's start (:meth:`LayerLoader.warm_up_steps`), and every later scan with
the same panes reuses them.
"""

from __future__ import annotations

import numpy as np

from score_gui.scan import Scan
from score_napari._qt.panes import pane_images


def blank_scan(n_images: int, shape: tuple[int, int, int]) -> Scan:
    """An all-zero scan of ``n_images`` images of ``(S, H, W)`` ``shape``, to make layers for."""
    return Scan.from_arrays(np.zeros((shape[0], n_images, *shape[1:]), np.float32))


class LayerLoader:
    """The loading job of a :class:`~score_napari._qt.viewer_controller.ScoreViewer`.

    Parameters
    ----------
    owner : ScoreViewer
        The viewer whose parts (panes, layout, editor, editing, style) are filled.

    Attributes
    ----------
    busy : bool
        True while layers are made or swapped: the half-built layer list announces no slice.
    """

    def __init__(self, owner):
        self.owner = owner
        self.busy = False

    def load_layers(self, scan: Scan, specs, reuse: bool) -> None:
        """Empty labels of ``scan``'s shape; its images in the existing layers (``reuse``) or
        in new ones; the layout kept from scan to scan."""
        owner = self.owner
        self.busy = True
        try:
            with owner.pool.scene_paused():
                replaced = owner.editor.reset(scan.label_shape)   # empty labels, no history
                if reuse:
                    owner.pool.swap_images(scan, specs)
                    if replaced:
                        owner.pool.share_labels(owner.overlay, owner.under)
                else:
                    for _ in self.build_layer_steps(scan, specs):
                        pass
                owner.pane_layout.adopt_panes(owner.pane_keys, scan.is_amira)
                owner.relayout()
        finally:
            self.busy = False

    def build_layer_steps(self, scan: Scan, specs):
        """Make the panes' layers, yielding after each pane."""
        owner = self.owner
        keys = [key for key, _, _ in specs]
        owner.editing.forget_master()
        owner.pane_layout.adopt_panes(keys, scan.is_amira)
        shown = owner.pane_layout.shown_keys(keys)   # made hidden rather than hidden later
        yield from owner.pool.build_steps(scan, specs, shown, owner.overlay, owner.under,
                                          owner.editing.prepare_labels_layer)
        owner.style.apply()

    @staticmethod
    def warm_up_step_count(n_images: int = 8, spare_references: int = 2) -> int:
        """How many steps :meth:`warm_up_steps` takes (for a progress message)."""
        return len(pane_images(blank_scan(n_images, (1, 2, 2)))) + spare_references

    def warm_up_steps(self, n_images: int = 8, shape: tuple[int, int, int] = (12, 192, 192),
                      spare_references: int = 2):
        """Make the panes' layers for an empty scan, one pane per step, then
        ``spare_references`` sets of hidden contour layers, one set per step (a generator to
        advance from an event loop). Nothing happens when the panes exist already."""
        owner = self.owner
        blank = blank_scan(n_images, shape)
        specs = pane_images(blank)
        if owner.pane_keys == [key for key, _, _ in specs]:
            return
        owner.editor.reset(blank.label_shape)
        self.busy = True
        try:
            yield from self.build_layer_steps(blank, specs)
            with owner.pool.scene_paused():
                owner.relayout()
            for _ in range(spare_references):
                yield
                owner.scan = blank     # the spares take the blank scan's geometry
                try:
                    owner.add_spare_references(1)
                finally:
                    owner.scan = None
        finally:
            self.busy = False
