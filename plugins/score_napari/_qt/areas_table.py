"""Live areas of the current slice (mm²): total and normal-appearing, per compartment."""

from __future__ import annotations

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QHeaderView, QLabel, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

from score_gui.areas import areas_table

ROWS = [
    ("canal", "Canal", None),
    ("csf", "CSF", None),
    ("cord", "Cord", None),
    ("wm", "White matter", "na_wm"),
    ("gm", "Gray matter", "na_gm"),
    ("anterior_horns", "Anterior horns", "na_anterior_horns"),
    ("posterior_horns", "Posterior horns", "na_posterior_horns"),
    ("gray_commissure", "Gray commissure", "na_gray_commissure"),
    ("lesion", "Lesion", None),
]
"""(areas column, row title, normal-appearing column or None)."""


def format_area(value) -> str:
    """``12.34`` or an empty string for unknown (NaN).

    Examples
    --------
    >>> format_area(3.14159), format_area(float("nan"))
    ('3.14', '')
    """
    return "" if value is None or not np.isfinite(value) else f"{value:.2f}"


class AreasTableWidget(QWidget):
    """Areas of the current slice, updated after every edit and slice change."""

    def __init__(self, score_viewer, parent=None):
        super().__init__(parent)
        self.score_viewer = score_viewer
        self.setObjectName("scoreAreas")
        layout = QVBoxLayout(self)
        self.title = QLabel("No scan")
        layout.addWidget(self.title)
        self.table = QTableWidget(len(ROWS), 2)
        self.table.setHorizontalHeaderLabels(["total mm²", "NA mm²"])
        self.table.horizontalHeaderItem(1).setToolTip("Normal-appearing: the compartment minus lesions")
        self.table.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        rows_height = sum(self.table.rowHeight(r) for r in range(len(ROWS)))
        self.table.setMinimumHeight(rows_height + self.table.horizontalHeader().height() + 4)
        self.table.setVerticalHeaderLabels([title for _, title, _ in ROWS])
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        layout.addWidget(self.table)
        self.row_table = None
        score_viewer.labels_changed.connect(self.update_table)
        score_viewer.slice_changed.connect(self.update_table)
        score_viewer.scan_loaded.connect(self.update_table)
        self.update_table()

    def current_row(self):
        """The areas row (contract columns) of the current slice, or None without a scan."""
        sv = self.score_viewer
        if sv.scan is None:
            return None
        s = sv.current_slice
        if not 0 <= s < sv.scan.n_slices or sv.overlay is None or sv.overlay.shape[0] != sv.scan.n_slices:
            return None
        labels = sv.get_labels()
        lesion = None if labels.lesion is None else labels.lesion[s:s + 1]
        table = areas_table(labels.dseg[s:s + 1], lesion, sv.scan.pixel_area_mm2,
                            levels=[sv.scan.level(s)], labelled=labels.labelled)
        return table.iloc[0]

    def update_table(self, *args) -> None:
        row = self.current_row()
        self.row_table = row
        if row is None:
            self.title.setText("No scan")
            return
        sv = self.score_viewer
        s = sv.current_slice
        level = sv.scan.level(s)
        labelled = bool(sv.overlay[s].any())
        state = "" if labelled else " (unlabelled)"
        self.title.setText(f"Slice {s + 1}/{sv.scan.n_slices}{' ' + level if level else ''}{state} · "
                           f"{sv.scan.pixel_area_mm2:.3f} mm²/pixel")
        for r, (column, _, na_column) in enumerate(ROWS):
            self._set(r, 0, format_area(row[column]))
            self._set(r, 1, format_area(row[na_column]) if na_column else "")

    def _set(self, row: int, column: int, text: str) -> None:
        item = self.table.item(row, column)
        if item is None:
            item = QTableWidgetItem()
            item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.table.setItem(row, column, item)
        item.setText(text)
