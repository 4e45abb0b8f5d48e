"""One-click segmentation: "Segment" (this scan) and "Segment all" (the study).

The ensemble runs in napari's ``thread_worker`` driving the core generator
(:func:`score_gui.inference.segment_scans`), so the window stays responsive; the panel
shows a progress bar, the ETA (:func:`score_gui.progress.format_eta`) and a Cancel button.
Each result is written to the study's derivatives as ``desc-score`` (previous version kept
in ``.history``) and handed on through :attr:`SegmentationPanel.scan_done` (to the application's
main window, or to the viewer by the plugin's dock in plain napari).

The models to use: the default ensemble, the study's own model sets
(``derivatives/score/models/<name>``, :mod:`score_gui.model_sets`, listed with their
out-of-fold GM Dice and refreshed whenever the list opens or
:meth:`SegmentationPanel.refresh_model_sets` is called), or any model folder.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from pathlib import Path

from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import (QComboBox, QFileDialog, QFormLayout, QHBoxLayout, QLabel, QProgressBar,
                            QPushButton, QVBoxLayout, QWidget)

from score_gui.progress import Progress, format_eta
from score_gui.scan import Scan, read_scan
from score_gui.study import ScanEntry

AUTOMATIC_SOURCE = "score"
STEPS_PER_SCAN = 1000
"""Resolution of the overall bar when several scans run: each scan gets this many steps."""


@dataclass
class ScanSegmentation:
    """What one scan's segmentation produced (passed to the main window)."""

    entry: ScanEntry
    scan: Scan
    result: object            # score_gui.inference.SegmentationResult
    written: dict


def reserve_ui_core() -> int:
    """Inference workers in the interface: cores - 1, so one core stays with the window.

    The core's inference runs ensemble members in parallel threads; with every core
    taken the window would stutter. Passed explicitly to the core (``workers=``), so
    nothing process-wide changes; an explicit ``$SCORE_THREADS`` is respected.
    """
    wanted = os.environ.get("SCORE_THREADS", "")
    if wanted.isdigit() and int(wanted) > 0:
        return int(wanted)
    return max(1, (os.cpu_count() or 1) - 1)


def load_ensemble(choice: str):
    """The ensemble named by ``choice``: ``"default"`` or a model folder."""
    from score_gui.inference import Ensemble

    return Ensemble.load(choice)


def segment_entries(entries: Sequence[ScanEntry], ensemble_choice: str,
                    ensemble_loader: Callable[[str], object] = load_ensemble,
                    loaded_scans: dict | None = None,
                    workers: int | None = None) -> Generator[Progress | ScanSegmentation, None, int]:
    """Segment ``entries`` one after the other; yield progress and one result per scan.

    Runs in a worker thread and drives :func:`score_gui.inference.segment_scans` (the core's
    multi-scan loop). Yields :class:`Progress` (overall, ``STEPS_PER_SCAN`` per scan)
    and, after each scan, a :class:`ScanSegmentation` whose labels are already written as
    ``desc-score`` (with the areas table and the disagreement map beside it). Returns the
    number of scans done.
    """
    from score_gui.inference import segment_scans, write_result
    from score_gui.progress import forward

    entries = list(entries)
    started = time.monotonic()
    yield Progress(0, len(entries) * STEPS_PER_SCAN, "loading the models", started)
    ensemble = ensemble_loader(ensemble_choice)
    loaded_scans = loaded_scans or {}
    scans = [lambda entry=entry: loaded_scans.get(Path(entry.path)) or read_scan(entry.path) for entry in entries]

    def write(index: int, scan: Scan, result) -> dict:
        return write_result(scan, result, entries[index].derivatives_dir, disagreement=True)

    workers = reserve_ui_core() if workers is None else workers
    job = segment_scans(scans, ensemble, write, steps_per_scan=STEPS_PER_SCAN, started=started, workers=workers)
    return (yield from forward(job, items=lambda done: ScanSegmentation(entries[done.index], done.scan,
                                                                         done.result, done.written)))


STUDY_SET_ROLE = Qt.UserRole + 1
"""Item data marking the model combo's entries that are the study's model sets."""


class _ModelCombo(QComboBox):
    """A combo box that refreshes its entries just before its list opens."""

    def __init__(self, before_popup: Callable[[], None], parent: QWidget | None = None):
        super().__init__(parent)
        self._before_popup = before_popup

    def showPopup(self) -> None:  # noqa: N802 (Qt)
        self._before_popup()
        super().showPopup()


def study_root_of_entry(entry: ScanEntry | None) -> Path | None:
    """The study folder of a scan entry (None without one)."""
    return None if entry is None else Path(entry.study_root)


class SegmentationPanel(QWidget):
    """Segment this scan or the whole study with the default or a chosen ensemble.

    Parameters
    ----------
    current_entry : callable
        Returns the ScanEntry on screen (or None).
    study_entries : callable
        Returns every ScanEntry of the open study (empty without one).
    current_scan : callable
        Returns the Scan on screen (saves re-reading it), or None.
    study_root : callable, optional
        Returns the open study's folder (None without one), whose model sets are offered;
        default: the study of the scan on screen.
    """

    scan_done = Signal(object)        # ScanSegmentation
    finished = Signal(int)            # number of scans done
    failed = Signal(str)
    running_changed = Signal(bool)

    def __init__(self, current_entry: Callable[[], ScanEntry | None],
                 study_entries: Callable[[], list[ScanEntry]],
                 current_scan: Callable[[], Scan | None] = lambda: None,
                 ensemble_choice: str = "default", parent: QWidget | None = None,
                 study_root: Callable[[], Path | None] | None = None):
        super().__init__(parent)
        self._current_entry = current_entry
        self._study_entries = study_entries
        self._current_scan = current_scan
        self._study_root = study_root or (lambda: study_root_of_entry(self._current_entry()))
        self.worker = None
        self.last_progress: Progress | None = None
        self.results: list[ScanSegmentation] = []

        self.model_combo = _ModelCombo(self.refresh_model_sets)
        self.model_combo.addItem("Default models", "default")
        if ensemble_choice != "default":
            self.model_combo.addItem(Path(ensemble_choice).name, ensemble_choice)
            self.model_combo.setCurrentIndex(1)
        self.model_combo.addItem("Choose a model folder...", None)
        self.model_combo.activated.connect(self._on_model_chosen)
        self.model_combo.setToolTip("Which trained ensemble segments the scans: the default models, one of "
                                    "the study's model sets (out-of-fold GM Dice in brackets) or a folder")
        self.refresh_model_sets()
        self.use_combo = QComboBox()
        self.use_combo.addItem("Reference contours (read-only)", "reference")
        self.use_combo.addItem("My labels, to correct", "labels")
        self.use_combo.setToolTip("Where the result of 'Segment this scan' goes in the viewer")

        self.segment_button = QPushButton("Segment this scan")
        self.segment_all_button = QPushButton("Segment all")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.segment_button.clicked.connect(self.segment_current)
        self.segment_all_button.clicked.connect(self.segment_all)
        self.cancel_button.clicked.connect(self.cancel)
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(0)
        self.progress_bar.setTextVisible(True)
        self.eta_label = QLabel("")
        self.message_label = QLabel("Ready. The result is written as desc-score.")
        self.message_label.setWordWrap(True)

        intro = QLabel("The ensemble segments canal, cord, gray matter, horns and lesions. Each scan's "
                       "result is saved as desc-score (with its areas table and the models' "
                       "disagreement map) and shown as contours, the disagreement as a heat overlay.")
        intro.setWordWrap(True)
        intro.setObjectName("segmentIntro")
        form = QFormLayout()
        form.addRow("Models:", self.model_combo)
        form.addRow("Result:", self.use_combo)
        buttons = QHBoxLayout()
        buttons.addWidget(self.segment_button)
        buttons.addWidget(self.segment_all_button)
        progress = QHBoxLayout()
        progress.addWidget(self.progress_bar, 1)
        progress.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addLayout(progress)
        layout.addWidget(self.eta_label)
        layout.addWidget(self.message_label)
        layout.addStretch(1)

    # -- choices ----------------------------------------------------------------------------
    @property
    def ensemble_choice(self) -> str:
        return self.model_combo.currentData() or "default"

    @property
    def result_use(self) -> str:
        return self.use_combo.currentData()

    def refresh_model_sets(self) -> None:
        """List the open study's model sets after the default models (the choice is kept
        while it still exists; a set that was chosen and is gone falls back to the default)."""
        from score_gui.model_sets import list_model_sets

        try:
            root = self._study_root()
        except Exception:  # noqa: BLE001 - a panel without a study still segments with the default
            root = None
        current = self.model_combo.currentData()
        self.model_combo.blockSignals(True)
        for index in reversed(range(self.model_combo.count())):
            if self.model_combo.itemData(index, STUDY_SET_ROLE):
                self.model_combo.removeItem(index)
        sets = list_model_sets(root) if root is not None and Path(root).is_dir() else []
        for offset, model_set in enumerate(sets, 1):
            self.model_combo.insertItem(offset, f"Study set {model_set.label()}", str(model_set.path))
            self.model_combo.setItemData(offset, True, STUDY_SET_ROLE)
            self.model_combo.setItemData(offset, str(model_set.path), Qt.ToolTipRole)
        index = self.model_combo.findData(current) if current is not None else -1
        self.model_combo.setCurrentIndex(max(index, 0))
        self.model_combo.blockSignals(False)

    def study_model_sets(self) -> list[str]:
        """The folders of the study's model sets offered (in the combo's order)."""
        return [self.model_combo.itemData(i) for i in range(self.model_combo.count())
                if self.model_combo.itemData(i, STUDY_SET_ROLE)]

    def _on_model_chosen(self, index: int) -> None:
        if self.model_combo.itemData(index) is not None:
            return
        folder = QFileDialog.getExistingDirectory(self, "Choose a model folder")
        if not folder:
            self.model_combo.setCurrentIndex(0)
            return
        self.model_combo.insertItem(index, Path(folder).name, folder)
        self.model_combo.setCurrentIndex(index)

    # -- running ----------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.worker is not None

    def segment_current(self) -> None:
        entry = self._current_entry()
        if entry is None:
            self.message_label.setText("Open a scan first.")
            return
        scan = self._current_scan()
        self.start([entry], {Path(entry.path): scan} if scan is not None else {})

    def propose_with(self, model_path: str) -> None:
        """Segment the open scan with the model folder ``model_path`` into "my labels"
        (a proposal on the slices not yet reviewed)."""
        self.refresh_model_sets()
        index = self.model_combo.findData(str(model_path))
        if index < 0:
            self.model_combo.insertItem(1, Path(model_path).name, str(model_path))
            index = 1
        self.model_combo.setCurrentIndex(index)
        self.use_combo.setCurrentIndex(self.use_combo.findData("labels"))
        self.segment_current()

    def segment_all(self) -> None:
        entries = self._study_entries()
        if not entries:
            self.message_label.setText("Open a study first.")
            return
        self.start(entries)

    def start(self, entries: Sequence[ScanEntry], loaded_scans: dict | None = None) -> None:
        """Run the segmentation of ``entries`` in a worker thread."""
        from napari.qt.threading import create_worker

        if self.running:
            return
        self.results = []
        self.last_progress = None
        self.worker = create_worker(segment_entries, list(entries), self.ensemble_choice,
                                    loaded_scans=loaded_scans, _start_thread=False)
        self.worker.yielded.connect(self._on_yielded)
        self.worker.returned.connect(self._on_returned)
        self.worker.errored.connect(self._on_errored)
        self.worker.aborted.connect(self._on_aborted)
        self.worker.finished.connect(self._on_finished)
        self.progress_bar.setRange(0, len(entries) * STEPS_PER_SCAN)
        self.progress_bar.setValue(0)
        self.message_label.setText(f"Segmenting {len(entries)} scan(s)...")
        self._set_running(True)
        self.worker.start()

    def cancel(self) -> None:
        """Stop after the current step (the generator is abandoned between yields)."""
        if self.worker is not None:
            self.message_label.setText("Cancelling...")
            self.worker.quit()

    def _set_running(self, running: bool) -> None:
        self.segment_button.setEnabled(not running)
        self.segment_all_button.setEnabled(not running)
        self.model_combo.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        self.running_changed.emit(running)

    def _on_yielded(self, item) -> None:
        if isinstance(item, ScanSegmentation):
            self.results.append(item)
            self.scan_done.emit(item)
            # The listeners have used the probabilities (5 MB a scan); a cohort keeps the labels only.
            if getattr(item.result, "probabilities", None):
                item.result.probabilities = {}
            return
        self.last_progress = item
        self.progress_bar.setValue(item.done)
        self.eta_label.setText(f"{100 * item.fraction:.0f} %  ETA {format_eta(item.eta_seconds())}")
        self.message_label.setText(item.message)

    def _on_returned(self, count: int) -> None:
        self.progress_bar.setValue(self.progress_bar.maximum())
        self.eta_label.setText("")
        self.message_label.setText(f"Done: {count} scan(s) segmented and saved as desc-score.")
        self.finished.emit(count)

    def _on_errored(self, exc: Exception) -> None:
        self.eta_label.setText("")
        self.message_label.setText(f"Segmentation failed: {exc}")
        self.failed.emit(str(exc))

    def _on_aborted(self) -> None:
        self.eta_label.setText("")
        self.message_label.setText(f"Cancelled after {len(self.results)} scan(s); those are saved.")

    def _on_finished(self) -> None:
        self.worker = None
        self._set_running(False)
