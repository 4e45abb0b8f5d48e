"""ScoreViewer on a real napari window under Xvfb: panes, shared labels, painting, undo,
nesting, layouts, reference contours, screenshots.

One viewer per module (building 22 layers costs seconds); every test starts from the
demo labels via ``set_labels``.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from score_gui import labels as lab
from score_gui.labels import LESION_VALUE, LabelMap, empty_labels
from score_napari._qt.viewer_controller import ScoreViewer, compose_overlay, hex_to_rgba
from score_napari._sample_data import simple_phantom

from tests.plugins.viewer_helpers import close_viewer, settle

pytestmark = pytest.mark.gui


@pytest.fixture(scope="module")
def env():
    import napari
    from qtpy.QtWidgets import QApplication

    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1400, 900)
    app = QApplication.instance()
    settle(app, viewer)
    scan, truth = simple_phantom(n_slices=4, size=96)
    score_viewer = ScoreViewer(viewer)
    score_viewer.load_scan(scan, truth)
    settle(app, viewer)
    yield score_viewer, scan, truth, app
    close_viewer(viewer, app)


@pytest.fixture
def sv(env):
    score_viewer, scan, truth, app = env
    score_viewer.set_layout("all")
    score_viewer.contours = False
    score_viewer.nesting_aware = True
    score_viewer.set_labels(truth)
    score_viewer.set_slice(1)
    score_viewer.set_tool("brush")
    score_viewer.set_label_value(lab.WM)
    score_viewer.set_brush_size(3)
    app.processEvents()
    return score_viewer


def copy_colors(layer, rows, cols):
    """Texture values a labels copy shows at (rows, cols) of the current slice."""
    return np.asarray(layer._slice.image.view)[rows, cols]


def expected_texture(layer, value):
    return layer.colormap._data_to_texture(np.array([value], np.uint8))[0]


def test_panes_titles_contrast_and_shared_labels(sv, env):
    _, scan, _, _ = env
    assert len(sv.panes) == 11
    titles = [pane.title for pane in sv.panes]
    assert titles[0] == "TI1 97 ms" and titles[7] == "TI8 528 ms"
    assert titles[8].startswith("avg TI1-5") and titles[10] == "avg all"
    assert sv.viewer.canvas.grid.enabled and sv.viewer.canvas.grid.actual_shape(sv.viewer.layers) == (3, 4)
    for pane in sv.panes:
        assert pane.labels.data is sv.overlay          # one array, no copies
        assert pane.image.name_overlay.visible
        low, high = pane.image.contrast_limits
        image = np.asarray(pane.image.data)
        assert np.percentile(image, 0.2) <= low < high <= image.max()
    assert sv.master is sv.panes[0].labels and sv.master.editable
    assert sum(pane.labels.editable for pane in sv.panes) == 1
    np.testing.assert_array_equal(sv.get_labels().dseg, env[2].dseg)
    np.testing.assert_array_equal(sv.get_labels().lesion, env[2].lesion)


def test_single_image_scan_has_one_pane(qtbot):
    import napari

    from score_gui.scan import Scan

    viewer = napari.Viewer(show=False)
    try:
        scan = Scan.from_arrays(np.random.default_rng(0).random((3, 32, 40), dtype=np.float32))
        score_viewer = ScoreViewer(viewer)
        score_viewer.warm_up(n_images=1, shape=(3, 32, 40), spare_references=0)
        assert score_viewer.scan is None and len(viewer.layers) == 2
        layers_before = list(viewer.layers)
        score_viewer.load_scan(scan)
        assert list(viewer.layers) == layers_before     # the warmed-up layers were reused
        assert [pane.key for pane in score_viewer.panes] == ["image"]
        assert not viewer.canvas.grid.enabled
        assert score_viewer.get_labels().dseg.shape == (3, 32, 40)
        heat = np.random.default_rng(1).random((3, 32, 40)).astype(np.float32)
        score_viewer.add_overlay("disagreement", heat)
        assert viewer.canvas.grid.stride == 3
        pane = score_viewer.panes[0]
        assert [layer.name for layer in viewer.layers] == [layer.name for layer in pane.layers()]
        assert pane.extras["disagreement"].blending == "additive"
        score_viewer.set_overlay_visible("disagreement", False)
        assert not pane.extras["disagreement"].visible
        score_viewer.remove_overlay("disagreement")
        assert len(viewer.layers) == 2 and score_viewer.master.editable
    finally:
        del score_viewer
        close_viewer(viewer, qtbot_app())


def qtbot_app():
    from qtpy.QtWidgets import QApplication

    return QApplication.instance()


def drag(sv, app, pane_key, points):
    """Press, move (>= 10 ms apart, integer positions) and release on a pane's canvas."""
    from qtpy.QtCore import QEvent, QPoint, QPointF, Qt
    from qtpy.QtGui import QMouseEvent
    from qtpy.QtTest import QTest

    native = sv.pool.vispy_canvas()._scene_canvas.native
    pixels = [QPoint(*sv.canvas_position(pane_key, r, c)) for r, c in points]
    QTest.mousePress(native, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, pixels[0])
    for pixel in pixels[1:]:
        time.sleep(0.012)
        move = QMouseEvent(QEvent.Type.MouseMove, QPointF(pixel), QPointF(native.mapToGlobal(pixel)),
                           Qt.MouseButton.NoButton, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
        app.sendEvent(native, move)
        app.processEvents()
    QTest.mouseRelease(native, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, pixels[-1])
    app.processEvents()


def test_mouse_stroke_in_another_pane_paints_shared_array_and_every_copy(sv, env):
    _, scan, _, app = env
    sv.set_labels(empty_labels(scan))
    sv.set_layout("working")
    settle(app, sv.viewer)
    changes = []
    sv.labels_changed.connect(lambda: changes.append(1))
    # The master is the 1-5 pane's layer; drag in the 6-8 pane on its right.
    assert sv.master is next(p.labels for p in sv.panes if p.key == "1-5")
    points = [(20, 20 + 2 * k) for k in range(11)]
    drag(sv, app, "6-8", points)
    s = sv.current_slice
    painted = sv.overlay[s] == lab.WM
    assert painted[20, 20] and painted[20, 40] and 40 <= painted.sum() <= 200
    assert not (sv.overlay[np.arange(4) != s] > 0).any()
    assert changes == [1] and sv.can_undo
    for pane in sv.visible_panes():
        shown = copy_colors(pane.labels, 20, slice(20, 41))
        assert (shown == expected_texture(pane.labels, lab.WM)).all(), pane.title
    sv.labels_changed.disconnect()
    sv.labels_changed.connect(lambda: None)


def test_live_propagation_during_a_stroke(sv, env):
    """Copies change on each mouse move, not only when the stroke ends."""
    _, scan, _, app = env
    sv.set_labels(empty_labels(scan))
    master, other = sv.panes[0].labels, sv.panes[5].labels
    with master.block_history():          # what napari does for a drag in progress
        master.paint((sv.current_slice, 10, 10), lab.CSF)
        assert copy_colors(other, 10, 10) == expected_texture(other, lab.CSF)
        assert not sv.can_undo            # the stroke is not finished yet
    assert sv.can_undo


def test_nesting_refuses_gray_matter_outside_the_cord(sv, env):
    _, scan, truth, _ = env
    s = sv.current_slice
    cord = lab.structure_mask(truth.dseg[s], "cord")
    outside = tuple(np.argwhere(~lab.structure_mask(truth.dseg[s], "canal"))[0])
    inside = tuple(np.argwhere(truth.dseg[s] == lab.WM)[len(np.argwhere(truth.dseg[s] == lab.WM)) // 2])
    sv.set_label_value(lab.GM)
    sv.set_brush_size(7)
    before = sv.overlay.copy()
    sv.master.paint((s, *outside), lab.GM)
    np.testing.assert_array_equal(sv.overlay, before)
    sv.master.paint((s, *inside), lab.GM)
    gm_now = lab.structure_mask(sv.get_labels().dseg[s], "gm")
    assert gm_now[inside] and not (gm_now & ~cord).any()
    # Horns only inside gray matter; lesions only inside the cord.
    sv.set_label_value(lab.ANTERIOR_HORNS)
    sv.master.paint((s, *outside), lab.ANTERIOR_HORNS)
    assert not (sv.overlay[s] == lab.ANTERIOR_HORNS)[~lab.structure_mask(before[s], "gm")].any()
    sv.master.paint((s, *outside), LESION_VALUE)
    assert not (sv.overlay[s] == LESION_VALUE)[~cord].any()
    # Without nesting the same stroke goes through.
    sv.nesting_aware = False
    sv.master.paint((s, *outside), lab.GM)
    assert sv.overlay[(s, *outside)] == lab.GM


def test_undo_redo_across_structures_refreshes_copies(sv, env):
    _, scan, truth, _ = env
    s = sv.current_slice
    start = sv.overlay.copy()
    sv.nesting_aware = False
    sv.master.paint((s, 5, 5), lab.CSF)
    sv.master.paint((s, 5, 15), lab.POSTERIOR_HORNS)
    other = sv.panes[7].labels
    assert copy_colors(other, 5, 15) == expected_texture(other, lab.POSTERIOR_HORNS)
    sv.undo()
    assert sv.overlay[s, 5, 15] == 0 and sv.overlay[s, 5, 5] == lab.CSF
    assert copy_colors(other, 5, 15) == expected_texture(other, 0)
    sv.undo()
    np.testing.assert_array_equal(sv.overlay, start)
    sv.redo()
    assert sv.overlay[s, 5, 5] == lab.CSF
    assert copy_colors(other, 5, 5) == expected_texture(other, lab.CSF)
    # napari's own Ctrl+Z on the layer goes through the viewer's history too.
    sv.master.undo()
    np.testing.assert_array_equal(sv.overlay, start)


def test_lesions_keep_their_tissue_and_split_back(sv, env):
    _, scan, truth, _ = env
    s = sv.current_slice
    wm = np.argwhere((truth.dseg[s] == lab.WM) & (truth.lesion[s] == 0))
    point = tuple(wm[len(wm) // 2])
    sv.set_brush_size(1)
    sv.set_label_value(LESION_VALUE)
    sv.master.paint((s, *point), LESION_VALUE)
    result = sv.get_labels()
    assert result.lesion[(s, *point)] == 1 and result.dseg[(s, *point)] == lab.WM
    # Tissue painted over a lesion changes the class under it, the lesion stays.
    sv.set_label_value(lab.GM)
    sv.master.paint((s, *point), lab.GM)
    assert sv.overlay[(s, *point)] == LESION_VALUE and sv.get_labels().dseg[(s, *point)] == lab.GM
    # The eraser with "lesion" selected removes only the lesion.
    sv.set_label_value(LESION_VALUE)
    sv.set_tool("eraser")
    sv.master.paint((s, *point), 0)
    assert sv.overlay[(s, *point)] == lab.GM and sv.get_labels().lesion[(s, *point)] == 0


def test_copy_from_neighbour_is_undoable(sv, env):
    _, scan, truth, _ = env
    sv.set_slice(2)
    keep = (np.arange(4) != 2)[:, None, None]
    sv.set_labels(LabelMap(dseg=(truth.dseg * keep).astype(np.uint8), lesion=(truth.lesion * keep).astype(np.uint8)))
    assert not sv.overlay[2].any()
    assert sv.copy_from_neighbour(-1)
    np.testing.assert_array_equal(sv.overlay[2], sv.overlay[1])
    sv.undo()
    assert not sv.overlay[2].any()
    sv.set_slice(0)
    assert not sv.copy_from_neighbour(-1)


def test_layouts_move_the_master_and_slice_signal(sv, env):
    _, _, _, app = env
    sv.set_layout("working")
    assert [p.key for p in sv.visible_panes()] == ["1-5", "6-8"]
    assert sv.viewer.canvas.grid.actual_shape(sv.viewer.layers) == (1, 2)
    sv.set_layout("single", pane="TI3")
    assert not sv.viewer.canvas.grid.enabled
    assert sv.master is sv.panes[2].labels and sv.master.editable and sv.master.visible
    assert sv.viewer.layers.selection.active is sv.master
    assert sum(layer.visible for layer in sv.viewer.layers) == 2
    seen = []
    sv.slice_changed.connect(seen.append)
    sv.set_slice(3)
    sv.set_slice(99)
    assert seen == [3] and sv.current_slice == 3
    sv.slice_changed.disconnect(seen.append)
    with pytest.raises(ValueError):
        sv.set_layout("mosaic")


def test_reference_contours_on_every_pane_shown_on_the_averages(sv, env):
    _, scan, truth, _ = env
    other = LabelMap(dseg=np.roll(truth.dseg, 3, axis=2), lesion=None, who="raterB")
    sv.add_reference_labels("raterB", other)
    assert sv.viewer.canvas.grid.stride == 3
    for pane in sv.panes:
        layer = pane.references["raterB"]
        assert layer.contour == 1 and not layer.editable
        assert sv.viewer.layers.index(layer) == sv.viewer.layers.index(pane.labels) - 1
    # All panes: contours on the averages only; the two working panes: on both.
    assert {p.key for p in sv.panes if p.references["raterB"].visible} == {"1-5", "6-8", "all"}
    sv.set_layout("working")
    assert {p.key for p in sv.panes if p.references["raterB"].visible} == {"1-5", "6-8"}
    sv.set_layout("single", pane="TI3")
    assert {p.key for p in sv.panes if p.references["raterB"].visible} == {"TI3"}
    sv.set_layout("all")
    sv.set_reference_visible("raterB", False)
    assert not any(p.references["raterB"].visible for p in sv.panes)
    assert sv.viewer.canvas.grid.actual_shape(sv.viewer.layers) == (3, 4)
    sv.remove_reference_labels("raterB")
    assert sv.viewer.canvas.grid.stride == 2 and len(sv.viewer.layers) == 22
    assert sv.master.editable and sv.viewer.layers.selection.active is sv.master


def test_zoom_to_cord_frames_the_canal(sv, env):
    _, scan, truth, _ = env
    sv.viewer.reset_view()
    zoom_before = sv.viewer.scene.camera.zoom
    sv.zoom_to_cord()
    camera = sv.viewer.scene.camera
    rows, cols = np.nonzero(truth.dseg[sv.current_slice] > 0)
    dy, dx = scan.pixel_spacing
    assert camera.zoom > zoom_before
    assert abs(camera.center[-2] - (rows.min() + rows.max() + 1) / 2 * dy) < 1
    assert abs(camera.center[-1] - (cols.min() + cols.max() + 1) / 2 * dx) < 1


def colour_mask(image, hex_color, tolerance=40):
    target = hex_to_rgba(hex_color)[:3] * 255
    return (np.abs(image[..., :3].astype(int) - target).max(axis=-1) <= tolerance)


def test_screenshot_shows_labels_in_every_pane(sv, env, tmp_path):
    _, scan, _, app = env
    sv.contours = True
    sv.set_slice(0)  # a slice with a lesion
    settle(app, sv.viewer)
    sv.viewer.reset_view()
    app.processEvents()
    shot = sv.viewer.screenshot(canvas_only=True, flash=False)
    assert shot.std() > 10   # not blank
    rows, cols = sv.viewer.canvas.grid.actual_shape(sv.viewer.layers)
    h, w = shot.shape[0] // rows, shot.shape[1] // cols
    for i, pane in enumerate(sv.panes):
        cell = shot[(i // cols) * h:(i // cols + 1) * h, (i % cols) * w:(i % cols + 1) * w]
        assert colour_mask(cell, lab.LABEL_COLORS[lab.CSF]).sum() > 20, pane.title
        assert colour_mask(cell, lab.LABEL_COLORS[lab.ANTERIOR_HORNS]).sum() > 3, pane.title
    empty_cell = shot[2 * h:, 3 * w:]
    assert not colour_mask(empty_cell, lab.LABEL_COLORS[lab.CSF]).any()
    assert colour_mask(shot, lab.LABEL_COLORS[LESION_VALUE]).sum() > 3


def test_singleton_reference_reserve_survives_many_slice_changes(sv, env):
    """napari 0.9.2's Qt side on PySide6 6.12 drops references to None on each slice change;
    the reserve added by ScoreViewer keeps CPython 3.11 from aborting (none_dealloc)."""
    import sys

    before = sys.getrefcount(None)
    assert before > 1 << 39 or sys.version_info >= (3, 12)
    for i in range(40):
        sv.set_slice(i % 4)
    assert sys.getrefcount(None) > 1 << 39 or sys.version_info >= (3, 12)


def test_next_scan_reuses_layers_references_and_layout(sv, env):
    """Opening another scan of the same geometry swaps data only: the same layer objects,
    other raters' contour layers updated in place, the layout kept."""
    _, scan, truth, app = env
    other = LabelMap(dseg=np.roll(truth.dseg, 3, axis=2), lesion=None, who="raterB")
    sv.set_layout("working")
    sv.load_scan(scan, truth, references={"raterB": other})
    layers = list(sv.viewer.layers)
    shifted = LabelMap(dseg=np.roll(truth.dseg, -2, axis=1), lesion=None, who="raterB")
    sv.load_scan(scan, empty_labels(scan), references={"raterB": shifted})
    assert list(sv.viewer.layers) == layers and sv.layout == "working"
    assert sum(layer.visible for layer in sv.viewer.layers) == 6      # 2 panes x 3 layers
    assert np.array_equal(sv.reference_layers.sources["raterB"], shifted.dseg)   # the outline grid follows
    assert sv.get_labels().dseg.sum() == 0
    reference_layers = [pane.references["raterB"] for pane in sv.panes]
    sv.load_scan(scan, truth)                    # no references: B's layers kept, hidden, empty
    assert sv.references == [] and len(sv.viewer.layers) == 33
    assert not any(layer.visible or layer.data.any() for layer in reference_layers)
    sv.load_scan(scan, truth, references={"consensus": other})       # takes the spare layers
    assert sv.references == ["consensus"]
    assert [pane.references["consensus"] for pane in sv.panes] == reference_layers
    assert sum(layer.visible for layer in reference_layers) == 2
    assert reference_layers[0].name.startswith("consensus")
    assert np.array_equal(sv.reference_layers.sources["consensus"], other.dseg)
    sv.remove_reference_labels("consensus")                            # layers and all
    assert len(sv.viewer.layers) == 22 and sv.viewer.canvas.grid.stride == 2
    sv.load_scan(scan, truth)
    sv.set_layout("all")


def test_hidden_panes_show_the_current_slice_when_shown(sv, env):
    """Hidden layers are sliced when shown, not on every step; each slice is worked out once."""
    _, scan, truth, app = env
    sv.set_layout("working")
    calls = []
    hidden = next(p for p in sv.panes if not p.image.visible)
    shown = next(p for p in sv.panes if p.image.visible)
    sv.set_slice(0)
    original = shown.image._slice_dims
    shown.image._slice_dims = lambda dims, force=False: (calls.append(1), original(dims, force))
    try:
        sv.set_slice(1)
        sv.set_slice(2)
    finally:
        shown.image._slice_dims = original
    assert len(calls) == 2                       # once per step, not twice
    sv.set_layout("all")
    for pane in (hidden, shown):
        assert np.array_equal(np.asarray(pane.labels._slice.image.raw), sv.overlay[2])
        assert np.allclose(np.asarray(pane.image._slice.image.raw), pane.image.data[2])


def test_every_cell_follows_the_camera_after_a_layout_switch(sv, env):
    """From two panes to eleven: napari must build a view with a linked camera for every
    cell (pane titles placed while the scene was paused once left 9 cells without one)."""
    canvas = sv.pool.vispy_canvas()
    sv.set_layout("working")
    sv.set_layout("all")
    cells = list(sv.viewer.canvas.grid.iter_viewboxes(sv.viewer.layers))
    assert len(canvas.grid_views) == len(canvas.grid_cameras) == len(cells) == 12


def click(sv, app, pane_key, row, col, modifier=None, button=None):
    """One mouse click (press and release at one place) on a pane's canvas."""
    from qtpy.QtCore import QPoint, Qt
    from qtpy.QtTest import QTest

    native = sv.pool.vispy_canvas()._scene_canvas.native
    pixel = QPoint(*sv.canvas_position(pane_key, row, col))
    modifier = modifier or Qt.KeyboardModifier.NoModifier
    button = button or Qt.MouseButton.LeftButton
    QTest.mousePress(native, button, modifier, pixel)
    app.processEvents()
    QTest.mouseRelease(native, button, modifier, pixel)
    app.processEvents()


def test_click_correction_adds_and_removes_gray_matter_one_undo_step_per_click(sv, env):
    """Tool K: a click where the GM was missed brings it back, a Shift+click where it
    overreaches removes it, a short drag is a scribble; each one undo step, nothing painted."""
    from qtpy.QtCore import Qt

    _, scan, truth, app = env
    s = 1
    gm_truth = lab.structure_mask(truth.dseg[s], "gm")
    rows, cols = np.nonzero(gm_truth)
    missed = truth.dseg.copy()
    right = cols > np.median(cols)                       # half the gray matter missed
    missed[s, rows[right], cols[right]] = lab.WM
    sv.set_labels(LabelMap(missed, truth.lesion, truth.labelled))
    sv.set_layout("working")
    settle(app, sv.viewer)
    sv.set_label_value(lab.GM)
    sv.set_tool("click")
    assert sv.master.mode == "paint"         # a drag does not pan (Space does); nothing is painted
    messages = []
    sv.status_message.connect(messages.append)

    def gm_dice():
        gm = lab.structure_mask(split_shown(sv)[s], "gm")
        return 2 * (gm & gm_truth).sum() / (gm.sum() + gm_truth.sum())

    before = gm_dice()
    target = np.argmax(np.where(right, cols, -1))         # deep in the missed half
    click(sv, app, "6-8", int(rows[target]), int(cols[target]) - 2)
    after_add = gm_dice()
    assert after_add > before + 0.1, (before, after_add)
    assert messages and "click 1 (+)" in messages[-1] and " ms" in messages[-1]
    assert not (sv.overlay[np.arange(scan.n_slices) != s] != compose_overlay(missed, truth.lesion)[0][
        np.arange(scan.n_slices) != s]).any()            # other slices untouched

    wm_only = lab.structure_mask(truth.dseg[s], "cord") & ~gm_truth
    sv.set_labels(LabelMap(np.where((truth.dseg == lab.WM) & wm_only[None] & (np.arange(scan.n_slices) == s)[:, None, None]
                                    & _disk(truth.dseg.shape[1:], rows.mean(), cols.min() - 3, 3)[None],
                                    lab.GM, truth.dseg).astype(np.uint8), truth.lesion, truth.labelled))
    extra = lab.structure_mask(split_shown(sv)[s], "gm") & ~gm_truth
    assert extra.sum() > 5
    er, ec = np.nonzero(extra)
    k = len(er) // 2
    click(sv, app, "1-5", int(er[k]), int(ec[k]), modifier=Qt.KeyboardModifier.ShiftModifier)
    assert "(-)" in messages[-1]
    left = lab.structure_mask(split_shown(sv)[s], "gm") & ~gm_truth
    assert left.sum() < extra.sum() / 2, (extra.sum(), left.sum())
    sv.undo()
    assert (lab.structure_mask(split_shown(sv)[s], "gm") & ~gm_truth).sum() == extra.sum()

    # a scribble across the missed half: one step, more GM than the start, undone at once
    sv.set_labels(LabelMap(missed, truth.lesion, truth.labelled))
    app.processEvents()
    rr, cc = rows[right], cols[right]
    line = sorted({(int(r), int(c)) for r, c in zip(rr, cc) if r == int(np.median(rr))})
    drag(sv, app, "1-5", line)
    assert "scribble of" in messages[-1] and gm_dice() > before + 0.1, messages[-1]
    sv.undo()
    assert gm_dice() == pytest.approx(before)
    shown = sv.overlay.copy()

    sv.set_label_value(lab.CSF)
    click(sv, app, "1-5", 40, 40)
    assert "choose one of them" in messages[-1] and np.array_equal(sv.overlay, shown)
    sv.status_message.disconnect()
    sv.set_tool("brush")


def split_shown(sv):
    from score_napari._qt.viewer_controller import split_overlay

    return split_overlay(sv.overlay, sv.under)[0]


def _disk(shape, row, col, radius):
    r, c = np.ogrid[:shape[0], :shape[1]]
    return (r - row) ** 2 + (c - col) ** 2 <= radius ** 2
