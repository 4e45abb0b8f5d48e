"""Over-time mode: the subject of the scan on screen across its sessions.

The plugin's :class:`~score_napari._qt.longitudinal.LongitudinalWidget` shows the same
slice of every session side by side (linked zoom) and the chosen compartment's area per
slice over sessions against the scan-rescan band; it follows the scan and slice on screen.
"""

from __future__ import annotations


class LongitudinalMode:
    """The longitudinal widget, following the window's study, scan and slice."""

    def __init__(self, window):
        from score_napari._qt.longitudinal import LongitudinalWidget

        self.window = window
        self.widget = LongitudinalWidget()
        window.score_viewer.slice_changed.connect(self.follow)

    def set_study(self, study) -> None:
        entry = self.window.entry
        self.widget.set_study(study.root, entry.subject if entry is not None else None)

    def follow(self, *_args) -> None:
        """Show the subject and slice on screen."""
        entry = self.window.entry
        if entry is not None:
            self.widget.follow(entry.subject, self.window.score_viewer.current_slice)
