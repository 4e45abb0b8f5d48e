"""Annotation dock and live areas table with real widgets on a real napari window."""

from __future__ import annotations

import time

import numpy as np
import pytest

from score_gui import labels as lab
from score_gui.areas import areas_table
from score_gui.labels import LESION_VALUE, empty_labels
from score_napari._qt.annotation import STRUCTURES, TOOL_KEYS, AnnotationWidget
from score_napari._qt.areas_table import ROWS, AreasTableWidget
from score_napari._qt.icons import ICONS, icon
from score_napari._qt.viewer_controller import TOOLS, ScoreViewer
from score_napari._sample_data import simple_phantom

from tests.plugins.viewer_helpers import close_viewer

pytestmark = pytest.mark.gui


@pytest.fixture(scope="module")
def env():
    import napari
    from qtpy.QtWidgets import QApplication

    viewer = napari.Viewer(show=True)
    app = QApplication.instance()
    scan, truth = simple_phantom(n_slices=3, size=64)
    score_viewer = ScoreViewer(viewer)
    annotation = AnnotationWidget(score_viewer)
    areas = AreasTableWidget(score_viewer)
    viewer.window.add_dock_widget(annotation, name="Annotation", area="right")
    viewer.window.add_dock_widget(areas, name="Areas", area="right")
    score_viewer.load_scan(scan, truth)
    for _ in range(10):
        app.processEvents()
        time.sleep(0.01)
    yield score_viewer, annotation, areas, scan, truth, app
    close_viewer(viewer, app)


def test_every_icon_name_exists(qapp):
    for name in ICONS:
        assert not icon(name).isNull(), name


def test_palette_and_tools_drive_the_viewer(env):
    sv, widget, _, _, _, _ = env
    assert [value for value, _ in STRUCTURES] == list(range(1, 8))
    for value, button in widget.structure_buttons.items():
        assert f"key {value}" in button.toolTip()
        button.click()
        assert sv.label_value == value and sv.master.selected_label == value
    for tool, button in widget.tool_buttons.items():
        assert f"({TOOL_KEYS[tool]})" in button.toolTip()
        button.click()
        assert sv.tool == tool and sv.master.mode == TOOLS[tool]
    widget.brush_size.setValue(9)
    assert sv.brush_size == 9 and sv.master.brush_size == 9
    widget.nesting.setChecked(False)
    assert not sv.nesting_aware
    widget.nesting.setChecked(True)
    widget.contours.setChecked(True)
    assert sv.master.contour == 1
    widget.contours.setChecked(False)
    widget.layout_buttons["working"].click()
    assert sv.layout == "working"
    widget.layout_buttons["all"].click()
    # The viewer tells the widget too (e.g. a key press).
    sv.set_label_value(lab.GRAY_COMMISSURE)
    assert widget.structure_buttons[lab.GRAY_COMMISSURE].isChecked()
    sv.set_tool("fill")
    assert widget.tool_buttons["fill"].isChecked()


def test_number_keys_override_napari_mode_keys(env):
    from qtpy.QtCore import Qt
    from qtpy.QtTest import QTest

    sv, widget, _, _, _, app = env
    sv.set_tool("brush")
    native = sv.pool.vispy_canvas()._scene_canvas.native
    native.setFocus()
    for key, value in ((Qt.Key.Key_3, lab.GM), (Qt.Key.Key_7, LESION_VALUE), (Qt.Key.Key_1, lab.CSF)):
        QTest.keyClick(native, key)
        app.processEvents()
        assert sv.label_value == value
        assert sv.master.mode == "paint"      # napari's "1" (eraser) did not fire
    QTest.keyClick(native, Qt.Key.Key_BracketRight)
    app.processEvents()
    assert widget.brush_size.value() == sv.brush_size


def test_undo_button_and_areas_follow_strokes(env):
    sv, widget, areas, scan, truth, app = env
    sv.set_labels(truth)
    sv.set_slice(1)
    s = sv.current_slice
    expected = areas_table(truth.dseg[s:s + 1], truth.lesion[s:s + 1], scan.pixel_area_mm2)
    for r, (column, _, na_column) in enumerate(ROWS):
        assert areas.table.item(r, 0).text() == f"{expected.loc[0, column]:.2f}"
        if na_column:
            assert areas.table.item(r, 1).text() == f"{expected.loc[0, na_column]:.2f}"
    assert not widget.undo_button.isEnabled()
    # A stroke of CSF outside the canal grows the canal area at once.
    sv.set_label_value(lab.CSF)
    sv.set_brush_size(3)
    sv.master.paint((s, 3, 3), lab.CSF)
    app.processEvents()
    row = areas.current_row()
    dseg, lesion = sv.get_labels().dseg, sv.get_labels().lesion
    again = areas_table(dseg[s:s + 1], lesion[s:s + 1], scan.pixel_area_mm2)
    assert row["canal"] == pytest.approx(again.loc[0, "canal"])
    assert row["canal"] > expected.loc[0, "canal"]
    assert areas.table.item(0, 0).text() == f"{again.loc[0, 'canal']:.2f}"
    assert widget.undo_button.isEnabled()
    widget.undo_button.click()
    assert areas.table.item(0, 0).text() == f"{expected.loc[0, 'canal']:.2f}"
    assert widget.redo_button.isEnabled()
    # Slice change updates the table; an empty slice reads as unlabelled.
    sv.set_labels(empty_labels(scan))
    assert "unlabelled" in areas.title.text() and areas.table.item(0, 0).text() == ""
    sv.set_labels(truth)
    sv.set_slice(0)
    assert areas.title.text().startswith("Slice 1/3")
    first = areas_table(truth.dseg[:1], truth.lesion[:1], scan.pixel_area_mm2)
    assert areas.table.item(2, 0).text() == f"{first.loc[0, 'cord']:.2f}"


def test_copy_buttons(env):
    sv, widget, _, scan, truth, _ = env
    sv.set_labels(truth)
    sv.set_slice(1)
    sv.clear_labels()
    assert not sv.overlay.any()
    sv.undo()
    sv.set_labels(empty_labels(scan))
    sv.overlay[0] = 2
    widget.copy_up.click()
    assert (sv.overlay[1] == 2).all()
    widget.copy_down.click()
    assert not sv.overlay[1].any()
