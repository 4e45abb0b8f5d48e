"""Annotation dock: structure palette, tools, brush size, nesting, undo/redo, copy, layout.

Keys (on the labels layers, so they work wherever the mouse is over the canvas):
1-7 structures, B brush, E eraser, F fill, G polygon, K click correction (click or scribble:
add, Shift+click: remove), [ and ] brush size, C / Shift+C copy from the slice above / below,
Ctrl+Z / Ctrl+Shift+Z undo / redo.
"""

from __future__ import annotations

from qtpy.QtCore import Qt
from qtpy.QtWidgets import (QButtonGroup, QCheckBox, QGridLayout, QGroupBox, QHBoxLayout, QLabel,
                            QSlider, QSpinBox, QToolButton, QVBoxLayout, QWidget)

from score_gui import labels as lab
from score_napari._qt.icons import icon, swatch

STRUCTURES = [
    (lab.CSF, "Canal / CSF"),
    (lab.WM, "Cord / WM"),
    (lab.GM, "Gray matter"),
    (lab.ANTERIOR_HORNS, "Anterior horns"),
    (lab.POSTERIOR_HORNS, "Posterior horns"),
    (lab.GRAY_COMMISSURE, "Gray commissure"),
    (lab.LESION_VALUE, "Lesion"),
]
"""Palette order: value and name; the number key is the value."""

TOOL_KEYS = {"brush": "B", "eraser": "E", "fill": "F", "polygon": "G", "click": "K"}
TOOL_TIPS = {
    "brush": "Brush: paint the selected structure",
    "eraser": "Eraser: remove labels (with Lesion selected: remove lesions only)",
    "fill": "Fill: flood the clicked region with the selected structure",
    "polygon": "Polygon: click vertices, double-click to close and fill",
    "click": "Click correction of the selected structure (cord, gray matter or lesion): click or "
             "scribble where the labels missed it, Shift+click where they overreach; each click one "
             "undo step; hold Space to pan",
}


class AnnotationWidget(QWidget):
    """Tools for painting SCORE labels with a :class:`ScoreViewer`."""

    def __init__(self, score_viewer, parent=None):
        super().__init__(parent)
        self.score_viewer = score_viewer
        self.setObjectName("scoreAnnotation")
        layout = QVBoxLayout(self)
        layout.addWidget(self._structure_box())
        layout.addWidget(self._tool_box())
        layout.addWidget(self._edit_box())
        layout.addWidget(self._view_box())
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setObjectName("scoreAnnotationStatus")
        layout.addWidget(self.status)
        layout.addStretch(1)
        score_viewer.label_value_changed.connect(self._show_label_value)
        score_viewer.tool_changed.connect(self._show_tool)
        score_viewer.brush_size_changed.connect(self._show_brush_size)
        score_viewer.labels_changed.connect(self._update_undo_buttons)
        score_viewer.scan_loaded.connect(self._on_scan_loaded)
        score_viewer.status_message.connect(self._show_status)
        score_viewer.tool_changed.connect(self._explain_tool)
        self._show_label_value(score_viewer.label_value)
        self._show_tool(score_viewer.tool)
        self._update_undo_buttons()
        if score_viewer.scan is not None:
            self._on_scan_loaded()

    # -- building ----------------------------------------------------------------------
    def _structure_box(self) -> QGroupBox:
        box = QGroupBox("Structure")
        grid = QGridLayout(box)
        self.structure_group = QButtonGroup(self)
        self.structure_buttons = {}
        for row, (value, name) in enumerate(STRUCTURES):
            button = QToolButton()
            button.setText(f"{value}  {name}")
            button.setIcon(swatch(lab.LABEL_COLORS[value]))
            button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
            button.setCheckable(True)
            button.setAutoRaise(True)
            button.setToolTip(f"Paint {name.lower()} (key {value})")
            button.setMinimumWidth(170)
            self.structure_group.addButton(button, value)
            self.structure_buttons[value] = button
            grid.addWidget(button, row, 0, Qt.AlignmentFlag.AlignLeft)
        grid.setColumnStretch(1, 1)   # the list stays at the left edge of a wide dock
        self.structure_group.idClicked.connect(self.score_viewer.set_label_value)
        return box

    def _tool_box(self) -> QGroupBox:
        box = QGroupBox("Tool")
        row = QHBoxLayout(box)
        self.tool_group = QButtonGroup(self)
        self.tool_buttons = {}
        for tool, key in TOOL_KEYS.items():
            button = QToolButton()
            button.setIcon(icon(tool))
            button.setCheckable(True)
            button.setToolTip(f"{TOOL_TIPS[tool]} ({key})")
            button.clicked.connect(lambda _=False, t=tool: self.score_viewer.set_tool(t))
            self.tool_group.addButton(button)
            self.tool_buttons[tool] = button
            row.addWidget(button)
        row.addSpacing(8)
        row.addWidget(QLabel("Size"))
        self.brush_size = QSpinBox()
        self.brush_size.setRange(1, 60)
        self.brush_size.setValue(self.score_viewer.brush_size)
        self.brush_size.setToolTip("Brush diameter in pixels ([ smaller, ] larger)")
        self.brush_size.valueChanged.connect(self.score_viewer.set_brush_size)
        row.addWidget(self.brush_size)
        row.addStretch(1)
        return box

    def _edit_box(self) -> QGroupBox:
        box = QGroupBox("Edit")
        column = QVBoxLayout(box)
        self.nesting = QCheckBox("Nesting-aware painting")
        self.nesting.setIcon(icon("nesting"))
        self.nesting.setChecked(self.score_viewer.nesting_aware)
        self.nesting.setToolTip("Gray matter only inside the cord, horns and commissure only inside "
                                "gray matter, lesions only inside the cord")
        self.nesting.toggled.connect(lambda on: setattr(self.score_viewer, "nesting_aware", on))
        column.addWidget(self.nesting)
        row = QHBoxLayout()
        self.undo_button = self._action_button("undo", "Undo the last edit, any structure (Ctrl+Z)",
                                               self.score_viewer.undo)
        self.redo_button = self._action_button("redo", "Redo (Ctrl+Shift+Z)", self.score_viewer.redo)
        self.copy_up = self._action_button("copy_up", "Copy the labels of the slice above (C)",
                                           lambda: self.score_viewer.copy_from_neighbour(-1))
        self.copy_down = self._action_button("copy_down", "Copy the labels of the slice below (Shift+C)",
                                             lambda: self.score_viewer.copy_from_neighbour(+1))
        for button in (self.undo_button, self.redo_button, self.copy_up, self.copy_down):
            row.addWidget(button)
        row.addStretch(1)
        column.addLayout(row)
        return box

    def _view_box(self) -> QGroupBox:
        box = QGroupBox("View")
        column = QVBoxLayout(box)
        row = QHBoxLayout()
        column.addLayout(row)
        self.layout_buttons = {}
        tips = {"all": "All panes: 8 inversion images and 3 averages",
                "working": "Working panes: averages 1-5 (GM/WM) and 6-8 (cord/CSF)",
                "single": "One pane (average 1-5)"}
        for preset, tip in tips.items():
            button = self._action_button(f"layout_{preset}", tip,
                                         lambda p=preset: self.score_viewer.set_layout(p))
            self.layout_buttons[preset] = button
            row.addWidget(button)
        self.zoom_button = self._action_button("zoom_cord", "Zoom every pane to the spinal canal",
                                               self.score_viewer.zoom_to_cord)
        row.addWidget(self.zoom_button)
        self.contours = QCheckBox("Outline")
        self.contours.setToolTip("My labels as outlines instead of a translucent fill (O)")
        self.contours.setChecked(self.score_viewer.contours)
        self.contours.toggled.connect(lambda on: setattr(self.score_viewer, "contours", on))
        self.score_viewer.labels_style_changed.connect(self._show_outline_state)
        row.addWidget(self.contours)
        row.addStretch(1)
        others = QHBoxLayout()
        others.addWidget(QLabel("Other labels:"))
        self.reference_opacity = QSlider(Qt.Horizontal)
        self.reference_opacity.setRange(0, 100)
        self.reference_opacity.setValue(round(100 * self.score_viewer.reference_layers.opacity))
        self.reference_opacity.setToolTip("Opacity of the other sources' outlines")
        self.reference_opacity.valueChanged.connect(lambda v: self.score_viewer.reference_layers.set_opacity(v / 100))
        others.addWidget(self.reference_opacity, 1)
        column.addLayout(others)
        return box

    def _show_outline_state(self, outline: bool) -> None:
        self.contours.blockSignals(True)
        self.contours.setChecked(outline)
        self.contours.blockSignals(False)

    def _action_button(self, icon_name: str, tip: str, slot) -> QToolButton:
        button = QToolButton()
        button.setIcon(icon(icon_name))
        button.setToolTip(tip)
        button.clicked.connect(lambda _=False: self._run(slot))
        return button

    def _run(self, slot) -> None:
        if self.score_viewer.scan is not None:
            slot()

    # -- state -------------------------------------------------------------------------
    def _show_label_value(self, value: int) -> None:
        button = self.structure_buttons.get(value)
        if button is not None and not button.isChecked():
            button.setChecked(True)

    def _show_tool(self, tool: str) -> None:
        button = self.tool_buttons.get(tool)
        if button is not None and not button.isChecked():
            button.setChecked(True)

    def _show_status(self, text: str) -> None:
        self.status.setText(text)

    def _explain_tool(self, tool: str) -> None:
        """The click tool is the one whose use is not obvious from its icon: say how."""
        self.status.setText("Click or scribble: add the selected structure where the labels missed it; "
                            "Shift+click: remove it where they overreach. Ctrl+Z undoes a click; "
                            "hold Space to pan." if tool == "click" else "")

    def _show_brush_size(self, size: int) -> None:
        if self.brush_size.value() != size:
            self.brush_size.setValue(size)

    def _update_undo_buttons(self) -> None:
        self.undo_button.setEnabled(self.score_viewer.can_undo)
        self.redo_button.setEnabled(self.score_viewer.can_redo)

    def _on_scan_loaded(self) -> None:
        self._update_undo_buttons()
        amira = self.score_viewer.scan.is_amira
        for preset in ("working",):
            self.layout_buttons[preset].setEnabled(amira)
