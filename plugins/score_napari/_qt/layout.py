"""Which panes show: the layout presets and the visibility of every pane's layers.

Examples
--------
>>> layout = PaneLayout(pool=None)
>>> layout.choose("working")
>>> sorted(layout.shown_keys(["TI1", "1-5", "6-8", "all"]))
['1-5', '6-8']
"""

from __future__ import annotations

from typing import Callable

LAYOUTS = ("all", "working", "single")
"""``all``: every pane in a grid; ``working``: the two averages raters work on; ``single``: one pane."""

WORKING_PANES = ("1-5", "6-8")
"""The averages raters work on: 1-5 (GM/WM contrast) and 6-8 (cord/CSF contrast)."""

REFERENCE_PANES = ("1-5", "6-8", "all", "image")
"""Panes that show other raters' contours in the all-panes layout (``image``: a one-image scan)."""


class PaneLayout:
    """The layout preset of a :class:`~score_napari._qt.panes.PanePool` and what it shows.

    Parameters
    ----------
    pool : PanePool
        The panes to lay out.
    """

    def __init__(self, pool):
        self.pool = pool
        self.preset = "all"
        self.single_pane: str | None = None

    def choose(self, preset: str, pane: str | None = None) -> None:
        """Pick a preset (and the pane of ``single``); the layers change in :meth:`show`."""
        if preset not in LAYOUTS:
            raise ValueError(f"unknown layout {preset!r}; one of {LAYOUTS}")
        if pane is not None:
            if pane not in self.pool.planned:
                raise ValueError(f"unknown pane {pane!r}; one of {self.pool.planned}")
            self.single_pane = pane
        self.preset = preset

    def adopt_panes(self, keys: list[str], is_amira: bool) -> None:
        """Keep the single pane when the new panes have it, else pick avg 1-5 (AMIRA) or the
        first pane."""
        if self.single_pane not in keys:
            self.single_pane = "1-5" if is_amira else keys[0]

    def shown_keys(self, keys: list[str] | None = None) -> set[str]:
        """The pane keys the current layout shows, out of ``keys`` (default: every pane,
        made or not)."""
        keys = self.pool.planned if keys is None else keys
        if self.preset == "all" or not keys:
            return set(keys)
        if self.preset == "working":
            return set([key for key in keys if key in WORKING_PANES] or keys[:1])
        return {self.single_pane} if self.single_pane in keys else set(keys[:1])

    def visible_panes(self) -> list:
        shown = self.shown_keys()
        return [pane for pane in self.pool.panes if pane.key in shown]

    def pane_shown(self, pane) -> bool:
        return pane.key in self.shown_keys()

    def reference_shown_on(self, pane, wanted: bool, shown: set[str] | None = None) -> bool:
        """Whether a reference's contours (``wanted``: not hidden by the user) show on ``pane``.

        Other raters' contours go on the averages, where raters compare labels, and on
        every pane of a layout of one or two panes. On all 11 panes they would crowd the
        inversion images and make every slice change slice 11 more layers.
        """
        shown = self.shown_keys() if shown is None else shown
        return pane.key in shown and wanted and (pane.key in REFERENCE_PANES or len(shown) <= 2)

    def show(self, reference_wanted: Callable[[str], bool], overlay_wanted: Callable[[str], bool]) -> None:
        """Show the layers of the panes of the layout, hide the others, grid mode for more
        than one pane. ``reference_wanted(who)`` and ``overlay_wanted(name)`` say whether
        the user wants those layers at all."""
        shown = self.shown_keys()
        for pane in self.pool.panes:
            on = pane.key in shown
            wanted = {pane.image: on, pane.labels: on}
            wanted.update({layer: self.reference_shown_on(pane, reference_wanted(who), shown)
                           for who, layer in pane.references.items()})
            wanted.update({layer: on and overlay_wanted(name) for name, layer in pane.extras.items()})
            for layer, visible in wanted.items():
                if layer.visible != visible:  # every change re-lays out the whole grid
                    layer.visible = visible
        grid = self.pool.viewer.canvas.grid
        if grid.enabled != (len(shown) > 1):
            grid.enabled = len(shown) > 1
