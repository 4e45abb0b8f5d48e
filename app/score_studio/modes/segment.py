"""Segment mode: the segmentation panel, and what a finished segmentation changes on screen."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from qtpy.QtWidgets import QScrollArea

from score_studio.segmentation_panel import AUTOMATIC_SOURCE, ScanSegmentation, SegmentationPanel


class SegmentMode:
    """The plugin's segmentation panel in a scroll area, and its results shown.

    Parameters
    ----------
    window : MainWindow
        Whose open study and scan are segmented, and where results show.
    """

    def __init__(self, window):
        self.window = window
        self.panel = SegmentationPanel(lambda: window.entry, window.study_entries,
                                       lambda: window.scan, window.settings.ensemble)
        self.page = QScrollArea()
        self.page.setWidgetResizable(True)
        self.page.setWidget(self.panel)
        self.panel.scan_done.connect(self.on_scan_done)

    def on_scan_done(self, done: ScanSegmentation) -> None:
        """A scan is segmented: its browser row, the export, and, for the open scan, the
        automatic labels as a reference (and as the labels to correct, when asked for)."""
        window = self.window
        window.browser.refresh_entry(done.entry)
        window.export.stale = True
        if window.entry is None or Path(done.entry.path) != Path(window.entry.path):
            return
        labels = done.result.consensus
        window.add_reference(AUTOMATIC_SOURCE, labels)
        # The models' probabilities guide click correction on this scan.
        window.score_viewer.click_tool.set_priors(getattr(done.result, "probabilities", None))
        disagreement = getattr(done.result, "disagreement", None)
        if disagreement is not None:
            window.score_viewer.add_overlay("disagreement", np.asarray(disagreement))
        if self.panel.result_use == "labels":
            # A proposal on the slices the rater has not drawn (one undo step), marked until
            # edited or accepted; the rater's own slices are kept.
            if window.score_viewer.propose(labels):
                window.rater.mark_dirty()
