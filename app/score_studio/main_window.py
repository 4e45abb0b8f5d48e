"""The SCORE Studio main window: study browser, napari viewer, workflow modes.

Layout: the study browser on the left, napari's canvas (driven by
:class:`score_napari._qt.viewer_controller.ScoreViewer`) in the middle, the workflow modes
(Annotate / Segment / QC / Export) as tabs on the right, a toolbar with the actions a rater
uses all day, and a status bar with the slice, pixel, intensity and label under the mouse.
"""

from __future__ import annotations

import base64
import time
from pathlib import Path

import numpy as np
import qtawesome as qta
from qtpy.QtCore import QByteArray, QCoreApplication, QEvent, Qt, QTimer, Signal
from qtpy.QtGui import QAction, QActionGroup, QKeySequence
from qtpy.QtWidgets import (QApplication, QCheckBox, QDockWidget, QFileDialog, QGroupBox, QHBoxLayout,
                            QLabel, QMainWindow,
                            QMessageBox, QPushButton, QScrollArea, QTabWidget, QVBoxLayout, QWidget)

from score_gui.dicom import looks_like_dicom
from score_gui.editing import PROPOSED
from score_gui.errors import ScoreInputError
from score_gui.labels import LABEL_NAMES, LabelMap, empty_labels, read_labels
from score_gui.scan import NIFTI_SUFFIXES, Scan, read_scan
from score_gui.study import ScanEntry, Study

from score_studio.rater import RaterSession, RecoveryStore, ask_rater_id
from score_studio.segmentation_panel import (AUTOMATIC_SOURCE, ScanSegmentation, SegmentationPanel,
                                            reserve_ui_core)
from score_studio.settings import AppSettings, score_home
from score_studio.shortcuts import ACTIONS, ShortcutsDialog
from score_studio.study_browser import StudyBrowser

MODES = ("annotate", "segment", "qc", "export")
REFERENCE_TITLES = {"score": "Automatic (score)", "consensus": "Rater consensus", "truth": "Truth (phantom)"}
HIDDEN_REFERENCE_PREFIXES = ("truth", "model")
"""References hidden until asked for: a phantom's truth and single ensemble members."""
MODE_DOCK_WIDTHS = {"annotate": 400, "segment": 400, "qc": 560, "export": 640}
MODE_TITLES = {"annotate": "Annotate", "segment": "Segment", "qc": "QC", "export": "Export"}
ICON_COLOR = "#d8dee9"
STYLE_FILE = Path(__file__).with_name("style.qss")
EXTRA_ICONS = ("fa5s.history",)
"""Icons used outside :data:`~score_studio.shortcuts.ACTIONS` (tests check they exist)."""
ZOOM_MARGIN = 0.5
"""Context around the canal when zooming to it, as a fraction of the canal's size per side."""


def find_study_root(path: Path) -> Path | None:
    """The study folder that holds ``path`` (the parent of its ``sub-*`` folder), if any.

    Examples
    --------
    >>> find_study_root(Path("/data/st/sub-01/ses-1/anat/sub-01_ses-1_amira.nii.gz"))
    PosixPath('/data/st')
    >>> find_study_root(Path("/tmp/loose.nii.gz")) is None
    True
    """
    for parent in Path(path).parents:
        if parent.name.startswith("sub-"):
            return parent.parent
    return None


def is_study_folder(folder: Path) -> bool:
    return folder.is_dir() and any(p.is_dir() for p in folder.glob("sub-*"))


def is_nifti(path: Path) -> bool:
    return path.name.endswith(NIFTI_SUFFIXES)


class MainWindow(QMainWindow):
    """The application window.

    Parameters
    ----------
    settings : AppSettings, optional
        Loaded from ``SCORE_HOME`` when not given.
    interactive : bool
        Ask questions with dialogs (rater ID, recovery). False for ``--screenshot`` and
        scripted use: no rater is asked for, nothing modal opens.
    """

    scan_opened = Signal(object)        # ScanEntry

    def __init__(self, settings: AppSettings | None = None, interactive: bool = True):
        super().__init__()
        import napari
        from score_napari._qt._napari_compat import qt_viewer_of
        from score_napari._qt.viewer_controller import ScoreViewer

        self.settings = settings or AppSettings.load()
        self.interactive = interactive
        self.study: Study | None = None
        self.entry: ScanEntry | None = None
        self.scan: Scan | None = None
        self._averages: dict[str, np.ndarray] = {}
        self._reference_boxes: tuple | None = None
        self._export_stale = False
        self._reference_choice: dict[str, bool] = {}
        self._reference_labels: dict[str, LabelMap] = {}
        self._warm_up = None                    # generator of ScoreViewer.warm_up_steps
        self._deferred_entry: ScanEntry | None = None   # opens when the warm-up is done
        self.confirm = self._confirm_dialog     # replaced in tests: (title, text) -> bool

        self.setWindowTitle("SCORE Studio")
        self.setObjectName("scoreStudioMainWindow")
        reserve_ui_core()
        self.setAcceptDrops(True)
        # A full napari.Viewer (plugins, current_viewer(), viewer.window for the widgets),
        # whose canvas widget moves into this window; napari's own window stays hidden.
        self.viewer = napari.Viewer(title="SCORE Studio", show=False)
        self.qt_viewer = qt_viewer_of(self.viewer, required=True)   # no public accessor in napari
        # Drops go to the window (study folders, DICOM folders), not to napari's reader.
        self.qt_viewer.setAcceptDrops(False)
        self.score_viewer = ScoreViewer(self.viewer)
        self.setCentralWidget(self.qt_viewer)

        self.rater = RaterSession(self.score_viewer.get_labels, RecoveryStore(), self)
        self.actions_by_name: dict[str, QAction] = {}
        self._build_actions()
        self._build_docks()
        self._build_toolbar()
        self._build_menus()
        self._build_status_bar()
        self._update_rater_badge()
        self._connect()
        self._apply_style()
        self._restore_window()

    # ------------------------------------------------------------------------------------
    # Construction
    # ------------------------------------------------------------------------------------
    def _build_actions(self) -> None:
        handlers = {
            "open_scan": self.choose_scan, "open_study": self.choose_study,
            "import_dicom": self.choose_dicom, "open_demo": self.open_demo,
            "save": self.save_labels, "undo": self.score_viewer.undo, "redo": self.score_viewer.redo,
            "prev_slice": lambda: self.step_slice(-1), "next_slice": lambda: self.step_slice(1),
            "prev_scan": lambda: self.step_scan(-1), "next_scan": lambda: self.step_scan(1),
            "zoom_cord": self.zoom_to_cord,
            "layout_all": lambda: self.set_layout("all"),
            "layout_working": lambda: self.set_layout("working"),
            "layout_single": lambda: self.set_layout("single"),
            "consensus": self.compute_consensus,
            "segment": lambda: self.segmentation.segment_current(),
            "segment_all": lambda: self.segmentation.segment_all(),
            "cancel": lambda: self.segmentation.cancel(),
            "rater": self.change_rater, "shortcuts": self.show_shortcuts, "quit": self.close,
        }
        for mode in MODES:
            handlers[f"mode_{mode}"] = (lambda m=mode: self.set_mode(m))
        for name, spec in ACTIONS.items():
            action = QAction(qta.icon(spec.icon, color=ICON_COLOR), spec.text, self)
            if spec.shortcut:
                action.setShortcut(QKeySequence(spec.shortcut))
                # Window-wide (the canvas may have the focus), not in dialogs.
                action.setShortcutContext(Qt.WindowShortcut)
            action.setToolTip(spec.tooltip())
            action.setStatusTip(spec.tooltip())
            action.triggered.connect(lambda _checked=False, f=handlers[name]: f())
            self.addAction(action)
            self.actions_by_name[name] = action
        self.layout_group = QActionGroup(self)
        for name in ("layout_all", "layout_working", "layout_single"):
            self.actions_by_name[name].setCheckable(True)
            self.layout_group.addAction(self.actions_by_name[name])
        self.mode_group = QActionGroup(self)
        for mode in MODES:
            self.actions_by_name[f"mode_{mode}"].setCheckable(True)
            self.mode_group.addAction(self.actions_by_name[f"mode_{mode}"])

    def _build_docks(self) -> None:
        from score_napari._qt.annotation import AnnotationWidget
        from score_napari._qt.areas_table import AreasTableWidget

        self.browser = StudyBrowser()
        self.browser_dock = self._dock("Study", self.browser, Qt.LeftDockWidgetArea)

        self.annotation_widget = AnnotationWidget(self.score_viewer)
        self.areas_widget = AreasTableWidget(self.score_viewer)
        self.segmentation = SegmentationPanel(lambda: self.entry, self._study_entries,
                                              lambda: self.scan, self.settings.ensemble)
        self.mode_tabs = QTabWidget()
        self.mode_tabs.setObjectName("modeTabs")
        self.mode_tabs.setDocumentMode(True)
        self.mode_pages = {
            "annotate": self._annotate_page(),
            "segment": self._scroll(self.segmentation),
            "qc": self._qc_page(),
            "export": self._export_page(),
        }
        for mode in MODES:
            spec = ACTIONS[f"mode_{mode}"]
            self.mode_tabs.addTab(self.mode_pages[mode], qta.icon(spec.icon, color=ICON_COLOR),
                                  MODE_TITLES[mode])
            self.mode_tabs.setTabToolTip(self.mode_tabs.count() - 1, spec.tooltip())
        # The toolbar's mode switcher replaces the tab bar (one control, not two).
        self.mode_tabs.tabBar().hide()
        self.modes_dock = self._dock("Workflow", self.mode_tabs, Qt.RightDockWidgetArea)

        # napari's layer list and controls (opacity, blending, contrast) for fine control;
        # hidden until asked for from the View menu, the annotation panel covers daily work.
        for dock in (self.qt_viewer.dockLayerControls, self.qt_viewer.dockLayerList):
            self.addDockWidget(Qt.LeftDockWidgetArea, dock)
            dock.hide()
        self.tabifyDockWidget(self.qt_viewer.dockLayerControls, self.qt_viewer.dockLayerList)
        self.resizeDocks([self.browser_dock, self.modes_dock], [300, 420], Qt.Horizontal)

    def _dock(self, title: str, widget: QWidget, area) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock{title}")
        dock.setWidget(widget)
        dock.setFeatures(QDockWidget.DockWidgetMovable | QDockWidget.DockWidgetFloatable)
        self.addDockWidget(area, dock)
        return dock

    @staticmethod
    def _scroll(widget: QWidget) -> QScrollArea:
        area = QScrollArea()
        area.setWidgetResizable(True)
        area.setWidget(widget)
        return area

    def _annotate_page(self) -> QWidget:
        page = QWidget()
        self.rater_label = QLabel()
        self.rater_label.setObjectName("raterBadge")
        self.save_state_label = QLabel()
        self.save_state_label.setObjectName("saveState")
        change = QPushButton(qta.icon(ACTIONS["rater"].icon, color=ICON_COLOR), "")
        change.setToolTip(ACTIONS["rater"].tooltip())
        change.clicked.connect(self.change_rater)
        save = QPushButton(qta.icon(ACTIONS["save"].icon, color=ICON_COLOR), "Save")
        save.setToolTip(ACTIONS["save"].tooltip())
        save.clicked.connect(self.save_labels)
        consensus = QPushButton(qta.icon(ACTIONS["consensus"].icon, color=ICON_COLOR), "Consensus")
        consensus.setToolTip(ACTIONS["consensus"].tooltip())
        consensus.clicked.connect(self.compute_consensus)
        self.consensus_button = consensus
        top = QHBoxLayout()
        top.addWidget(self.rater_label)
        top.addWidget(change)
        top.addStretch(1)
        top.addWidget(self.save_state_label)
        buttons = QHBoxLayout()
        buttons.addWidget(save)
        buttons.addWidget(consensus)
        layout = QVBoxLayout(page)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addLayout(buttons)
        self.references_box = QGroupBox("Other labels (read-only contours)")
        self.references_layout = QVBoxLayout(self.references_box)
        self.references_layout.setContentsMargins(6, 4, 6, 4)
        self.references_box.hide()
        layout.addWidget(self.annotation_widget)
        layout.addWidget(self.references_box)
        layout.addWidget(self.areas_widget, 1)
        return page

    def _update_reference_toggles(self) -> None:
        """One checkbox per reference (other raters, score, consensus, truth) in its colour."""
        from score_napari._qt.icons import swatch

        while self.references_layout.count():
            item = self.references_layout.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        for who in self._reference_labels:
            title = f"Rater {who[5:]}" if who.startswith("rater") else REFERENCE_TITLES.get(who, who)
            box = QCheckBox(title)
            if who in self.score_viewer.references:
                box.setIcon(swatch(self.score_viewer.reference_color(who)))
            box.setChecked(self._reference_shown(who))
            box.setToolTip(f"Show {who}'s labels as contours on every pane")
            box.toggled.connect(lambda on, w=who: self.show_reference(w, on))
            self.references_layout.addWidget(box)
        self.references_box.setVisible(bool(self._reference_labels))

    def _reference_shown(self, who: str) -> bool:
        return self._reference_choice.get(who, not who.startswith(HIDDEN_REFERENCE_PREFIXES))

    def show_reference(self, who: str, visible: bool) -> None:
        """Show or hide one reference's contours (remembered while the application runs).

        A reference hidden when the scan opened has no layers yet: they are made now."""
        self._reference_choice[who] = visible
        if who in self.score_viewer.references:
            self.score_viewer.set_reference_visible(who, visible)
        elif visible and who in self._reference_labels:
            self.score_viewer.add_reference_labels(who, self._reference_labels[who])
            self._update_reference_toggles()

    def _qc_page(self) -> QWidget:
        """A holder for the QC widget, built when QC mode first shows a study."""
        page = QWidget()
        self.qc_layout = QVBoxLayout(page)
        self.qc_layout.setContentsMargins(0, 0, 0, 0)
        self.qc_placeholder = QLabel("Open a study to review its slices.")
        self.qc_placeholder.setWordWrap(True)
        self.qc_layout.addWidget(self.qc_placeholder)
        self.qc_widget = None
        return page

    def _refresh_qc(self) -> None:
        """(Re)build the QC widget for the open study and reviewer; follow the open scan."""
        from score_napari._qt.qc_widget import QCWidget

        if self.study is None:
            return
        reviewer = self._my_source() or ""   # without a name: the grid shows, recording waits
        if reviewer:
            self.qc_placeholder.hide()
        else:
            self.qc_placeholder.setText("Identify as a rater (File > Change rater) to record QC decisions.")
            self.qc_placeholder.show()
        widget = self.qc_widget
        if widget is None or widget.study.root != self.study.root or widget.reviewer != reviewer:
            if widget is not None:
                self.qc_layout.removeWidget(widget)
                widget.deleteLater()
            widget = QCWidget(self.study.root, reviewer)
            widget.decision_recorded.connect(lambda _d: self.browser.refresh_all())
            widget.slice_selected.connect(self._on_qc_slice)
            widget.scan_changed.connect(self._on_qc_scan)
            self.qc_layout.addWidget(widget, 1)
            self.qc_widget = widget
        stems = [e.stem for e in widget.study.scans]
        if self.entry is not None and self.entry.stem in stems and (
                widget.entry is None or widget.entry.stem != self.entry.stem):
            widget.set_scan(self.entry.stem)
        if widget.current_slice() is not None:
            self._on_qc_slice(widget.current_slice())      # the viewer shows the slice under review

    def _on_qc_slice(self, slice_index: int) -> None:
        """The viewer follows the reviewer: the slice under review shows in every pane."""
        widget = self.qc_widget
        if widget is not None and self.entry is not None and widget.entry is not None \
                and widget.entry.stem == self.entry.stem:
            self.score_viewer.set_slice(slice_index)

    def _on_qc_scan(self, stem: str) -> None:
        """The reviewer moved to another scan in QC mode: open it in the viewer too."""
        if self.entry is not None and self.entry.stem == stem:
            return
        entry = next((e for e in self._study_entries() if e.stem == stem), None)
        if entry is not None:
            self.browser.select(entry)

    def _export_page(self) -> QWidget:
        from score_napari._qt.export_widget import ExportWidget

        self.export_widget = ExportWidget(background=True)   # areas of a large study take seconds
        self.export_widget.exported.connect(
            lambda path: self.statusBar().showMessage(f"Exported {path}", 6000))
        return self.export_widget

    def _build_toolbar(self) -> None:
        bar = self.addToolBar("Main")
        bar.setObjectName("mainToolbar")
        bar.setMovable(False)
        bar.setToolButtonStyle(Qt.ToolButtonTextBesideIcon)
        groups = [("open_study", "open_scan"), ("save", "undo", "redo"),
                  ("prev_scan", "next_scan"), ("layout_all", "layout_working", "layout_single", "zoom_cord"),
                  ("segment",), tuple(f"mode_{m}" for m in MODES), ("shortcuts",)]
        icon_only = {"open_scan", "undo", "redo", "prev_scan", "next_scan", "layout_all", "layout_working",
                     "layout_single", "zoom_cord", "shortcuts"}
        for group in groups:
            for name in group:
                bar.addAction(self.actions_by_name[name])
                if name in icon_only:
                    button = bar.widgetForAction(self.actions_by_name[name])
                    button.setToolButtonStyle(Qt.ToolButtonIconOnly)
            bar.addSeparator()
        self.toolbar = bar

    def _build_menus(self) -> None:
        menus = {
            "&File": ["open_scan", "open_study", "import_dicom", "open_demo", None, "recent", None,
                      "save", "rater", None, "quit"],
            "&Edit": ["undo", "redo", None, "consensus"],
            "&View": ["prev_slice", "next_slice", "prev_scan", "next_scan", None,
                      "layout_all", "layout_working", "layout_single", "zoom_cord", None, "docks"],
            "&Segment": ["segment", "segment_all", "cancel"],
            "&Mode": [f"mode_{m}" for m in MODES],
            "&Help": ["shortcuts"],
        }
        for title, names in menus.items():
            menu = self.menuBar().addMenu(title)
            for name in names:
                if name is None:
                    menu.addSeparator()
                elif name == "docks":
                    for dock in (self.browser_dock, self.modes_dock, self.qt_viewer.dockLayerControls,
                                 self.qt_viewer.dockLayerList):
                        menu.addAction(dock.toggleViewAction())
                elif name == "recent":
                    self.recent_menu = menu.addMenu(qta.icon(EXTRA_ICONS[0], color=ICON_COLOR), "Open &recent")
                    self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
                else:
                    menu.addAction(self.actions_by_name[name])
        self._fill_recent_menu()

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        recent = self.settings.existing_recent()
        for path in recent:
            action = self.recent_menu.addAction(path)
            action.triggered.connect(lambda _c=False, p=path: self.open_path(p))
        if not recent:
            self.recent_menu.addAction("(nothing yet)").setEnabled(False)

    def _build_status_bar(self) -> None:
        status = self.statusBar()
        self.position_label = QLabel("")
        self.position_label.setMinimumWidth(420)
        self.status_rater = QLabel("")
        status.addPermanentWidget(self.position_label)
        status.addPermanentWidget(self.status_rater)

    def _connect(self) -> None:
        self.browser.scan_selected.connect(self.open_entry)
        self.score_viewer.labels_changed.connect(self.rater.mark_dirty)
        self.score_viewer.slice_changed.connect(self._on_slice_changed)
        self.rater.dirty_changed.connect(lambda _d: self._update_rater_badge())
        self.rater.saved.connect(self._on_saved)
        self.rater.save_failed.connect(lambda msg: self.statusBar().showMessage(f"Save failed: {msg}"))
        self.viewer.cursor.events.position.connect(self._update_position)
        self.mode_tabs.currentChanged.connect(lambda i: self._on_mode_tab(MODES[i]))
        self.segmentation.scan_done.connect(self._on_segmentation_done)
        self.segmentation.finished.connect(lambda _n: self.browser.refresh_all())
        self.segmentation.running_changed.connect(self.actions_by_name["cancel"].setEnabled)
        self.actions_by_name["cancel"].setEnabled(False)

    def _apply_style(self) -> None:
        from napari.qt import get_stylesheet

        self.setStyleSheet(get_stylesheet("dark") + "\n" + STYLE_FILE.read_text(encoding="utf-8"))

    # ------------------------------------------------------------------------------------
    # Window state
    # ------------------------------------------------------------------------------------
    def _restore_window(self) -> None:
        geometry = self.settings.geometry
        if geometry:
            self.restoreGeometry(QByteArray(base64.b64decode(geometry)))
        else:
            self.resize(1600, 1000)
        if self.settings.window_state:
            self.restoreState(QByteArray(base64.b64decode(self.settings.window_state)))
        self.set_mode(self.settings.mode if self.settings.mode in MODES else "annotate")
        layout = self.settings.layout if self.settings.layout in ("all", "working", "single") else "working"
        self.actions_by_name[f"layout_{layout}"].setChecked(True)
        self._layout = layout

    def remember_window(self) -> None:
        """Store geometry, dock layout, mode and viewer layout in the settings file."""
        self.settings.geometry = base64.b64encode(bytes(self.saveGeometry())).decode()
        self.settings.window_state = base64.b64encode(bytes(self.saveState())).decode()
        self.settings.ensemble = self.segmentation.ensemble_choice
        self.settings.save()

    def start_warm_up(self) -> None:
        """Make the panes' layers in the background of the event loop (a pane per turn, about
        0.3 s each), so the first scan the user opens shows in well under a second. A scan
        opened meanwhile (the study given on the command line) opens when they are made: the
        window answers all along, the status bar says what is happening."""
        if self._warm_up is not None or self.scan is not None:
            return
        self.score_viewer.set_layout(self._layout)     # layers made in the layout they show in
        self._warm_up = self.score_viewer.warm_up_steps()
        self._warm_up_done = 0
        self._warm_up_timer = QTimer(self)
        self._warm_up_timer.timeout.connect(self._warm_up_step)
        self._warm_up_timer.start(0)

    def _warm_up_step(self) -> None:
        if self._warm_up is None or next(self._warm_up, StopIteration) is StopIteration:
            self._stop_warm_up()
            self._open_deferred()
            return
        self._warm_up_done += 1
        if self._deferred_entry is not None:
            self.statusBar().showMessage(f"Preparing the viewer (step {self._warm_up_done} of "
                                         f"{self.score_viewer.warm_up_step_count()}); "
                                         f"{self._deferred_entry.stem} opens next")

    def finish_warm_up(self) -> None:
        """Make the layers not made yet now, and open a scan that waited for them."""
        if self._warm_up is not None:
            for _ in self._warm_up:
                pass
        self._stop_warm_up()
        self._open_deferred()

    def _open_deferred(self) -> None:
        entry, self._deferred_entry = self._deferred_entry, None
        if entry is not None:
            self.open_entry(entry)

    def _stop_warm_up(self) -> None:
        self._warm_up = None
        if getattr(self, "_warm_up_timer", None) is not None:
            self._warm_up_timer.stop()
            self._warm_up_timer = None

    @property
    def warming_up(self) -> bool:
        return self._warm_up is not None

    def dispose(self) -> None:
        """Close the window and napari's viewer behind it, and delete both.

        ``close()`` alone keeps napari's viewer (and its QtViewer) alive for the process.
        """
        self.close()
        self.viewer.close()
        self.deleteLater()
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt name)
        self._stop_warm_up()
        if self.segmentation.running:
            self.segmentation.cancel()
        self.rater.finish()
        self.remember_window()
        super().closeEvent(event)

    # ------------------------------------------------------------------------------------
    # Opening data
    # ------------------------------------------------------------------------------------
    def open_path(self, path: str | Path) -> bool:
        """Open a scan file, a study folder or a DICOM folder; report problems in a dialog
        (or the status bar when not interactive). Returns whether something opened."""
        path = Path(path).expanduser()
        try:
            if not path.exists():
                raise ScoreInputError(path, "not found")
            if path.is_dir():
                if is_study_folder(path):
                    self.open_study(path)
                elif any(path.rglob("*.nii*")) and not looks_like_dicom(path):
                    raise ScoreInputError(path, "no sub-* folders: not a study folder (open a scan file instead)")
                else:
                    self.import_dicom(path)
            elif is_nifti(path):
                self.open_scan_file(path)
            else:
                raise ScoreInputError(path, "not a NIfTI scan (.nii, .nii.gz), study folder or DICOM folder")
        except ScoreInputError as exc:
            self.report_error(str(exc))
            return False
        return True

    def open_study(self, root: str | Path, select: ScanEntry | None = None) -> Study:
        study = Study.open(root)
        if not study.scans:
            raise ScoreInputError(study.root, "no scans found under sub-*/")
        self.study = study
        self.browser.set_study(study)
        self._export_stale = True
        self.settings.add_recent(study.root)
        self.settings.save()
        target = select or study.scans[0]
        self.browser.select(target)        # opens it through scan_selected
        if self.entry is None or Path(self.entry.path) != Path(target.path):
            self.open_entry(target)
        return study

    def open_scan_file(self, path: Path) -> None:
        path = Path(path).resolve()
        root = find_study_root(path)
        if root is not None and is_study_folder(root):
            study = Study.open(root)
            entry = next((e for e in study.scans if Path(e.path) == path), None)
            if entry is not None:
                self.open_study(root, select=entry)
                return
        # A loose scan: a study of one, derivatives beside it.
        entry = ScanEntry(path.parent, path)
        self.study = Study(root=path.parent, scans=[entry])
        self.browser.set_study(self.study)
        self._export_stale = True
        self.settings.add_recent(path)
        self.settings.save()
        self.browser.select(entry)
        if self.entry is None or Path(self.entry.path) != path:
            self.open_entry(entry)

    def import_dicom(self, folder: Path) -> None:
        from score_gui.dicom import import_dicom_folder

        name = "".join(ch for ch in Path(folder).name if ch.isalnum() or ch in "-_") or "dicom"
        out = score_home() / "imported" / name / f"{name}.nii.gz"
        self.statusBar().showMessage(f"Converting DICOM folder {folder}...")
        QApplication.setOverrideCursor(Qt.WaitCursor)
        try:
            scan_file = import_dicom_folder(folder, out)
        finally:
            QApplication.restoreOverrideCursor()
        self.statusBar().showMessage(f"Converted {folder} to {scan_file}", 8000)
        self.open_scan_file(Path(scan_file))

    def open_demo(self) -> None:
        from score_gui.phantom import ensure_demo_study

        self.statusBar().showMessage("Preparing the demo study (first time only)...")
        QApplication.processEvents()
        self.open_path(ensure_demo_study())

    def open_entry(self, entry: ScanEntry) -> None:
        """Show one scan: the rater's labels to edit, everyone else's as contours."""
        if self.entry is not None and Path(entry.path) == Path(self.entry.path) and self.scan is not None:
            return
        if self._warm_up is not None:
            self._deferred_entry = entry       # opens as soon as the panes are made
            self.statusBar().showMessage(f"Preparing the viewer; {entry.stem} opens next")
            return
        started = time.perf_counter()
        self.rater.finish()
        try:
            scan = read_scan(entry.path)
        except ScoreInputError as exc:
            self.report_error(str(exc))
            return
        self.entry, self.scan = entry, scan
        self._averages = scan.averages()
        self._ensure_rater()
        if self.score_viewer.layout != self._layout:
            self.score_viewer.set_layout(self._layout)   # before loading: no layers toggled twice
        self._read_reference_labels(entry, scan)
        drawn = {who: labels for who, labels in self._reference_labels.items()
                 if self._reference_shown(who) or who in self.score_viewer.references}
        self.score_viewer.load_scan(scan, self._labels_to_edit(entry, scan), references=drawn)
        self._update_reference_toggles()
        if self.settings.rater_id:
            self.rater.start(scan, entry, self.settings.rater_id)
            self._offer_recovery(entry, scan)
        self.zoom_to_cord()
        self._update_title()
        self._update_rater_badge()
        self.statusBar().showMessage(f"Opened {entry.stem} in {time.perf_counter() - started:.2f} s", 5000)
        if self.mode == "export":
            self.export_widget.set_current_scan(entry.stem)
        elif self.mode == "qc":
            self._refresh_qc()
        self.scan_opened.emit(entry)

    def _my_source(self) -> str:
        return f"rater{self.settings.rater_id}" if self.settings.rater_id else ""

    def _labels_to_edit(self, entry: ScanEntry, scan: Scan) -> LabelMap:
        mine = self._my_source()
        if mine and entry.dseg_path(mine).exists():
            try:
                return read_labels(entry.dseg_path(mine), scan)
            except ScoreInputError as exc:
                self.report_error(f"{exc} (starting from empty labels; the file is kept)")
        labels = empty_labels(scan)
        labels.who = mine
        return labels

    def _read_reference_labels(self, entry: ScanEntry, scan: Scan) -> None:
        """Everyone else's labels. All are read (cheap); those shown, or drawn on the previous
        scan (their layers are reused), get layers when the scan loads; the rest when their
        checkbox is ticked (layers on 11 panes are what costs)."""
        mine = self._my_source()
        self._reference_boxes = None
        self._reference_labels = {}
        for who in entry.label_sources():
            if who == mine:
                continue
            try:
                labels = read_labels(entry.dseg_path(who), scan)
            except ScoreInputError as exc:
                self.statusBar().showMessage(f"Skipped {who}: {exc}", 8000)
                continue
            self._reference_labels[who] = labels
            self._grow_reference_box(labels.dseg)

    def _add_reference(self, who: str, labels: LabelMap) -> None:
        self._reference_labels[who] = labels
        if self._reference_shown(who):
            self.score_viewer.add_reference_labels(who, labels)
        elif who in self.score_viewer.references:
            self.score_viewer.add_reference_labels(who, labels)   # update the hidden layers in place
        self._grow_reference_box(labels.dseg)

    def _grow_reference_box(self, dseg: np.ndarray) -> None:
        """Keep the box (rows, cols) around every reference's canal, for zooming."""
        canal = (dseg > 0).any(axis=0)
        if not canal.any():
            return
        rows, cols = np.nonzero(canal)
        box = (rows.min(), cols.min(), rows.max() + 1, cols.max() + 1)
        old = self._reference_boxes
        self._reference_boxes = box if old is None else (
            min(old[0], box[0]), min(old[1], box[1]), max(old[2], box[2]), max(old[3], box[3]))

    def zoom_to_cord(self) -> None:
        """Zoom every pane onto the canal: of my labels, else of anyone's labels on this scan."""
        if self.scan is None:
            return
        box = self.score_viewer.cord_box()
        self.score_viewer.zoom_to_cord(margin=ZOOM_MARGIN, box=box if box is not None else self._reference_boxes)

    def _study_entries(self) -> list[ScanEntry]:
        return list(self.study.scans) if self.study is not None else []

    # -- file dialogs ------------------------------------------------------------------------
    def choose_scan(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a scan", "", "NIfTI scans (*.nii *.nii.gz)")
        if path:
            self.open_path(path)

    def choose_study(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a study folder")
        if folder:
            self.open_path(folder)

    def choose_dicom(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Import a DICOM folder")
        if folder:
            try:
                self.import_dicom(Path(folder))
            except ScoreInputError as exc:
                self.report_error(str(exc))

    # -- drag and drop -----------------------------------------------------------------------
    def dragEnterEvent(self, event) -> None:  # noqa: N802
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802
        paths = [Path(url.toLocalFile()) for url in event.mimeData().urls() if url.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.open_path(paths[0])

    # ------------------------------------------------------------------------------------
    # Rater workflow
    # ------------------------------------------------------------------------------------
    def _ensure_rater(self) -> None:
        if self.settings.rater_id or not self.interactive:
            return
        rater = ask_rater_id(self)
        if rater:
            self.settings.rater_id = rater
            self.settings.save()

    def change_rater(self) -> None:
        rater = ask_rater_id(self, self.settings.rater_id)
        if not rater or rater == self.settings.rater_id:
            return
        self.rater.finish()
        self.settings.rater_id = rater
        self.settings.save()
        entry = self.entry
        self.entry = None
        if entry is not None:
            self.open_entry(entry)
        self._update_rater_badge()

    def save_labels(self) -> None:
        if not self.rater.active:
            self.report_error("Not identified as a rater: labels cannot be saved (File > Change rater)")
            return
        self.rater.save(explicit=True)

    def _on_saved(self, written: dict) -> None:
        self.statusBar().showMessage(f"Saved {Path(written['dseg']).name}", 4000)
        self._export_stale = True
        if self.entry is not None:
            self.browser.refresh_entry(self.entry)
        self._update_rater_badge()

    def _on_slice_changed(self, *_args) -> None:
        self.rater.autosave()

    def _offer_recovery(self, entry: ScanEntry, scan: Scan) -> None:
        record = self.rater.recovery.find(entry.path, self.rater.who)
        if record is None:
            return
        labels = self.rater.recovery.load(record)
        if labels.dseg.shape != scan.label_shape:
            return
        question = (f"SCORE Studio stopped with unsaved labels on {entry.stem} "
                    f"({record.describe()}). Restore them?")
        if self.confirm("Recover unsaved labels", question):
            labels.who = self.rater.who
            self.score_viewer.set_labels(labels)
            self.rater.mark_dirty()
            self.rater.write_recovery()
            self.statusBar().showMessage("Recovered the unsaved labels; save to keep them.", 8000)
        else:
            self.rater.recovery.discard(record)

    def offer_pending_recoveries(self) -> bool:
        """At start-up: open the scan with the newest unsaved work, if the rater wants it."""
        pending = [r for r in self.rater.recovery.pending() if r.scan_path.exists()]
        if not pending:
            return False
        record = pending[0]
        if not self.confirm("Unsaved work found",
                            f"Unsaved labels were found for {record.describe()}. Open that scan?"):
            return False
        if record.who.startswith("rater") and not self.settings.rater_id:
            self.settings.rater_id = record.who[len("rater"):]
        self.open_path(record.scan_path)
        return True

    def compute_consensus(self) -> None:
        """Majority vote of every rater's saved labels on this scan -> ``desc-consensus``
        (:func:`score_gui.consensus.raters_consensus`), shown as a reference."""
        from score_gui.consensus import raters_consensus

        if self.entry is None:
            return
        if self.rater.active:
            self.rater.autosave()
        try:
            consensus, _ = raters_consensus(self.entry, self.scan)
        except ScoreInputError as exc:
            self.report_error(str(exc))
            return
        self._add_reference("consensus", consensus)
        self._update_reference_toggles()
        self.browser.refresh_entry(self.entry)
        self.statusBar().showMessage(f"Consensus of {len(self.entry.raters())} raters saved (desc-consensus)",
                                     6000)

    # ------------------------------------------------------------------------------------
    # Segmentation results
    # ------------------------------------------------------------------------------------
    def _on_segmentation_done(self, done: ScanSegmentation) -> None:
        self.browser.refresh_entry(done.entry)
        self._export_stale = True
        if self.entry is None or Path(done.entry.path) != Path(self.entry.path):
            return
        labels = done.result.consensus
        self._add_reference(AUTOMATIC_SOURCE, labels)
        self._update_reference_toggles()
        disagreement = getattr(done.result, "disagreement", None)
        if disagreement is not None:
            self.score_viewer.add_overlay("disagreement", np.asarray(disagreement))
        if self.segmentation.result_use == "labels":
            editable = LabelMap(labels.dseg.copy(), None if labels.lesion is None else labels.lesion.copy(),
                                set(labels.labelled), who=self._my_source())
            self.score_viewer.set_labels(editable, provenance=PROPOSED)
            self.rater.mark_dirty()

    # ------------------------------------------------------------------------------------
    # Navigation, modes, layout
    # ------------------------------------------------------------------------------------
    def step_slice(self, step: int) -> None:
        if self.scan is None:
            return
        current = self.current_slice()
        self.score_viewer.set_slice(int(np.clip(current + step, 0, self.scan.n_slices - 1)))

    def current_slice(self) -> int:
        return int(self.viewer.dims.current_step[0])

    def step_scan(self, step: int) -> None:
        entry = self.browser.neighbour(step)
        if entry is not None:
            self.browser.select(entry)

    def set_layout(self, layout: str) -> None:
        self._layout = layout
        self.actions_by_name[f"layout_{layout}"].setChecked(True)
        self.settings.layout = layout
        if self.scan is not None:
            self.score_viewer.set_layout(layout)
            self.zoom_to_cord()

    def set_mode(self, mode: str) -> None:
        """Switch the workflow mode (annotate, segment, qc, export)."""
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; one of {MODES}")
        self.mode_tabs.setCurrentIndex(MODES.index(mode))
        self._on_mode_tab(mode)

    @property
    def mode(self) -> str:
        return MODES[self.mode_tabs.currentIndex()]

    def _on_mode_tab(self, mode: str) -> None:
        self.actions_by_name[f"mode_{mode}"].setChecked(True)
        self.modes_dock.setWindowTitle(ACTIONS[f"mode_{mode}"].help)
        self.settings.mode = mode
        # QC tiles and export plots need more room than the annotation tools.
        self.resizeDocks([self.modes_dock], [MODE_DOCK_WIDTHS[mode]], Qt.Horizontal)
        if mode == "export":
            self._refresh_export()
        elif mode == "qc":
            self._refresh_qc()

    def _refresh_export(self) -> None:
        """Give the export panel the open study (recomputed only when something changed)."""
        if self.study is None or not getattr(self, "_export_stale", False):
            return
        self._export_stale = False
        if self.export_widget.study is None or Path(self.export_widget.study.root) != self.study.root:
            self.export_widget.set_study(self.study.root)
        else:
            self.export_widget.refresh()
        if self.entry is not None:
            self.export_widget.set_current_scan(self.entry.stem)

    def show_shortcuts(self) -> ShortcutsDialog:
        dialog = ShortcutsDialog(self)
        dialog.setStyleSheet(self.styleSheet())
        dialog.show()
        self._shortcuts_dialog = dialog
        return dialog

    # ------------------------------------------------------------------------------------
    # Status
    # ------------------------------------------------------------------------------------
    def _update_title(self) -> None:
        parts = ["SCORE Studio"]
        if self.entry is not None:
            parts.insert(0, self.entry.stem)
        if self.study is not None and len(self.study.scans) > 1:
            parts.insert(1, self.study.root.name)
        self.setWindowTitle(" - ".join(parts))

    def _update_rater_badge(self) -> None:
        rater = self.settings.rater_id
        self.rater_label.setText(f"Rater {rater}" if rater else "No rater")
        self.status_rater.setText(f"rater{rater}" if rater else "not identified: labels are not saved")
        if not self.rater.active:
            text, dirty = ("view only" if not rater else ""), False
        elif self.rater.dirty:
            text, dirty = "unsaved changes", True
        else:
            text, dirty = "all changes saved", False
        self.save_state_label.setText(text)
        self.save_state_label.setProperty("dirty", "true" if dirty else "false")
        self.save_state_label.style().unpolish(self.save_state_label)
        self.save_state_label.style().polish(self.save_state_label)

    def pixel_under(self, position) -> tuple[int, int, int] | None:
        """(slice, row, col) of a world position, or None outside the scan."""
        if self.scan is None or position is None:
            return None
        layer = self._edit_layer()
        coords = layer.world_to_data(position) if layer is not None else position
        if len(coords) < 3:   # the layers are going away (closing, switching scans)
            return None
        index = np.round(np.asarray(coords[-3:], float)).astype(int)
        index[0] = self.current_slice()
        shape = self.scan.label_shape
        if np.any(index < 0) or np.any(index >= shape):
            return None
        return int(index[0]), int(index[1]), int(index[2])

    def _edit_layer(self):
        """The editable labels layer (None before the panes exist)."""
        return self.score_viewer.master

    def describe_pixel(self, position) -> str:
        """Status bar text: slice, level, pixel, mm position, intensities, label under the mouse."""
        where = self.pixel_under(position)
        if where is None:
            return ""
        s, r, c = where
        level = self.scan.level(s)
        values = "  ".join(f"{name}: {avg[s, r, c]:.0f}" for name, avg in self._averages.items())
        labels = self.score_viewer.get_labels()
        label = LABEL_NAMES.get(int(labels.dseg[s, r, c]), "?")
        if labels.lesion is not None and labels.lesion[s, r, c]:
            label += " + lesion"
        dy, dx = self.scan.pixel_spacing
        return (f"slice {s + 1}{' ' + level if level else ''}  pixel ({r}, {c})  "
                f"{r * dy:.1f}, {c * dx:.1f} mm  |  {values}  |  {label}")

    def _update_position(self, event=None) -> None:
        self.position_label.setText(self.describe_pixel(self.viewer.cursor.position))

    # ------------------------------------------------------------------------------------
    # Messages
    # ------------------------------------------------------------------------------------
    def report_error(self, message: str) -> None:
        self.statusBar().showMessage(message, 10000)
        if self.interactive:
            QMessageBox.warning(self, "SCORE Studio", message)

    def _confirm_dialog(self, title: str, text: str) -> bool:
        if not self.interactive:
            return False
        answer = QMessageBox.question(self, title, text, QMessageBox.Yes | QMessageBox.No, QMessageBox.Yes)
        return answer == QMessageBox.Yes

    # ------------------------------------------------------------------------------------
    # Screenshots
    # ------------------------------------------------------------------------------------
    def settle(self, timeout: float = 5.0) -> None:
        """Process events until the canvas size stops changing (needed before a screenshot)."""
        app = QApplication.instance()
        deadline = time.monotonic() + timeout
        previous, stable = None, 0
        while time.monotonic() < deadline and stable < 5:
            app.processEvents()
            size = tuple(self.qt_viewer.canvas.size)
            stable = stable + 1 if size == previous else 0
            previous = size
            time.sleep(0.03)

    def render_screenshot(self, path: str | Path, size: tuple[int, int] = (1760, 1040)) -> Path:
        """Show the window at ``size``, let it settle, and save it as a PNG."""
        self.resize(*size)
        self.show()
        self.settle()
        self.export_widget.wait()       # the export panel's tables, computed in a worker
        if self.scan is not None:
            self.zoom_to_cord()
        else:
            self.viewer.reset_view()
        self.settle(2.0)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        image = self.grab().toImage()
        if not image.save(str(path), "PNG"):
            raise ScoreInputError(path, "could not write the PNG")
        return path

