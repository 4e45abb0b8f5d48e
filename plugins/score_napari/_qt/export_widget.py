"""Export panel: the current scan's and the study's areas, plots, and saving them.

:class:`ExportWidget` shows

- **Scan**: the current scan's areas per slice (one source), failed slices marked;
- **Study**: mean, SD and slice count per source and compartment (failed slices left out);
- **Areas plot**: area per slice level for each compartment, one panel each, mean ± SD
  over subjects per group (HC solid, MS dashed) as in the SCORE paper's Figure 2;
- **Agreement plot**: box plots of Dice per compartment for each comparison (inter-rater,
  rater vs consensus, SCORE vs consensus), computed on demand.

Tables save as CSV or Excel, plots as PNG or SVG. Plots are drawn with plain ``QPainter``
(matplotlib and QtCharts are not available), so the same code draws on screen, into a PNG
(``QImage``) and into an SVG (``QSvgGenerator``).

Programmatic use (tests, the app's Export mode)::

    widget = ExportWidget(study_root)
    widget.set_current_scan("sub-01_amira")
    widget.save_table("scan.csv", which="scan"); widget.save_excel("study.xlsx")
    widget.save_plot("areas.png", which="areas")
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from qtpy.QtCore import QSize, Qt, Signal
from qtpy.QtGui import QColor, QPainter, QPixmap
from qtpy.QtWidgets import (QAbstractItemView, QComboBox, QFileDialog, QHBoxLayout, QLabel, QMessageBox,
                            QProgressBar, QPushButton, QTableWidget, QTableWidgetItem, QTabWidget,
                            QVBoxLayout, QWidget)

from score_gui.areas import AREA_COLUMNS, COLUMNS, summary_table
from score_gui.errors import ScoreInputError
from score_napari._qt.plots import (PlotView, area_profiles, draw_agreement_boxes, draw_area_profiles,
                                     render_image, save_drawing)


def fill_table(widget: QTableWidget, table: pd.DataFrame, decimals: int = 2) -> None:
    """Show a DataFrame in a QTableWidget (NaN as empty cells, failed rows tinted)."""
    widget.clear()
    widget.setRowCount(len(table))
    widget.setColumnCount(len(table.columns))
    widget.setHorizontalHeaderLabels([str(c) for c in table.columns])
    failed = table["qc_status"].eq("fail").to_numpy() if "qc_status" in table else np.zeros(len(table), bool)
    for r, row in enumerate(table.itertuples(index=False)):
        for c, value in enumerate(row):
            if isinstance(value, (float, np.floating)):
                text = "" if not np.isfinite(value) else f"{value:.{decimals}f}"
            else:
                text = str(value)
            item = QTableWidgetItem(text)
            if isinstance(value, (int, float, np.number)):
                item.setTextAlignment(int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter))
            if failed[r]:
                item.setBackground(QColor("#f8d7da"))
            widget.setItem(r, c, item)
    widget.resizeColumnsToContents()


def _forward(job):
    """A generator function around a running generator (napari's workers want the function)."""
    return (yield from job)


class ExportWidget(QWidget):
    """Tables and plots of a study's areas and agreement, saved as CSV, Excel, PNG or SVG.

    Parameters
    ----------
    study_root : path or None
        The study folder (``None``: empty until :meth:`set_study`).
    background : bool
        Compute areas and agreement in a worker thread with a progress bar (the
        application: a study of 1,000 scans takes seconds), or at once in the calling
        thread (scripts, plain napari). :meth:`wait` waits for a running computation.
    """

    exported = Signal(str)
    """Emitted with the path of every file written."""

    def __init__(self, study_root=None, parent=None, background: bool = False):
        super().__init__(parent)
        self.setObjectName("scoreExport")
        self.background = background
        self.worker = None
        self._job_id = 0
        self.study = None
        self.areas = pd.DataFrame(columns=COLUMNS)
        self.agreement: pd.DataFrame | None = None
        self.groups: dict[str, str] | None = None
        self.current_scan: str | None = None
        self._build()
        if study_root is not None:
            self.set_study(study_root)

    # -- layout -------------------------------------------------------------------------
    def _build(self) -> None:
        layout = QVBoxLayout(self)
        top = QHBoxLayout()
        self.title = QLabel("No study")
        self.title.setObjectName("exportTitle")
        top.addWidget(self.title, 1)
        top.addWidget(QLabel("Source:"))
        self.source_box = QComboBox()
        self.source_box.currentTextChanged.connect(self._source_changed)
        top.addWidget(self.source_box)
        top.addWidget(QLabel("Scan:"))
        self.scan_box = QComboBox()
        self.scan_box.currentTextChanged.connect(self.set_current_scan)
        top.addWidget(self.scan_box)
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.setToolTip("Read the study's label maps and QC decisions again")
        self.refresh_button.clicked.connect(self.refresh)
        top.addWidget(self.refresh_button)
        layout.addLayout(top)

        self.tabs = QTabWidget()
        self.scan_table = self._table_widget()
        self.study_table = self._table_widget()
        self.areas_plot = PlotView(self._draw_areas)
        self.agreement_plot = PlotView(self._draw_agreement)
        self.tabs.addTab(self.scan_table, "Scan")
        self.tabs.addTab(self.study_table, "Study")
        self.tabs.addTab(self.areas_plot, "Areas plot")
        agreement_page = QWidget()
        page_layout = QVBoxLayout(agreement_page)
        row = QHBoxLayout()
        self.agreement_button = QPushButton("Compute agreement")
        self.agreement_button.setToolTip("Dice and Hausdorff between raters, consensus and SCORE")
        self.agreement_button.clicked.connect(self.compute_agreement)
        self.metric_box = QComboBox()
        self.metric_box.addItems(["dice", "hausdorff_mm", "hd95_mm"])
        self.metric_box.currentTextChanged.connect(lambda _t: self.agreement_plot.update())
        row.addWidget(self.agreement_button)
        row.addWidget(QLabel("Metric:"))
        row.addWidget(self.metric_box)
        row.addStretch(1)
        page_layout.addLayout(row)
        page_layout.addWidget(self.agreement_plot, 1)
        self.tabs.addTab(agreement_page, "Agreement plot")
        layout.addWidget(self.tabs, 1)

        buttons = QHBoxLayout()
        for text, slot in (("Save table (CSV)…", self._ask_csv), ("Save Excel…", self._ask_excel),
                           ("Save plot (PNG)…", lambda: self._ask_plot("png")),
                           ("Save plot (SVG)…", lambda: self._ask_plot("svg"))):
            button = QPushButton(text)
            button.clicked.connect(slot)
            buttons.addWidget(button)
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(160)
        self.progress.hide()
        buttons.addWidget(self.progress)
        self.status = QLabel("")
        buttons.addWidget(self.status, 1)
        layout.addLayout(buttons)

    @staticmethod
    def _table_widget() -> QTableWidget:
        table = QTableWidget()
        table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        table.setAlternatingRowColors(True)
        table.verticalHeader().setVisible(False)
        return table

    # -- data ---------------------------------------------------------------------------
    def set_study(self, study_root) -> None:
        from score_gui.study import Study

        self.study = Study.open(study_root)
        self.agreement = None
        self.refresh()

    def refresh(self) -> None:
        """Recompute the study's areas (QC log applied) and redraw everything."""
        if self.study is None:
            return
        from score_gui.areas import read_qc, study_areas_job
        from score_gui.stats import read_groups

        qc = None
        if self.study.qc_dir.exists():
            try:
                qc = read_qc(self.study.qc_dir)
            except ScoreInputError as exc:
                self.status.setText(f"QC log not read: {exc}")
        try:
            self.groups = read_groups(self.study.root)
        except ScoreInputError:
            self.groups = None
        # In-process (workers=1): forking a process pool from a Qt application is not safe.
        self._run(study_areas_job(self.study, qc=qc, workers=1), self._show_areas, "Reading label maps")

    def _show_areas(self, areas: pd.DataFrame) -> None:
        self.areas = areas
        n_failed = int((self.areas["qc_status"] == "fail").sum())
        self.title.setText(f"<b>{self.study.root.name}</b>: {len(self.study.scans)} scans, "
                           f"{len(self.areas)} slice rows, {n_failed} failed QC")
        sources = sorted(self.areas["source"].unique(), key=lambda s: (s != "score", s))
        self._set_items(self.source_box, sources)
        stems = [e.stem for e in self.study.scans]
        self._set_items(self.scan_box, stems, keep=self.current_scan)
        self._update_tables()

    @staticmethod
    def _set_items(box: QComboBox, items: list[str], keep: str | None = None) -> None:
        current = keep or box.currentText()
        box.blockSignals(True)
        box.clear()
        box.addItems(items)
        if current in items:
            box.setCurrentText(current)
        box.blockSignals(False)

    @property
    def source(self) -> str:
        return self.source_box.currentText() or "score"

    def set_current_scan(self, stem: str) -> None:
        """Show this scan's table (the app calls it when the scan changes)."""
        if not stem:
            return
        self.current_scan = stem
        if self.scan_box.currentText() != stem and self.scan_box.findText(stem) >= 0:
            self.scan_box.blockSignals(True)
            self.scan_box.setCurrentText(stem)
            self.scan_box.blockSignals(False)
        self._update_tables()

    def _source_changed(self, _text: str) -> None:
        self._update_tables()

    def scan_areas(self) -> pd.DataFrame:
        """The current scan's rows of the current source."""
        stem = self.current_scan or self.scan_box.currentText()
        rows = self.areas[(self.areas["scan"] == stem) & (self.areas["source"] == self.source)]
        return rows.reset_index(drop=True)

    def study_summary(self) -> pd.DataFrame:
        return summary_table(self.areas) if len(self.areas) else pd.DataFrame()

    def _update_tables(self) -> None:
        scan = self.scan_areas()
        shown = ["slice", "level", "qc_status", "qc_reason"] + AREA_COLUMNS
        fill_table(self.scan_table, scan[shown] if len(scan) else pd.DataFrame(columns=shown))
        fill_table(self.study_table, self.study_summary())
        self.areas_plot.update()

    def compute_agreement(self) -> pd.DataFrame | None:
        """Agreement between every pair of label sources of every scan (may take a while)."""
        if self.study is None:
            return None
        from score_gui.agreement import study_agreement_job
        from score_gui.areas import read_qc

        qc = read_qc(self.study.qc_dir) if self.study.qc_dir.exists() else None
        self._run(study_agreement_job(self.study, qc), self._show_agreement, "Comparing label maps")
        return self.agreement

    def _show_agreement(self, agreement: pd.DataFrame) -> None:
        self.agreement = agreement
        self.agreement_plot.update()
        self.status.setText(f"agreement: {len(agreement)} slice comparisons")

    # -- running the core's jobs ----------------------------------------------------------
    def _run(self, job, show, what: str) -> None:
        """Drive a core job (a generator of Progress returning a table): in a worker thread
        with the progress bar when ``background``, else here and now. A newer job makes an
        older one's result obsolete."""
        from score_gui.progress import drain

        self._job_id += 1
        if not self.background:
            show(drain(job))
            return
        from napari.qt.threading import create_worker

        if self.worker is not None:
            self.worker.quit()
        job_id = self._job_id
        worker = create_worker(_forward, job, _start_thread=False)
        worker.yielded.connect(lambda progress: self._on_progress(progress, what))
        worker.returned.connect(lambda table: job_id == self._job_id and self._finish(show, table, what))
        worker.errored.connect(lambda exc: self.status.setText(f"{what} failed: {exc}"))
        worker.finished.connect(lambda: self._on_finished(worker))
        self.worker = worker
        self.progress.setRange(0, 0)
        self.progress.show()
        self.status.setText(f"{what}...")
        self.refresh_button.setEnabled(False)
        self.agreement_button.setEnabled(False)
        worker.start()

    def _finish(self, show, table, what: str) -> None:
        if self.status.text().startswith(what):
            self.status.setText("")           # the progress message; show() may set its own
        show(table)

    def _on_progress(self, progress, what: str) -> None:
        self.progress.setRange(0, progress.total)
        self.progress.setValue(progress.done)
        self.status.setText(f"{what}: {progress.done}/{progress.total}")

    def _on_finished(self, worker) -> None:
        if self.worker is worker:
            self.worker = None
            self.progress.hide()
            self.refresh_button.setEnabled(True)
            self.agreement_button.setEnabled(True)

    @property
    def busy(self) -> bool:
        """A computation is running in the background."""
        return self.worker is not None

    def wait(self, timeout: float = 60.0) -> bool:
        """Process events until the background computation is done; False on timeout."""
        import time

        from qtpy.QtWidgets import QApplication

        deadline = time.monotonic() + timeout
        while self.busy and time.monotonic() < deadline:
            QApplication.processEvents()
            time.sleep(0.01)
        QApplication.processEvents()
        return not self.busy

    # -- drawing ------------------------------------------------------------------------
    def _draw_areas(self, painter: QPainter, size: QSize) -> None:
        profiles = area_profiles(self.areas, self.source, self.groups) if len(self.areas) else {}
        name = self.study.root.name if self.study else ""
        draw_area_profiles(painter, size, profiles, f"Areas per slice level: {name}, source {self.source}")

    def _draw_agreement(self, painter: QPainter, size: QSize) -> None:
        draw_agreement_boxes(painter, size, self.agreement, self.metric_box.currentText())

    # -- saving -------------------------------------------------------------------------
    def save_table(self, path, which: str = "study") -> Path:
        """CSV of ``which``: ``scan`` (current scan), ``study`` (every row), ``summary``, ``agreement``."""
        from score_gui.areas import write_areas_table
        from score_gui.atomic import atomic_path

        path = Path(path)
        if which == "study":
            write_areas_table(self.areas, path)
        else:
            table = {"scan": self.scan_areas, "summary": self.study_summary,
                     "agreement": lambda: self.agreement if self.agreement is not None else pd.DataFrame()}[which]()
            with atomic_path(path) as tmp:
                table.to_csv(tmp, index=False, float_format="%.4f")
        return self._done(path)

    def save_excel(self, path) -> Path:
        """One workbook: ``areas`` (every row), ``summary``, ``scan`` and, when computed, ``agreement``."""
        from score_gui.areas import write_workbook

        sheets = {"areas": self.areas[COLUMNS], "summary": self.study_summary(), "scan": self.scan_areas()}
        if self.agreement is not None and len(self.agreement):
            from score_gui.agreement import agreement_summary

            sheets.update(agreement=self.agreement, agreement_summary=agreement_summary(self.agreement))
        path = write_workbook(path, sheets)
        return self._done(path)

    def save_plot(self, path, which: str = "areas", size: QSize = QSize(1200, 700)) -> Path:
        """Save the areas plot or the agreement plot as PNG or SVG."""
        draw = self._draw_areas if which == "areas" else self._draw_agreement
        return self._done(save_drawing(draw, path, size))

    def plot_pixmap(self, which: str = "areas", size: QSize = QSize(1200, 700)) -> QPixmap:
        draw = self._draw_areas if which == "areas" else self._draw_agreement
        return QPixmap.fromImage(render_image(draw, size))

    def _done(self, path: Path) -> Path:
        self.status.setText(f"saved {path}")
        self.exported.emit(str(path))
        return path

    def _ask(self, caption: str, filters: str, default: str) -> str | None:
        start = str((self.study.derivatives if self.study else Path.home()) / default)
        path, _ = QFileDialog.getSaveFileName(self, caption, start, filters)
        return path or None

    def _guarded(self, action, *args) -> None:
        try:
            action(*args)
        except (ScoreInputError, OSError) as exc:
            QMessageBox.warning(self, "Not saved", str(exc))

    def _ask_csv(self) -> None:
        which = {0: "scan", 1: "summary", 3: "agreement"}.get(self.tabs.currentIndex(), "study")
        path = self._ask("Save table", "CSV (*.csv)", f"{which}.csv")
        if path:
            self._guarded(self.save_table, path, which)

    def _ask_excel(self) -> None:
        path = self._ask("Save Excel workbook", "Excel (*.xlsx)", "areas.xlsx")
        if path:
            self._guarded(self.save_excel, path)

    def _ask_plot(self, kind: str) -> None:
        which = "agreement" if self.tabs.currentIndex() == 3 else "areas"
        path = self._ask("Save plot", f"{kind.upper()} (*.{kind})", f"{which}.{kind}")
        if path:
            self._guarded(self.save_plot, path, which)
