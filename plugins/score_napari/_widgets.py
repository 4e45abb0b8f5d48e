"""npe2 widget contributions: the annotation dock and the areas table inside plain napari.

One :class:`ScoreViewer` per napari viewer is shared by both widgets. It takes over a
scan opened with the SCORE reader (image layers carrying ``metadata["score_scan"]``),
together with a SCORE labels layer if one is open.
"""

# No ``from __future__ import annotations``: napari injects the viewer by the real type.
from napari.viewer import Viewer

from score_gui.labels import LabelMap
from score_napari._qt.annotation import AnnotationWidget
from score_napari._qt.areas_table import AreasTableWidget

_ATTRIBUTE = "_score_viewer"


def score_viewer_for(napari_viewer):
    """The :class:`ScoreViewer` driving ``napari_viewer`` (made on first use)."""
    from score_napari._qt.viewer_controller import ScoreViewer

    # Kept on the viewer itself (a cycle the collector frees with the viewer; a global
    # map would keep every closed viewer alive).
    score_viewer = getattr(napari_viewer, _ATTRIBUTE, None)
    if score_viewer is None:
        score_viewer = ScoreViewer(napari_viewer)
        setattr(napari_viewer, _ATTRIBUTE, score_viewer)
        adopt_opened_scan(score_viewer)
        napari_viewer.layers.events.inserted.connect(
            lambda event: _adopt_later(score_viewer, event.value))
    return score_viewer


def adopt_opened_scan(score_viewer) -> bool:
    """Load the scan (and labels) opened by the SCORE reader into the panes. True if done."""
    scan, labels = find_opened_scan(score_viewer.viewer.layers)
    if scan is None or scan is score_viewer.scan:
        return False
    score_viewer.load_scan(scan, labels)
    return True


def find_opened_scan(layers):
    """``(scan, LabelMap or None)`` from layers made by the SCORE reader or sample data."""
    from score_napari._qt.viewer_controller import split_overlay

    scan = next((layer.metadata["score_scan"] for layer in layers
                 if layer.metadata.get("score_role") == "image" and "score_scan" in layer.metadata
                 and layer.metadata["score_scan"].images.any()), None)
    if scan is None:
        return None, None
    for layer in layers:
        meta = layer.metadata
        if meta.get("score_role") == "labels" and "score_tissue" in meta and \
                layer.data.shape == scan.label_shape and meta.get("score_pane") is None:
            dseg, lesion = split_overlay(layer.data, meta["score_tissue"])
            labelled = set(meta.get("score_labelled") or []) or None
            kwargs = {"labelled": labelled} if labelled else {}
            return scan, LabelMap(dseg=dseg, lesion=lesion, who=meta.get("score_who", ""), **kwargs)
    return scan, None


def _adopt_later(score_viewer, layer) -> None:
    # A layer just opened by the reader: take it over once napari has finished adding
    # the whole batch (never change the layer list inside its own event).
    if layer.metadata.get("score_pane") is not None or "score_scan" not in layer.metadata:
        return
    from qtpy.QtCore import QTimer

    QTimer.singleShot(0, lambda: adopt_opened_scan(score_viewer))


def _unwrap(napari_viewer):
    # napari hands widgets a PublicOnlyProxy; the panes need the real viewer (its canvas).
    return getattr(napari_viewer, "__wrapped__", napari_viewer)


class AnnotationDock(AnnotationWidget):
    """The annotation widget as napari's Plugins menu builds it (from the viewer)."""

    def __init__(self, napari_viewer: Viewer):
        super().__init__(score_viewer_for(_unwrap(napari_viewer)))


class AreasDock(AreasTableWidget):
    """The areas table as napari's Plugins menu builds it (from the viewer)."""

    def __init__(self, napari_viewer: Viewer):
        super().__init__(score_viewer_for(_unwrap(napari_viewer)))


def make_annotation_widget(napari_viewer: Viewer) -> AnnotationWidget:
    return AnnotationDock(napari_viewer)


def make_areas_widget(napari_viewer: Viewer) -> AreasTableWidget:
    return AreasDock(napari_viewer)
