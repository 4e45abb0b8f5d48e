"""The SCORE Studio main window: study browser, napari viewer, workflow modes.

Layout: the study browser on the left, napari's canvas (driven by
:class:`score_napari._qt.viewer_controller.ScoreViewer`) in the middle, the workflow modes
(Annotate / Segment / QC / Export, :mod:`score_studio.modes`) as pages on the right, a
toolbar and menus with the actions a rater uses all day (:mod:`score_studio.actions`), and
a status bar with the slice, pixel, intensity and label under the mouse. The window wires
these parts together; what each does lives in its own module.
"""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
from qtpy.QtCore import QByteArray, QCoreApplication, QEvent, Qt, Signal
from qtpy.QtWidgets import QApplication, QDockWidget, QLabel, QMainWindow, QMessageBox, QWidget

from score_gui.errors import ScoreInputError
from score_gui.labels import LabelMap
from score_gui.scan import Scan
from score_gui.study import ScanEntry, Study

from score_studio import actions as window_actions
from score_studio import screenshot
from score_studio.modes import MODE_DOCK_WIDTHS, MODES, mode_tab_widget
from score_studio.modes.annotate import AnnotatePage
from score_studio.modes.export import ExportMode
from score_studio.modes.longitudinal import LongitudinalMode
from score_studio.modes.qc import QCMode
from score_studio.modes.segment import SegmentMode
from score_studio.modes.train import TrainMode
from score_studio.opening import ZOOM_MARGIN, ScanOpener
from score_studio.rater import RaterSession, RecoveryStore
from score_studio.rater_workflow import RaterWorkflow
from score_studio.references import ReferenceLabels
from score_studio.settings import AppSettings
from score_studio.shortcuts import ACTIONS, ShortcutsDialog
from score_studio.status import describe_position, window_title
from score_studio.study_browser import StudyBrowser
from score_studio.warm_up import ViewerWarmUp

STYLE_FILE = Path(__file__).with_name("style.qss")


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
    study_opened = Signal(object)       # Study

    def __init__(self, settings: AppSettings | None = None, interactive: bool = True):
        super().__init__()
        self.settings = settings or AppSettings.load()
        self.interactive = interactive
        self.study: Study | None = None
        self.entry: ScanEntry | None = None
        self.scan: Scan | None = None
        self.averages: dict[str, np.ndarray] = {}
        self.confirm = self._confirm_dialog     # replaced in tests: (title, text) -> bool
        self.setWindowTitle("SCORE Studio")
        self.setObjectName("scoreStudioMainWindow")
        self.setAcceptDrops(True)
        self._embed_viewer()
        self.rater = RaterSession(self.score_viewer.get_labels, RecoveryStore(), self)
        self.rater_workflow = RaterWorkflow(self)
        self.opener = ScanOpener(self)
        self.references = ReferenceLabels(self.score_viewer)
        self.warm_up = ViewerWarmUp(self.score_viewer, self)
        self.actions_by_name = window_actions.build_actions(self, self._action_handlers())
        self._build_docks()
        self.toolbar = window_actions.build_toolbar(self, self.actions_by_name)
        docks = [self.browser_dock, self.modes_dock, self.qt_viewer.dockLayerControls, self.qt_viewer.dockLayerList]
        self.recent_menu = window_actions.build_menus(self, self.actions_by_name, docks,
                                                      self.settings.existing_recent, self.open_path)
        self._build_status_bar()
        self.update_rater_badge()
        self._connect()
        self._apply_style()
        self._restore_window()

    # ------------------------------------------------------------------------------------
    # Construction
    # ------------------------------------------------------------------------------------
    def _embed_viewer(self) -> None:
        """A full napari.Viewer (plugins, current_viewer(), viewer.window for the widgets),
        whose canvas widget moves into this window; napari's own window stays hidden."""
        import napari
        from score_napari._qt._napari_compat import qt_viewer_of
        from score_napari._qt.viewer_controller import ScoreViewer

        self.viewer = napari.Viewer(title="SCORE Studio", show=False)
        self.qt_viewer = qt_viewer_of(self.viewer, required=True)   # no public accessor in napari
        # Drops go to the window (study folders, DICOM folders), not to napari's reader.
        self.qt_viewer.setAcceptDrops(False)
        self.score_viewer = ScoreViewer(self.viewer)
        self.setCentralWidget(self.qt_viewer)

    def _action_handlers(self) -> dict:
        handlers = {
            "open_scan": self.opener.choose_scan, "open_study": self.opener.choose_study,
            "import_dicom": self.opener.choose_dicom, "open_demo": self.open_demo,
            "save": self.save_labels, "undo": self.score_viewer.undo, "redo": self.score_viewer.redo,
            "prev_slice": lambda: self.step_slice(-1), "next_slice": lambda: self.step_slice(1),
            "prev_scan": lambda: self.step_scan(-1), "next_scan": lambda: self.step_scan(1),
            "zoom_cord": self.zoom_to_cord, "consensus": self.compute_consensus,
            "segment": lambda: self.segmentation.segment_current(),
            "segment_all": lambda: self.segmentation.segment_all(),
            "cancel": lambda: self.segmentation.cancel(),
            "rater": self.change_rater, "shortcuts": self.show_shortcuts, "quit": self.close,
            "next_to_label": lambda: self.train_mode.next_to_label(), "accept_slice": self.rater_workflow.accept_slice,
        }
        handlers.update({f"layout_{name}": (lambda n=name: self.set_layout(n)) for name in ("all", "working", "single")})
        handlers.update({f"mode_{mode}": (lambda m=mode: self.set_mode(m)) for mode in MODES})
        return handlers

    def _build_docks(self) -> None:
        self.browser = StudyBrowser()
        self.browser_dock = self._dock("Study", self.browser, Qt.LeftDockWidgetArea)
        self.annotate_page = AnnotatePage(self.score_viewer, self.references)
        self.segment_mode = SegmentMode(self)
        self.segmentation = self.segment_mode.panel
        self.qc_mode = QCMode(self)
        self.qc_page = self.qc_mode.page
        self.export = ExportMode()
        self.train_mode = TrainMode(self)
        self.longitudinal_mode = LongitudinalMode(self)
        # Parts that tests and scripts reach through the window.
        self.export_widget = self.export.widget
        self.areas_widget = self.annotate_page.areas_widget
        self.references_box = self.annotate_page.references_box
        self.save_state_label = self.annotate_page.save_state_label
        self.mode_pages = {"annotate": self.annotate_page, "segment": self.segment_mode.page, "qc": self.qc_page,
                           "export": self.export.widget, "train": self.train_mode.page,
                           "longitudinal": self.longitudinal_mode.widget}
        self.mode_tabs = mode_tab_widget(self.mode_pages, window_actions.icon)
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

    def _build_status_bar(self) -> None:
        self.position_label = QLabel("")
        self.position_label.setMinimumWidth(420)
        self.status_rater = QLabel("")
        self.statusBar().addPermanentWidget(self.position_label)
        self.statusBar().addPermanentWidget(self.status_rater)

    def _connect(self) -> None:
        self.browser.scan_selected.connect(self.open_entry)
        self.score_viewer.labels_changed.connect(self.rater.mark_dirty)
        self.score_viewer.slice_changed.connect(lambda *_args: self.rater.autosave())
        self.score_viewer.status_message.connect(self._show_viewer_message)
        self.rater.dirty_changed.connect(lambda _d: self.update_rater_badge())
        self.rater.saved.connect(self.rater_workflow.on_saved)
        self.rater.save_failed.connect(lambda msg: self.statusBar().showMessage(f"Save failed: {msg}"))
        self.viewer.cursor.events.position.connect(self._update_position)
        self.mode_tabs.currentChanged.connect(lambda i: self._on_mode_tab(MODES[i]))
        self.annotate_page.change_rater.connect(self.change_rater)
        self.annotate_page.save.connect(self.save_labels)
        self.annotate_page.consensus.connect(self.compute_consensus)
        self.export.widget.exported.connect(lambda path: self.statusBar().showMessage(f"Exported {path}", 6000))
        self.segmentation.finished.connect(lambda _n: self.browser.refresh_all())
        self.segmentation.running_changed.connect(self.actions_by_name["cancel"].setEnabled)
        self.actions_by_name["cancel"].setEnabled(False)
        self.warm_up.progress.connect(self.statusBar().showMessage)
        self.warm_up.ready.connect(self._open_waiting)
        for mode in (self.train_mode, self.longitudinal_mode):
            self.study_opened.connect(mode.set_study)
        self.scan_opened.connect(self.longitudinal_mode.follow)

    def _apply_style(self) -> None:
        from napari.qt import get_stylesheet

        self.setStyleSheet(get_stylesheet("dark") + "\n" + STYLE_FILE.read_text(encoding="utf-8"))

    @property
    def qc_widget(self):
        """The QC widget (None until QC mode shows a study; made anew per study and reviewer)."""
        return self.qc_page.widget

    # ------------------------------------------------------------------------------------
    # Window state and warm-up
    # ------------------------------------------------------------------------------------
    def _restore_window(self) -> None:
        if self.settings.geometry:
            self.restoreGeometry(QByteArray(base64.b64decode(self.settings.geometry)))
        else:
            self.resize(1600, 1000)
        if self.settings.window_state:
            self.restoreState(QByteArray(base64.b64decode(self.settings.window_state)))
        self.set_mode(self.settings.mode if self.settings.mode in MODES else "annotate")
        layout = self.settings.layout if self.settings.layout in ("all", "working", "single") else "working"
        self.actions_by_name[f"layout_{layout}"].setChecked(True)
        self.layout_preset = layout

    def remember_window(self) -> None:
        """Store geometry, dock layout, mode and viewer layout in the settings file."""
        self.settings.geometry = base64.b64encode(bytes(self.saveGeometry())).decode()
        self.settings.window_state = base64.b64encode(bytes(self.saveState())).decode()
        self.settings.ensemble = self.segmentation.ensemble_choice
        self.settings.save()

    def start_warm_up(self) -> None:
        """Make the panes' layers in the background of the event loop (:class:`ViewerWarmUp`);
        a scan opened meanwhile opens when they are made."""
        if not self.warm_up.running and self.scan is None:
            self.warm_up.start(self.layout_preset)     # layers made in the layout they show in

    def finish_warm_up(self) -> None:
        """Make the layers not made yet now, and open a scan that waited for them."""
        self.warm_up.finish()

    @property
    def warming_up(self) -> bool:
        return self.warm_up.running

    def dispose(self) -> None:
        """Close the window and napari's viewer behind it, and delete both.

        ``close()`` alone keeps napari's viewer (and its QtViewer) alive for the process.
        """
        self.close()
        self.viewer.close()
        self.deleteLater()
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt name)
        self.warm_up.stop()
        if self.segmentation.running:
            self.segmentation.cancel()
        self.rater.finish()
        self.remember_window()
        super().closeEvent(event)

    def _open_waiting(self, entry: ScanEntry) -> None:
        """The scan asked for during the warm-up, now that the shown panes are made."""
        self.open_entry(entry)

    # ------------------------------------------------------------------------------------
    # Opening data (:class:`~score_studio.opening.ScanOpener`)
    # ------------------------------------------------------------------------------------
    def open_path(self, path: str | Path) -> bool:
        """Open a scan file, a study folder or a DICOM folder; report problems in a dialog
        (or the status bar when not interactive). Returns whether something opened."""
        try:
            self.opener.open_path(Path(path).expanduser())
        except ScoreInputError as exc:
            self.report_error(str(exc))
            return False
        return True

    def open_study(self, root: str | Path, select: ScanEntry | None = None) -> Study:
        return self.opener.open_study(root, select)

    def open_scan_file(self, path: Path) -> None:
        self.opener.open_scan_file(path)

    def import_dicom(self, folder: Path) -> None:
        self.opener.import_dicom(folder)

    def open_demo(self) -> None:
        from score_gui.phantom import ensure_demo_study

        self.statusBar().showMessage("Preparing the demo study (first time only)...")
        QApplication.processEvents()
        self.open_path(ensure_demo_study())

    def open_entry(self, entry: ScanEntry) -> None:
        """Show one scan: the rater's labels to edit, everyone else's as contours."""
        self.opener.open_entry(entry)

    def follow_scan_in_mode(self, entry: ScanEntry) -> None:
        """The export or QC page moves to the scan just opened."""
        if self.mode == "export":
            self.export_widget.set_current_scan(entry.stem)
        elif self.mode == "qc":
            self.qc_mode.refresh()

    def study_entries(self) -> list[ScanEntry]:
        return list(self.study.scans) if self.study else []

    def dragEnterEvent(self, event) -> None:  # noqa: N802
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802
        paths = [Path(url.toLocalFile()) for url in event.mimeData().urls() if url.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.open_path(paths[0])

    # ------------------------------------------------------------------------------------
    # Rater workflow (:class:`~score_studio.rater_workflow.RaterWorkflow`)
    # ------------------------------------------------------------------------------------
    def change_rater(self) -> None:
        self.rater_workflow.change_rater()

    def save_labels(self) -> None:
        self.rater_workflow.save()

    def offer_pending_recoveries(self) -> bool:
        """At start-up: open the scan with the newest unsaved work, if the rater wants it."""
        return self.rater_workflow.offer_pending_recoveries()

    # ------------------------------------------------------------------------------------
    # Other labels: consensus, segmentation results
    # ------------------------------------------------------------------------------------
    def show_reference(self, who: str, visible: bool) -> None:
        """Show or hide one reference's contours (remembered while the application runs)."""
        self.annotate_page.show_reference(who, visible)

    def add_reference(self, who: str, labels: LabelMap) -> None:
        self.references.add(who, labels)
        self.annotate_page.update_reference_toggles()

    def compute_consensus(self) -> None:
        self.rater_workflow.compute_consensus()

    # ------------------------------------------------------------------------------------
    # Navigation, modes, layout
    # ------------------------------------------------------------------------------------
    def current_slice(self) -> int:
        return int(self.viewer.dims.current_step[0])

    def step_slice(self, step: int) -> None:
        if self.scan is not None:
            self.score_viewer.set_slice(int(np.clip(self.current_slice() + step, 0, self.scan.n_slices - 1)))

    def step_scan(self, step: int) -> None:
        entry = self.browser.neighbour(step)
        if entry is not None:
            self.browser.select(entry)

    def zoom_to_cord(self) -> None:
        """Zoom every pane onto the canal: of my labels, else of anyone's labels on this scan."""
        if self.scan is None:
            return
        box = self.score_viewer.cord_box()
        self.score_viewer.zoom_to_cord(margin=ZOOM_MARGIN, box=box if box is not None else self.references.box)

    def set_layout(self, layout: str) -> None:
        self.layout_preset = layout
        self.actions_by_name[f"layout_{layout}"].setChecked(True)
        self.settings.layout = layout
        if self.scan is not None:
            self.score_viewer.set_layout(layout)
            self.zoom_to_cord()

    def set_mode(self, mode: str) -> None:
        """Switch the workflow mode (one of :data:`~score_studio.modes.MODES`)."""
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
        self.resizeDocks([self.modes_dock], [MODE_DOCK_WIDTHS[mode]], Qt.Horizontal)
        if mode == "export":
            self.export.refresh(self.study, self.entry)
        elif mode == "qc":
            self.qc_mode.refresh()
        elif mode == "longitudinal":
            self.longitudinal_mode.refresh()

    def show_shortcuts(self) -> ShortcutsDialog:
        dialog = ShortcutsDialog(self)
        dialog.setStyleSheet(self.styleSheet())
        dialog.show()
        self._shortcuts_dialog = dialog
        return dialog

    # ------------------------------------------------------------------------------------
    # Status and messages
    # ------------------------------------------------------------------------------------
    def update_title(self) -> None:
        self.setWindowTitle(window_title(self.entry, self.study))

    def update_rater_badge(self) -> None:
        rater = self.settings.rater_id
        self.status_rater.setText(f"rater{rater}" if rater else "not identified: labels are not saved")
        self.annotate_page.show_rater(rater, self.rater)

    def describe_pixel(self, position) -> str:
        """Status bar text: slice, level, pixel, mm position, intensities, label under the mouse."""
        return describe_position(self, position)

    def _update_position(self, event=None) -> None:
        self.position_label.setText(self.describe_pixel(self.viewer.cursor.position))

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
    # Screenshots (:mod:`score_studio.screenshot`)
    # ------------------------------------------------------------------------------------
    def _show_viewer_message(self, text: str) -> None:
        self.statusBar().showMessage(text, 8000)

    def settle(self, timeout: float = 5.0) -> None:
        """Process events until the canvas size stops changing (needed before a screenshot)."""
        screenshot.settle(self, timeout)

    def render_screenshot(self, path: str | Path, size: tuple[int, int] = (1760, 1040)) -> Path:
        """Show the window at ``size``, let it settle, and save it as a PNG."""
        return screenshot.render_screenshot(self, path, size)
