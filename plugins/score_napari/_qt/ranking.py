"""Label what the models need next: the rater's unlabelled slices, most useful first.

The panel drives :func:`score_gui.rank.rank_slices` (the ensemble segments every scan with
unlabelled slices and scores each slice by how unsure it is) in napari's ``thread_worker``,
keeps the result in the study (:func:`score_gui.rank.ranking_path`, so it reopens with the
study instead of costing seconds per scan again) and lists it. "Next slice to label" opens
the most useful slice that is still unlabelled and that the rater has not been shown yet;
double-clicking a row opens that slice. Opening is left to the host (the application's
main window, or the plugin dock in plain napari) through :attr:`RankingPanel.open_slice`.
"""

from __future__ import annotations

from collections.abc import Callable

from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import (QAbstractItemView, QHBoxLayout, QHeaderView, QLabel, QProgressBar, QPushButton,
                            QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from score_gui.progress import Progress, format_eta

HEADERS = ("Scan", "Slice", "Score", "Why")


def labelled_in_files(study, who: str) -> Callable[[str, int], bool]:
    """``is_labelled(scan, slice)`` read from the rater's label files (cached per file state).

    The host may pass its own function instead (the application knows the unsaved
    labels of the scan on screen).
    """
    from score_gui.rank import unlabelled_slices
    from score_gui.scan import read_scan

    cache: dict[str, tuple[float, object]] = {}

    def is_labelled(stem: str, index: int) -> bool:
        entry = study.find(stem)
        path = entry.dseg_path(who)
        stamp = path.stat().st_mtime if path.exists() else -1.0
        if stem not in cache or cache[stem][0] != stamp:
            cache[stem] = (stamp, ~unlabelled_slices(entry, read_scan(entry.path), who))
        return bool(cache[stem][1][index])

    return is_labelled


class RankingPanel(QWidget):
    """Unlabelled slices ranked by the ensemble's uncertainty, with a "next slice" button.

    Parameters
    ----------
    study : callable
        Returns the open :class:`score_gui.study.Study` (or None).
    rater : callable
        Returns the rater ID whose labels are missing (e.g. ``"A"``), or None.
    is_labelled : callable ``(study, who) -> (scan, slice) -> bool``, optional
        Builds the labelled-check for a study and rater (default :func:`labelled_in_files`).
    models : str
        Ensemble that ranks: ``"default"`` or a model folder.
    """

    open_slice = Signal(str, int)        # scan stem, slice index
    ranked = Signal(object)              # the ranking DataFrame

    def __init__(self, study: Callable, rater: Callable, is_labelled=labelled_in_files,
                 models: str = "default", parent: QWidget | None = None):
        super().__init__(parent)
        self._study, self._rater, self._is_labelled_for = study, rater, is_labelled
        self.models = models
        self.table = None
        self.shown: set[tuple[str, int]] = set()
        self.worker = None
        self._ranking_for = None

        intro = QLabel("Slices you have not labelled, ranked by how unsure the models are (they "
                       "disagree, or their vote is close). Labelling the top ones teaches the models most.")
        intro.setWordWrap(True)
        self.rank_button = QPushButton("Rank unlabelled slices")
        self.rank_button.setToolTip("Segment the scans with the models and score every unlabelled slice")
        self.rank_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.next_button = QPushButton("Next slice to label")
        self.next_button.setToolTip("Open the most useful slice still unlabelled (Ctrl+L in the application)")
        self.next_button.setEnabled(False)
        self.next_button.clicked.connect(self.next_slice)
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(0)
        self.message_label = QLabel("")
        self.message_label.setWordWrap(True)
        self.list = QTableWidget(0, len(HEADERS))
        self.list.setHorizontalHeaderLabels(HEADERS)
        self.list.verticalHeader().setVisible(False)
        self.list.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.list.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.list.setSelectionMode(QAbstractItemView.SingleSelection)
        self.list.horizontalHeader().setSectionResizeMode(len(HEADERS) - 1, QHeaderView.Stretch)
        self.list.cellDoubleClicked.connect(self._open_row)

        buttons = QHBoxLayout()
        buttons.addWidget(self.rank_button)
        buttons.addWidget(self.next_button)
        progress = QHBoxLayout()
        progress.addWidget(self.progress_bar, 1)
        progress.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(buttons)
        layout.addLayout(progress)
        layout.addWidget(self.message_label)
        layout.addWidget(self.list, 1)

    # -- the ranking ------------------------------------------------------------------------
    def reload(self) -> bool:
        """Show the ranking saved in the study for the current rater; True if there was one."""
        from score_gui.rank import ranking_path, read_ranking

        study, rater = self._study(), self._rater()
        table = read_ranking(ranking_path(study, rater)) if study is not None and rater else None
        self.show_ranking(table)
        if table is not None:
            self.message_label.setText(f"Ranking of rater {rater} from the study ({len(table)} slices). "
                                       "Rank again after new labels or models.")
        return table is not None

    def show_ranking(self, table) -> None:
        """List ``table`` (a :func:`score_gui.rank.rank_slices` result, or None to clear)."""
        self.table = table
        self.shown = set()
        rows = [] if table is None else list(table.itertuples(index=False))
        self.list.setRowCount(len(rows))
        for row, values in enumerate(rows):
            # Slices are counted from 1 on screen, as everywhere a rater reads them.
            cells = (str(values.scan), str(int(values.slice) + 1), f"{float(values.score):.2f}", str(values.reason))
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if column in (1, 2):
                    item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
                self.list.setItem(row, column, item)
            self.list.item(row, 0).setData(Qt.UserRole, (str(values.scan), int(values.slice)))
        self.list.resizeColumnsToContents()
        self.next_button.setEnabled(bool(rows))

    def next_slice(self) -> tuple[str, int] | None:
        """Open the most useful slice still unlabelled and not shown yet; returns it (or None)."""
        from score_gui.rank import next_to_label
        from score_gui.naming import rater_who

        study, rater = self._study(), self._rater()
        if self.table is None or study is None or not rater:
            self.message_label.setText("Rank the slices first.")
            return None
        found = next_to_label(self.table, self._is_labelled_for(study, rater_who(rater)), skip=self.shown)
        if found is None:
            self.message_label.setText("Every ranked slice is labelled or has been shown. Rank again.")
            return None
        self.shown.add(found)
        self._select(found)
        self.open_slice.emit(*found)
        return found

    def _select(self, key: tuple[str, int]) -> None:
        for row in range(self.list.rowCount()):
            if self.row_key(row) == key:
                self.list.selectRow(row)
                self.message_label.setText(f"{key[0]}, slice {key[1] + 1}: {self.list.item(row, 3).text()}")
                return

    def row_key(self, row: int) -> tuple[str, int]:
        """``(scan, slice)`` of a listed row (slice 0-based, as in the core and the CLI)."""
        return self.list.item(row, 0).data(Qt.UserRole)

    def _open_row(self, row: int, _column: int) -> None:
        key = self.row_key(row)
        self.shown.add(key)
        self.open_slice.emit(*key)

    # -- running ----------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.worker is not None

    def start(self) -> None:
        """Rank the current rater's unlabelled slices in a worker thread."""
        from napari.qt.threading import create_worker

        from score_gui.rank import rank_slices
        from score_napari._qt.segmentation import reserve_ui_core

        study, rater = self._study(), self._rater()
        if study is None or not rater:
            self.message_label.setText("Open a study and choose a rater first.")
            return
        if self.running:
            return
        self._ranking_for = (study, rater)
        self.worker = create_worker(rank_slices, study, rater, self.models, workers=reserve_ui_core(),
                                    _start_thread=False)
        # Bound methods only: a finished worker must not keep the panel (and its window) alive.
        self.worker.yielded.connect(self._on_progress)
        self.worker.returned.connect(self._on_ranked)
        self.worker.errored.connect(self._on_error)
        self.worker.aborted.connect(self._on_aborted)
        self.worker.finished.connect(self._on_finished)
        self._set_running(True)
        self.message_label.setText(f"Ranking rater {rater}'s unlabelled slices...")
        self.worker.start()

    def cancel(self) -> None:
        if self.worker is not None:
            self.worker.quit()

    def _set_running(self, running: bool) -> None:
        self.rank_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        self.next_button.setEnabled(not running and self.table is not None and len(self.table) > 0)

    def _on_progress(self, progress: Progress) -> None:
        self.progress_bar.setRange(0, max(progress.total, 1))
        self.progress_bar.setValue(progress.done)
        self.message_label.setText(f"{progress.message}  ETA {format_eta(progress.eta_seconds())}")

    def _on_error(self, exc: Exception) -> None:
        self.message_label.setText(f"Ranking failed: {exc}")

    def _on_aborted(self) -> None:
        self.message_label.setText("Ranking cancelled.")

    def _on_ranked(self, table) -> None:
        from score_gui.rank import ranking_path, write_ranking

        study, rater = self._ranking_for
        write_ranking(table, ranking_path(study, rater))
        self.show_ranking(table)
        self.progress_bar.setValue(self.progress_bar.maximum())
        self.message_label.setText(f"{len(table)} unlabelled slices ranked. "
                                   "Next slice to label opens the most useful one.")
        self.ranked.emit(table)

    def _on_finished(self) -> None:
        self.worker = None
        self._set_running(False)
