"""The segmentation panel of the application: the plugin's (:mod:`score_napari._qt.segmentation`),
which plain napari offers as the "SCORE segmentation" widget too."""

from __future__ import annotations

from score_napari._qt.segmentation import (AUTOMATIC_SOURCE, STEPS_PER_SCAN, ScanSegmentation,
                                           SegmentationPanel, load_ensemble, reserve_ui_core,
                                           segment_entries)

__all__ = ["AUTOMATIC_SOURCE", "STEPS_PER_SCAN", "ScanSegmentation", "SegmentationPanel", "load_ensemble",
           "reserve_ui_core", "segment_entries"]
