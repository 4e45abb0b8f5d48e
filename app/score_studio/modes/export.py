"""Export mode: the plugin's export panel on the open study, recomputed only when stale."""

from __future__ import annotations

from pathlib import Path


class ExportMode:
    """The export panel and whether the study changed since it last computed.

    Attributes
    ----------
    widget : score_napari._qt.export_widget.ExportWidget
        The panel (areas of a large study take seconds: computed in a worker).
    stale : bool
        Set when labels, segmentations or the study change; cleared by :meth:`refresh`.
    """

    def __init__(self):
        from score_napari._qt.export_widget import ExportWidget

        self.widget = ExportWidget(background=True)
        self.stale = False

    def refresh(self, study, entry) -> None:
        """Give the panel ``study`` (when something changed) and the scan of ``entry``."""
        if study is None or not self.stale:
            return
        self.stale = False
        if self.widget.study is None or Path(self.widget.study.root) != study.root:
            self.widget.set_study(study.root)
        else:
            self.widget.refresh()
        if entry is not None:
            self.widget.set_current_scan(entry.stem)
