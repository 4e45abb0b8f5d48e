"""Making the panes' layers for a scan, or giving the existing ones its data; the warm-up.

Building 22 napari layers costs seconds (vispy visuals, layer controls); swapping a
scan's data into them well under one. So the layers are made once, in the background of
the application's start (:meth:`LayerLoader.warm_up_steps`), and every later scan with
the same panes reuses them.
"""

from __future__ import annotations

from contextlib import contextmanager

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
        self._depth = 0      # nested jobs: the outer one ends the busy time

    @property
    def busy(self) -> bool:
        return self._depth > 0

    @contextmanager
    def working(self):
        """Busy for the time of the block."""
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1

    def load_layers(self, scan: Scan, specs, reuse: bool) -> None:
        """Empty labels of ``scan``'s shape; its images in the existing layers (``reuse``) or
        in new ones; the layout kept from scan to scan."""
        owner = self.owner
        with self.working(), owner.pool.scene_paused():
            replaced = owner.editor.reset(scan.label_shape)   # empty labels, no history
            if reuse:
                owner.pool.swap_images(scan, specs)
                if replaced:
                    owner.pool.share_labels(owner.overlay, owner.under)
                self.make_shown_panes()    # opened during the warm-up
            else:
                for _ in self.build_layer_steps(scan, specs):
                    pass
            owner.pane_layout.adopt_panes(owner.pool.planned, scan.is_amira)
            owner.relayout()

    def build_layer_steps(self, scan: Scan, specs):
        """Make the panes' layers, yielding after each pane (the shown ones first)."""
        owner = self.owner
        keys = [key for key, _, _ in specs]
        owner.editing.forget_master()
        owner.pane_layout.adopt_panes(keys, scan.is_amira)
        shown = owner.pane_layout.shown_keys(keys)   # made hidden rather than hidden later
        yield from owner.pool.build_steps(scan, specs, shown, owner.overlay, owner.under,
                                          owner.editing.prepare_labels_layer)
        owner.style.apply()

    def shown_panes_left(self) -> int:
        """How many of the panes the layout shows are still to make."""
        shown = self.owner.pane_layout.shown_keys()
        return sum(key in shown for key, _, _ in self.owner.pool.pending)

    def make_shown_panes(self) -> None:
        """Make the pending panes that the layout shows, now."""
        self.owner.pool.prioritise(self.owner.pane_layout.shown_keys())
        while self.shown_panes_left():
            self.make_next_pending()

    def make_next_pending(self) -> bool:
        """Make one pending pane, with the scan and labels style shown now; whether one was."""
        owner = self.owner
        with self.working(), owner.pool.scene_paused():
            pane = owner.pool.make_next(owner.pane_layout.shown_keys())
            if pane is None:
                return False
            owner.style.apply([pane])
            if owner.scan is not None:
                owner.relayout()
        return True

    def warm_up_steps(self, n_images: int = 8, shape: tuple[int, int, int] = (12, 192, 192),
                      spare_references: int = 2):
        """Plan the panes of an empty scan now, and return a generator (to advance from an
        event loop) that makes them, one pane per step (those the layout shows first), then
        hidden contour layers, one set per step, until ``spare_references`` sets exist.
        Nothing happens when the panes exist already.

        A scan may open between two steps, once the shown panes are made
        (:meth:`shown_panes_left` is 0): it swaps its data into them, and the later steps make the
        remaining panes and spares for it.
        """
        owner = self.owner
        blank = blank_scan(n_images, shape)
        specs = pane_images(blank)
        keys = [key for key, _, _ in specs]
        if owner.pane_keys == keys:
            return iter(())
        owner.editor.reset(blank.label_shape)
        owner.editing.forget_master()
        owner.pane_layout.adopt_panes(keys, blank.is_amira)
        # Made shown first but hidden: empty panes are not worth a frame (under software
        # OpenGL a frame costs tenths of a second); the scan, or the end of the panes, shows them.
        owner.pool.start_building(blank, specs, owner.pane_layout.shown_keys(keys), owner.overlay,
                                  owner.under, owner.editing.prepare_labels_layer, visible=False)
        return self._warm_up_rest(blank, spare_references)

    def _warm_up_rest(self, blank: Scan, spare_references: int):
        owner = self.owner
        while self.make_next_pending():
            yield
        if owner.scan is None:
            with self.working(), owner.pool.scene_paused():
                owner.relayout()
        # Sets of contour layers ready for references: spares, or those of a scan opened
        # meanwhile (its references took what spares would have been).
        while len(owner.reference_layers.maps) < spare_references:
            yield
            self._add_spare_set(blank)

    def _add_spare_set(self, blank: Scan) -> None:
        owner = self.owner
        if owner.scan is not None:        # a scan opened meanwhile: spares of its geometry
            owner.add_spare_references(1)
            return
        owner.scan = blank                # the spares take the blank scan's geometry
        try:
            owner.add_spare_references(1)
        finally:
            owner.scan = None
