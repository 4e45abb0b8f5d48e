"""npe2 widget contributions: the whole SCORE workflow inside plain napari.

Annotation tools, the areas table, segmentation, QC, export and training, each a dock of napari's
Plugins menu. One :class:`ScoreViewer` per napari viewer is shared by all of them. It takes over a
scan opened with the SCORE reader (image layers carrying ``metadata["score_scan"]``),
together with a SCORE labels layer if one is open.
"""

# No ``from __future__ import annotations``: napari injects the viewer by the real type.
from napari.viewer import Viewer
from qtpy.QtCore import Signal
from qtpy.QtWidgets import (QComboBox, QFileDialog, QFormLayout, QHBoxLayout, QLabel, QLineEdit,
                            QPushButton, QVBoxLayout, QWidget)

from score_gui.labels import LabelMap
from score_napari._qt.annotation import AnnotationWidget
from score_napari._qt.areas_table import AreasTableWidget
from score_napari._qt.segmentation import AUTOMATIC_SOURCE, SegmentationPanel

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
    from score_napari._qt._napari_compat import unwrap_viewer

    return unwrap_viewer(napari_viewer)


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


# ----------------------------------------------------------------------------------------
# The rest of the workflow: segmentation, QC and export, on the scan's study
# ----------------------------------------------------------------------------------------
def study_root_of(path):
    """The study folder of a scan file (the folder holding its ``sub-<id>`` folder), or None.

    Examples
    --------
    >>> str(study_root_of("/data/study/sub-01/ses-1/anat/sub-01_ses-1_amira.nii.gz"))
    '/data/study'
    >>> study_root_of("/tmp/scan.nii.gz") is None
    True
    """
    from pathlib import Path

    for parent in Path(path).parents:
        if parent.name.startswith("sub-"):
            return parent.parent
    return None


def opened_entry(score_viewer):
    """The :class:`~score_gui.study.ScanEntry` of the scan on screen (None for a scan that
    is not a file, such as the sample data); a scan outside a study gets its folder as the
    study (results go to ``<folder>/derivatives/score``)."""
    from pathlib import Path

    from score_gui.study import ScanEntry

    path = getattr(score_viewer.scan, "path", None)
    if path is None:
        return None
    path = Path(path).resolve()
    return ScanEntry(study_root_of(path) or path.parent, path)


def _default_reviewer() -> str:
    import getpass

    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = ""
    return "".join(c for c in name if c.isascii() and c.isalnum())


class StudyChooser(QWidget):
    """``Study: <folder>  [Choose...]``; follows the study of the scan on screen until a
    folder is chosen by hand."""

    study_chosen = Signal(object)   # Path

    def __init__(self, score_viewer, parent=None):
        super().__init__(parent)
        self.score_viewer = score_viewer
        self.root = None
        self._by_hand = False
        self.label = QLabel("No study: open a scan of a study or choose its folder.")
        self.label.setWordWrap(True)
        button = QPushButton("Choose study...")
        button.setToolTip("The BIDS-like study folder (sub-*/[ses-*/]anat/*_amira.nii.gz)")
        button.clicked.connect(self._choose)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.label, 1)
        layout.addWidget(button)
        score_viewer.scan_loaded.connect(self._follow_scan)

    def _choose(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose a study folder")
        if folder:
            self._by_hand = True
            self.set_root(folder)

    def _follow_scan(self) -> None:
        entry = opened_entry(self.score_viewer)
        root = study_root_of(entry.path) if entry is not None else None
        if root is not None and not self._by_hand and root != self.root:
            self.set_root(root)

    def set_root(self, root) -> None:
        from pathlib import Path

        self.root = Path(root).resolve()
        self.label.setText(f"Study: <b>{self.root.name}</b>")
        self.label.setToolTip(str(self.root))
        self.study_chosen.emit(self.root)


class SegmentationDock(SegmentationPanel):
    """The application's segmentation panel in plain napari: segments the scan on screen
    (opened with the SCORE reader) or every scan of its study; the result is written as
    ``desc-score`` beside it and shown as contours (or as the labels to correct) with the
    models' disagreement as a heat map."""

    def __init__(self, napari_viewer: Viewer):
        score_viewer = score_viewer_for(_unwrap(napari_viewer))
        super().__init__(lambda: opened_entry(score_viewer), self._study_entries,
                         lambda: score_viewer.scan)
        self.score_viewer = score_viewer
        self.scan_done.connect(self._show_result)

    def _study_entries(self) -> list:
        from score_gui.study import Study

        entry = opened_entry(self.score_viewer)
        if entry is None:
            return []
        if study_root_of(entry.path) is None:
            return [entry]
        return Study.open(entry.study_root).scans

    def _show_result(self, done) -> None:
        from pathlib import Path

        entry = opened_entry(self.score_viewer)
        if entry is None or Path(done.entry.path).resolve() != entry.path:
            return
        labels = done.result.consensus
        self.score_viewer.add_reference_labels(AUTOMATIC_SOURCE, labels)
        disagreement = getattr(done.result, "disagreement", None)
        if disagreement is not None:
            import numpy as np

            self.score_viewer.add_overlay("disagreement", np.asarray(disagreement))
        if self.result_use == "labels":
            self.score_viewer.set_labels(LabelMap(
                labels.dseg.copy(), None if labels.lesion is None else labels.lesion.copy(),
                set(labels.labelled), who=AUTOMATIC_SOURCE))


class QCDock(QWidget):
    """QC mode in plain napari: the study's slices as thumbnails, pass/fail by keyboard,
    decisions in the study's QC log; the viewer shows the scan and slice under review."""

    def __init__(self, napari_viewer: Viewer):
        super().__init__()
        self.score_viewer = score_viewer_for(_unwrap(napari_viewer))
        self.qc_widget = None
        self.chooser = StudyChooser(self.score_viewer)
        self.reviewer = QLineEdit(_default_reviewer())
        self.reviewer.setPlaceholderText("your rater ID (letters and digits)")
        self.reviewer.setToolTip("Written with every QC decision")
        self.reviewer.editingFinished.connect(self._rebuild)
        self.source = QComboBox()
        self.source.setEditable(True)
        self.source.addItems([AUTOMATIC_SOURCE])
        self.source.setToolTip("Whose labels are reviewed (score, raterA, consensus, ...)")
        self.source.activated.connect(lambda _i: self._rebuild())
        self.message = QLabel("")
        self.message.setWordWrap(True)
        form = QFormLayout()
        form.addRow("Reviewer:", self.reviewer)
        form.addRow("Labels:", self.source)
        self._layout = QVBoxLayout(self)
        self._layout.addWidget(self.chooser)
        self._layout.addLayout(form)
        self._layout.addWidget(self.message)
        self.chooser.study_chosen.connect(lambda _root: self._rebuild())
        self.chooser._follow_scan()

    def _rebuild(self) -> None:
        from score_gui.errors import ScoreInputError
        from score_napari._qt.qc_widget import QCWidget

        root, reviewer = self.chooser.root, self.reviewer.text().strip()
        if root is None:
            return
        if not (reviewer.isascii() and reviewer.isalnum()):
            self.message.setText("Enter your rater ID (letters and digits) to record decisions.")
            return
        source = self.source.currentText().strip() or AUTOMATIC_SOURCE
        old = self.qc_widget
        if old is not None and old.study.root == root and old.reviewer == reviewer and old.source == source:
            return
        try:
            widget = QCWidget(root, reviewer, source=source)
        except (ScoreInputError, ValueError) as exc:
            self.message.setText(str(exc))
            return
        if old is not None:
            self._layout.removeWidget(old)
            old.hide()
            old.setParent(None)
            old.deleteLater()
        self.message.setText("")
        sources = sorted({s for e in widget.study.scans for s in e.label_sources()} | {source})
        self.source.blockSignals(True)
        self.source.clear()
        self.source.addItems(sources)
        self.source.setCurrentText(source)
        self.source.blockSignals(False)
        self.qc_widget = widget
        self._layout.addWidget(widget, 1)
        widget.slice_selected.connect(self._show_slice)
        widget.scan_changed.connect(lambda _stem: self._show_scan())
        entry = opened_entry(self.score_viewer)
        if entry is not None and entry.stem in [e.stem for e in widget.study.scans]:
            widget.set_scan(entry.stem)
        else:
            self._show_scan()

    def _show_scan(self) -> None:
        """Open the scan under review in the viewer, its reviewed labels as contours."""
        from pathlib import Path

        from score_gui.labels import read_labels
        from score_gui.scan import read_scan

        widget = self.qc_widget
        review = widget.entry if widget is not None else None
        shown = opened_entry(self.score_viewer)
        if review is None or (shown is not None and shown.path == Path(review.path).resolve()):
            return
        scan = read_scan(review.path)
        references = {}
        dseg = review.dseg_path(widget.source)
        if dseg.exists():
            references[widget.source] = read_labels(dseg, scan)
        self.score_viewer.load_scan(scan, references=references)
        if widget.current_slice() is not None:
            self._show_slice(widget.current_slice())

    def _show_slice(self, slice_index: int) -> None:
        from pathlib import Path

        widget, shown = self.qc_widget, opened_entry(self.score_viewer)
        if widget is not None and widget.entry is not None and shown is not None \
                and Path(widget.entry.path).resolve() == shown.path:
            self.score_viewer.set_slice(slice_index)


class ExportDock(QWidget):
    """Export mode in plain napari: the study's areas table (QC applied), the summary,
    area profiles and inter-rater agreement, saved as CSV, Excel, PNG or SVG."""

    def __init__(self, napari_viewer: Viewer):
        from score_napari._qt.export_widget import ExportWidget

        super().__init__()
        self.score_viewer = score_viewer_for(_unwrap(napari_viewer))
        self.chooser = StudyChooser(self.score_viewer)
        self.export_widget = ExportWidget(background=True)   # areas of a large study take seconds
        # napari's dark theme sets no alternate row colour: every second row came out white
        # with white text.
        self.export_widget.setStyleSheet("QTableWidget { alternate-background-color: #31353d; }")
        layout = QVBoxLayout(self)
        layout.addWidget(self.chooser)
        layout.addWidget(self.export_widget, 1)
        self.chooser.study_chosen.connect(self._set_study)
        self.score_viewer.scan_loaded.connect(self._follow_scan)
        self.chooser._follow_scan()

    def _set_study(self, root) -> None:
        study = self.export_widget.study
        if study is None or study.root != root:
            self.export_widget.set_study(root)
        self._follow_scan()

    def _follow_scan(self) -> None:
        entry = opened_entry(self.score_viewer)
        if entry is not None and self.export_widget.study is not None:
            self.export_widget.set_current_scan(entry.stem)


class _StudyDock(QWidget):
    """A dock of one panel under a :class:`StudyChooser` (the study of the scan on screen)."""

    def __init__(self, napari_viewer: Viewer):
        super().__init__()
        self.score_viewer = score_viewer_for(_unwrap(napari_viewer))
        self.chooser = StudyChooser(self.score_viewer)
        self._layout = QVBoxLayout(self)
        self._layout.addWidget(self.chooser)

    def _add_panel(self, panel: QWidget) -> QWidget:
        self._layout.addWidget(panel, 1)
        return panel


class LongitudinalDock(_StudyDock):
    """The longitudinal view in plain napari: the subject of the scan on screen over its
    sessions (the same slice side by side, the area plot with the scan-rescan band); it
    follows the scan and slice on screen."""

    def __init__(self, napari_viewer: Viewer):
        from score_napari._qt.longitudinal import LongitudinalWidget

        super().__init__(napari_viewer)
        self.longitudinal = self._add_panel(LongitudinalWidget())
        self.chooser.study_chosen.connect(self._set_study)
        self.score_viewer.scan_loaded.connect(self._follow_scan)
        self.score_viewer.slice_changed.connect(self._follow_slice)
        self.chooser._follow_scan()

    def _set_study(self, root) -> None:
        entry = opened_entry(self.score_viewer)
        study = self.longitudinal.study
        if study is None or study.root != root:
            self.longitudinal.set_study(root, entry.subject if entry is not None else None)
        self._follow_scan()

    def _follow_scan(self) -> None:
        self._follow_slice(self.score_viewer.current_slice)

    def _follow_slice(self, index: int) -> None:
        entry = opened_entry(self.score_viewer)
        if entry is not None:
            self.longitudinal.follow(entry.subject, index)


class TrainDock(_StudyDock):
    """Train mode in plain napari: a model set of the study of the scan on screen (or a
    chosen study folder), learnt from its raters' labels; the Segment dock then offers it."""

    def __init__(self, napari_viewer: Viewer):
        from score_napari._qt.train_widget import TrainPanel

        super().__init__(napari_viewer)
        self.train_panel = self._add_panel(TrainPanel())
        self.chooser.study_chosen.connect(self.train_panel.set_study)
        self.chooser._follow_scan()


class RankingDock(_StudyDock):
    """Which slices to label next, in plain napari: the rater's unlabelled slices of the
    study ranked by the models' uncertainty; "Next slice to label" opens the scan with the
    rater's labels (to draw on) at that slice."""

    def __init__(self, napari_viewer: Viewer):
        from score_napari._qt.ranking import RankingPanel

        super().__init__(napari_viewer)
        self._study = None
        self.rater = QLineEdit("A")
        self.rater.setPlaceholderText("rater ID whose labels are missing (e.g. A)")
        self.rater.editingFinished.connect(lambda: self.panel.reload())
        form = QFormLayout()
        form.addRow("Rater:", self.rater)
        self._layout.addLayout(form)
        self.panel = self._add_panel(RankingPanel(self.study, self.rater_id))
        self.chooser.study_chosen.connect(lambda _root: self.panel.reload())
        self.panel.open_slice.connect(self.show_slice)
        self.chooser._follow_scan()

    def study(self):
        from score_gui.study import Study

        root = self.chooser.root
        if root is None:
            return None
        if self._study is None or self._study.root != root:
            self._study = Study.open(root)
        return self._study

    def rater_id(self) -> str | None:
        text = self.rater.text().strip()
        return text if text.isascii() and text.isalnum() else None

    def show_slice(self, stem: str, index: int) -> None:
        """Open ``stem`` with the rater's labels (if any) and go to slice ``index``."""
        from pathlib import Path

        from score_gui.labels import read_labels
        from score_gui.scan import read_scan

        entry = self.study().find(stem)
        shown = opened_entry(self.score_viewer)
        if shown is None or shown.path != Path(entry.path).resolve():
            scan = read_scan(entry.path)
            path = entry.dseg_path(f"rater{self.rater_id()}")
            self.score_viewer.load_scan(scan, read_labels(path, scan) if path.exists() else None)
        self.score_viewer.set_slice(index)
