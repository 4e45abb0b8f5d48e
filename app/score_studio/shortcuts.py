"""Every action of the main window in one table: text, icon, shortcut and tooltip.

The table feeds the menus and toolbar, the tooltips (which always show the shortcut) and
the shortcuts panel (F1), so the three never disagree. napari's own keys (brush, eraser,
fill, label +/-) are listed too, because a rater needs them most.

Examples
--------
>>> ACTIONS["save"].shortcut, ACTIONS["save"].tooltip()
('Ctrl+S', 'Save my labels (desc-rater<ID>) (Ctrl+S)')
"""

from __future__ import annotations

from dataclasses import dataclass

from qtpy.QtCore import Qt
from qtpy.QtWidgets import (QDialog, QDialogButtonBox, QHeaderView, QTableWidget, QTableWidgetItem,
                            QVBoxLayout, QWidget)


@dataclass(frozen=True)
class ActionSpec:
    """One user action."""

    text: str
    icon: str            # a qtawesome name; tests check that every one exists
    shortcut: str = ""
    help: str = ""

    def tooltip(self) -> str:
        base = self.help or self.text.replace("&", "")
        return f"{base} ({self.shortcut})" if self.shortcut else base


ACTIONS: dict[str, ActionSpec] = {
    "open_scan": ActionSpec("Open &scan...", "fa5s.file-medical", "Ctrl+O", "Open one scan file (NIfTI)"),
    "open_study": ActionSpec("Open s&tudy...", "fa5s.folder-open", "Ctrl+Shift+O",
                             "Open a study folder (sub-*/ses-*/anat)"),
    "import_dicom": ActionSpec("Import &DICOM folder...", "fa5s.file-import", "Ctrl+I",
                               "Convert a DICOM folder to NIfTI and open it"),
    "open_demo": ActionSpec("Open &demo study", "fa5s.flask", "", "Open the synthetic demo study"),
    "save": ActionSpec("&Save labels", "fa5s.save", "Ctrl+S", "Save my labels (desc-rater<ID>)"),
    "undo": ActionSpec("&Undo", "fa5s.undo", "Ctrl+Z", "Undo the last label edit"),
    "redo": ActionSpec("&Redo", "fa5s.redo", "Ctrl+Shift+Z", "Redo the label edit"),
    "prev_slice": ActionSpec("Previous slice", "fa5s.chevron-up", "PgUp", "Go to the previous slice"),
    "next_slice": ActionSpec("Next slice", "fa5s.chevron-down", "PgDown", "Go to the next slice"),
    "prev_scan": ActionSpec("Previous scan", "fa5s.step-backward", "Ctrl+PgUp", "Open the previous scan of the study"),
    "next_scan": ActionSpec("Next scan", "fa5s.step-forward", "Ctrl+PgDown", "Open the next scan of the study"),
    "zoom_cord": ActionSpec("&Zoom to cord", "fa5s.search-plus", "Ctrl+F", "Zoom every pane onto the spinal cord"),
    "layout_all": ActionSpec("All images", "fa5s.th", "Ctrl+1", "Show every inversion image and average"),
    "layout_working": ActionSpec("Working set", "fa5s.th-large", "Ctrl+2",
                                 "Show the averages used for rating (1-5, 6-8, all)"),
    "layout_single": ActionSpec("Single image", "fa5s.square", "Ctrl+3", "Show one large image"),
    "consensus": ActionSpec("Rater &consensus", "fa5s.users", "Ctrl+M",
                            "Majority vote of all raters' labels (desc-consensus)"),
    "segment": ActionSpec("Segment &this scan", "fa5s.magic", "Ctrl+G",
                          "Run the automatic segmentation on this scan"),
    "segment_all": ActionSpec("Segment &all scans", "fa5s.layer-group", "Ctrl+Shift+G",
                              "Run the automatic segmentation on every scan of the study"),
    "cancel": ActionSpec("Cancel", "fa5s.stop-circle", "Esc", "Cancel the running segmentation"),
    "rater": ActionSpec("Change &rater...", "fa5s.user-edit", "", "Change who is rating"),
    "mode_annotate": ActionSpec("Annotate", "fa5s.paint-brush", "F2", "Annotate: paint and correct labels"),
    "mode_segment": ActionSpec("Segment", "fa5s.robot", "F3", "Segment: automatic segmentation"),
    "mode_qc": ActionSpec("QC", "fa5s.check-double", "F4", "QC: pass or fail each slice"),
    "mode_export": ActionSpec("Export", "fa5s.file-export", "F5", "Export: areas tables and reports"),
    "mode_train": ActionSpec("Train", "fa5s.graduation-cap", "F6",
                             "Train: models from the study's labels, and which slices to label next"),
    "mode_longitudinal": ActionSpec("Over time", "fa5s.chart-line", "F7",
                                    "Over time: a subject's sessions side by side, areas against the rescan band"),
    "next_to_label": ActionSpec("Next slice to &label", "fa5s.forward", "Ctrl+L",
                                "Open the most useful slice still unlabelled (rank them in Train mode)"),
    "accept_slice": ActionSpec("&Accept proposed slice", "fa5s.check", "Ctrl+Return",
                               "Accept the models' proposal on this slice as it is"),
    "shortcuts": ActionSpec("&Keyboard shortcuts", "fa5s.keyboard", "F1", "Show every keyboard shortcut"),
    "quit": ActionSpec("&Quit", "fa5s.sign-out-alt", "Ctrl+Q", "Save and quit"),
}

VIEWER_KEYS = [
    ("P", "Paint brush"), ("E", "Eraser"), ("F", "Fill bucket"), ("L", "Pick a label"),
    ("Z", "Pan and zoom"), ("[ / ]", "Smaller / larger brush"), ("1-7", "Choose a label value (annotation panel)"),
    ("Mouse wheel", "Zoom"), ("Ctrl + mouse wheel", "Change slice"), ("Space (hold)", "Pan while painting"),
]
"""Keys that napari and the annotation widget handle inside the viewer."""


def shortcut_rows() -> list[tuple[str, str]]:
    """(keys, what) for the shortcuts panel: the main window's actions, then the viewer's."""
    rows = [(spec.shortcut, spec.help or spec.text.replace("&", "")) for spec in ACTIONS.values()
            if spec.shortcut]
    return rows + VIEWER_KEYS


class ShortcutsDialog(QDialog):
    """A read-only table of every shortcut (opened with F1)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Keyboard shortcuts")
        rows = shortcut_rows()
        table = QTableWidget(len(rows), 2, self)
        table.setHorizontalHeaderLabels(["Keys", "Action"])
        table.verticalHeader().setVisible(False)
        table.setEditTriggers(QTableWidget.NoEditTriggers)
        table.setSelectionMode(QTableWidget.NoSelection)
        for row, (keys, what) in enumerate(rows):
            key_item = QTableWidgetItem(keys)
            key_item.setTextAlignment(Qt.AlignCenter)
            table.setItem(row, 0, key_item)
            table.setItem(row, 1, QTableWidgetItem(what))
        table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeToContents)
        table.horizontalHeader().setSectionResizeMode(1, QHeaderView.Stretch)
        self.table = table
        buttons = QDialogButtonBox(QDialogButtonBox.Close, self)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(table)
        layout.addWidget(buttons)
        self.resize(560, 640)
