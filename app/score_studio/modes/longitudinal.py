"""Over-time mode: the subject of the scan on screen across its sessions.

The plugin's :class:`~score_napari._qt.longitudinal.LongitudinalWidget` shows the same
slice of every session side by side (linked zoom) and the chosen compartment's area per
slice over sessions against the scan-rescan band; it follows the scan and slice on screen.
"""

from __future__ import annotations


class LongitudinalMode:
    """The longitudinal widget, following the window's study, scan and slice while it shows.

    Reading every session of a subject costs tenths of a second, so a study opened or a
    slice changed in another mode is only noted, and read when the mode shows
    (:meth:`refresh`).
    """

    def __init__(self, window):
        from score_napari._qt.longitudinal import LongitudinalWidget

        self.window = window
        self.widget = LongitudinalWidget()
        self._study = None          # the study to read when the mode shows
        window.score_viewer.slice_changed.connect(self.follow)

    @property
    def shown(self) -> bool:
        return self.window.mode == "longitudinal"

    def set_study(self, study) -> None:
        self._study = study
        if self.shown:
            self.refresh()

    def refresh(self) -> None:
        """Read the study noted since, then follow the scan and slice on screen."""
        if self._study is not None:
            study, self._study = self._study, None
            entry = self.window.entry
            self.widget.set_study(study.root, entry.subject if entry is not None else None)
        self.follow()

    def follow(self, *_args) -> None:
        """Show the subject and slice on screen (while the mode shows)."""
        entry = self.window.entry
        if entry is not None and self.shown:
            self.widget.follow(entry.subject, self.window.score_viewer.current_slice)
