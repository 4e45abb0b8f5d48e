"""End-to-end tests of the main window: real study, real napari viewer under Xvfb."""

from __future__ import annotations

import time
from contextlib import contextmanager

import numpy as np
from qtpy.QtCore import QEvent, QMimeData, QPointF, Qt, QTimer, QUrl
from qtpy.QtGui import QDropEvent, QMouseEvent
from qtpy.QtWidgets import QApplication, QCheckBox

from score_gui.labels import CSF, WM, LabelMap, read_labels, write_labels
from score_gui.study import Study


def send_mouse(widget, kind, x: int, y: int, buttons) -> None:
    button = Qt.NoButton if kind == QEvent.MouseMove else Qt.LeftButton
    local = QPointF(x, y)
    event = QMouseEvent(kind, local, QPointF(widget.mapToGlobal(local.toPoint())), button, buttons,
                        Qt.NoModifier)
    QApplication.sendEvent(widget, event)


def paint_stroke(window, qtbot, value: int, row: int, cols, size: int = 5) -> np.ndarray:
    """Drag the brush with the mouse along ``row`` over ``cols`` of the first visible pane;
    return the voxels that changed."""
    sv = window.score_viewer
    before = sv.get_labels().dseg.copy()
    sv.set_tool("brush")
    sv.set_label_value(value)
    sv.set_brush_size(size)
    qtbot.wait(20)
    pane = sv.visible_panes()[0].key
    points = [sv.canvas_position(pane, row, col) for col in cols]
    native = window.qt_viewer.canvas.native
    send_mouse(native, QEvent.MouseButtonPress, *points[0], Qt.LeftButton)
    for point in points[1:]:
        qtbot.wait(15)                       # napari drops moves closer than ~10 ms
        send_mouse(native, QEvent.MouseMove, *point, Qt.LeftButton)
    send_mouse(native, QEvent.MouseButtonRelease, *points[-1], Qt.NoButton)
    qtbot.wait(20)
    return sv.get_labels().dseg != before


def centre_row_cols(window, half: int = 6):
    h, w = window.scan.shape_hw
    return h // 2, range(w // 2 - half, w // 2 + half + 1, 2)


def test_study_opens_first_scan_with_other_raters_as_contours(window, study):
    assert window.study.root == study.root
    assert len(window.browser.scan_items()) == 3            # hc01 ses-1, ses-2; ms01
    assert window.entry.path == study.scans[0].path
    assert window.scan.n_slices == 4 and window.score_viewer.scan is window.scan
    assert window.windowTitle().startswith(window.entry.stem)
    assert window.rater.active and window.rater.who == "raterA"
    assert "raterB" in window.score_viewer.references
    # The phantom's truth is listed but drawn only when its checkbox is ticked.
    toggles = {box.text(): box for box in window.references_box.findChildren(QCheckBox)}
    assert set(toggles) == {"Rater B", "Truth (phantom)"} and "truth" not in window.score_viewer.references
    toggles["Truth (phantom)"].setChecked(True)
    assert "truth" in window.score_viewer.references
    assert window.browser.item_for(window.entry).text(1) == "B"
    window.step_scan(1)                                      # the next scan of the browser
    assert window.entry.path == study.scans[1].path and window.browser.current_entry() == study.scans[1]
    assert window.score_viewer.get_labels().dseg.sum() == 0  # rater A has not labelled it yet


def test_paint_undo_save_and_area_table(window, study, qtbot):
    sv = window.score_viewer
    window.set_layout("single")
    sv.set_slice(1)
    row, cols = centre_row_cols(window)
    changed = paint_stroke(window, qtbot, CSF, row, cols, size=7)
    assert changed.sum() > 20 and window.rater.dirty
    assert window.save_state_label.text() == "unsaved changes"
    inner = paint_stroke(window, qtbot, WM, row, cols[1:-1], size=3)   # nested: cord inside the canal
    assert inner.sum() > 5
    window.score_viewer.undo()
    labels = sv.get_labels()
    assert not (labels.dseg == WM).any() and (labels.dseg == CSF).sum() == changed.sum()
    window.score_viewer.redo()
    labels = sv.get_labels()
    assert (labels.dseg == WM).sum() == inner.sum()

    window.save_labels()
    saved = read_labels(window.entry.dseg_path("raterA"), window.scan)
    np.testing.assert_array_equal(saved.dseg, labels.dseg)
    assert not window.rater.dirty and window.save_state_label.text() == "all changes saved"
    assert window.browser.item_for(window.entry).text(1) == "A, B"

    row = window.areas_widget.row_table
    area = window.scan.pixel_area_mm2
    assert row["canal"] == (labels.dseg[1] > 0).sum() * area
    assert row["cord"] == (labels.dseg[1] == WM).sum() * area


def test_autosave_on_slice_change_writes_the_file(window, qtbot):
    path = window.entry.dseg_path("raterA")
    window.score_viewer.set_slice(2)
    row, cols = centre_row_cols(window)
    painted = paint_stroke(window, qtbot, CSF, row, cols)
    assert window.rater.dirty
    before = read_labels(path, window.scan).dseg
    assert not before[2].any()
    window.score_viewer.set_slice(3)                  # the slice change autosaves
    after = read_labels(path, window.scan).dseg
    assert after[2].sum() == CSF * painted.sum() and not window.rater.dirty


def test_recovery_written_on_change_and_offered_after_a_crash(window, qtbot, qapp):
    from score_studio.main_window import MainWindow

    entry = window.entry
    window.score_viewer.set_slice(0)
    row, cols = centre_row_cols(window)
    painted = paint_stroke(window, qtbot, CSF, row, cols)
    qtbot.waitUntil(lambda: window.rater.recovery.find(entry.path, "raterA") is not None, timeout=3000)
    unsaved = window.score_viewer.get_labels().dseg.copy()
    saved = entry.dseg_path("raterA")
    on_disk = read_labels(saved, window.scan).dseg if saved.exists() else np.zeros_like(unsaved)
    assert painted[0].any() and not on_disk[0].any()  # the work is only in the recovery file

    # "Crash": the session stops without saving; a new window starts.
    window.rater.autosave_timer.stop()
    window.rater.dirty = False
    window.rater.scan = None
    second = MainWindow(settings=window.settings, interactive=False)
    # disposed at the end of the test (closes napari's viewer too)
    questions = []
    second.confirm = lambda title, text: questions.append(text) or True
    second.resize(1200, 800)
    second.show()
    assert second.offer_pending_recoveries()
    assert second.entry.path == entry.path and len(questions) == 2   # open it? restore it?
    np.testing.assert_array_equal(second.score_viewer.get_labels().dseg, unsaved)
    assert second.rater.dirty
    second.save_labels()
    np.testing.assert_array_equal(read_labels(entry.dseg_path("raterA"), second.scan).dseg, unsaved)
    assert second.rater.recovery.pending() == []
    second.rater.finish()
    second.dispose()
    # The first window carries on with the saved labels (as after a restart).
    window.score_viewer.set_labels(read_labels(entry.dseg_path("raterA"), window.scan))
    window.rater.start(window.scan, entry, "A")
    np.testing.assert_array_equal(window.score_viewer.get_labels().dseg, unsaved)


def test_status_bar_names_pixel_intensity_and_label(window):
    window.score_viewer.set_slice(1)
    labels = window.score_viewer.get_labels()
    rows, cols = np.nonzero(labels.dseg[1] == WM)
    layer = window.score_viewer.master
    position = layer.data_to_world((1, rows[0], cols[0]))
    text = window.describe_pixel(position)
    assert text.startswith("slice 2") and f"pixel ({rows[0]}, {cols[0]})" in text
    assert "white_matter" in text and "1-5:" in text and "6-8:" in text
    assert window.describe_pixel(layer.data_to_world((1, -5, 3))) == ""


def test_consensus_of_raters(window):
    entry = window.entry
    truth = read_labels(entry.dseg_path("truth"), window.scan)
    for who in ("raterB", "raterC"):
        write_labels(window.scan, truth, entry.derivatives_dir, who)
    window.compute_consensus()                            # A (saved), B and C vote
    consensus = read_labels(entry.dseg_path("consensus"), window.scan)
    np.testing.assert_array_equal(consensus.dseg, truth.dseg)   # B and C agree: 2 of 3
    assert not np.array_equal(read_labels(entry.dseg_path("raterA"), window.scan).dseg, truth.dseg)
    assert "consensus" in window.score_viewer.references
    assert "cons" in window.browser.item_for(entry).text(2)


def test_modes_layouts_and_shortcuts_panel(window):
    for mode in ("qc", "export", "segment", "annotate"):
        window.actions_by_name[f"mode_{mode}"].trigger()
        assert window.mode == mode and window.settings.mode == mode
    for layout in ("all", "single", "working"):
        window.actions_by_name[f"layout_{layout}"].trigger()
        assert window.score_viewer.layout == layout
    dialog = window.show_shortcuts()
    assert dialog.isVisible() and dialog.table.rowCount() > 20
    dialog.close()


def test_dropping_a_study_folder_opens_it(window, study_builder, tmp_path):
    other = study_builder(tmp_path / "dropped", n_hc=0, n_ms=1, raters=())
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(other.root))])
    event = QDropEvent(QPointF(10, 10), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    window.dropEvent(event)
    assert window.study.root == other.root and window.entry.path == other.scans[0].path
    assert window.settings.recent[0] == str(other.root)
    window.open_path(tmp_path / "missing")               # bad input: reported, nothing changes
    assert window.study.root == other.root


def test_one_click_segmentation_keeps_the_event_loop_running(window, qtbot, tmp_path):
    import time

    from score_gui.inference import make_untrained_ensemble

    # Full-size untrained members: about a second of real torch work in the worker thread.
    models = make_untrained_ensemble(tmp_path / "models", n_members=6)
    panel = window.segmentation
    panel.model_combo.insertItem(0, "untrained", str(models))
    panel.model_combo.setCurrentIndex(0)
    window.set_mode("segment")
    ticks, steps = [], []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.monotonic()))
    timer.start(20)
    with qtbot.waitSignal(panel.finished, timeout=120_000):
        window.actions_by_name["segment"].trigger()
        assert panel.running and window.actions_by_name["cancel"].isEnabled()
        # Progress of the models' work as the window receives it.
        panel.worker.yielded.connect(lambda item: steps.append(time.monotonic())
                                     if "model" in getattr(item, "message", "") else None)
    timer.stop()
    # While the models ran in the worker thread, the window's timer kept ticking.
    busy = steps[-1] - steps[0]
    during = [t for t in ticks if steps[0] <= t <= steps[-1]]
    assert len(steps) >= 4 and busy > 0.3, (len(steps), busy)
    assert len(during) >= 0.25 * busy / 0.020, f"event loop stalled: {len(during)} ticks in {busy:.1f} s"
    assert panel.last_progress.done == panel.last_progress.total    # every step was shown
    assert not panel.running and panel.progress_bar.value() == panel.progress_bar.maximum()
    assert "score" in window.score_viewer.references
    assert "disagreement" in [l.metadata.get("score_name") for l in window.viewer.layers]
    dseg = read_labels(window.entry.dseg_path("score"), window.scan)
    assert dseg.dseg.shape == window.scan.label_shape
    assert "seg" in window.browser.item_for(window.entry).text(2)
    assert (window.entry.derivatives_dir / f"{window.entry.stem}_areas.csv").exists()


def test_cancel_stops_segment_all(window, qtbot, tmp_path):
    from score_gui.inference import make_untrained_ensemble

    models = make_untrained_ensemble(tmp_path / "models", n_members=2)
    panel = window.segmentation
    panel.model_combo.insertItem(0, "untrained", str(models))
    panel.model_combo.setCurrentIndex(0)
    study = Study.open(window.study.root)
    with qtbot.waitSignal(panel.running_changed, timeout=120_000, check_params_cb=lambda r: r is False):
        panel.segment_all()
        qtbot.waitUntil(lambda: panel.last_progress is not None and panel.last_progress.done > 0, timeout=60_000)
        window.actions_by_name["cancel"].trigger()
    assert "Cancelled" in panel.message_label.text()
    assert len(panel.results) < len(study.scans)


@contextmanager
def warming_up_window():
    """A new window, shown, its panes being made in the event loop (as after start-up)."""
    from score_studio.main_window import MainWindow
    from score_studio.settings import AppSettings

    win = MainWindow(settings=AppSettings(rater_id="A"), interactive=False)
    try:
        win.resize(1200, 800)
        win.show()
        win.settle()
        win.start_warm_up()
        yield win
    finally:
        win.rater.autosave_timer.stop()
        win.dispose()


def test_warm_up_in_the_event_loop_then_first_scan_reuses_its_layers(qapp, isolated_home, study, qtbot):
    """The panes' layers are made a pane per event-loop turn after start-up, the shown ones
    first; a study opened meanwhile (as from the command line) lists at once, and its scan
    opens as soon as the shown panes are made, swapping data into them. The hidden panes
    are made afterwards with the open scan's images and contours, in their grid places."""
    with warming_up_window() as win:
        sv = win.score_viewer
        assert win.warming_up and len(win.viewer.layers) == 0
        assert win.open_path(study.root)
        assert win.study is not None and win.scan is None        # listed; the scan waits
        assert "opens next" in win.statusBar().currentMessage()
        qtbot.waitUntil(lambda: win.scan is not None, timeout=60_000)
        assert win.warming_up and win.entry.path == study.scans[0].path
        assert {"1-5", "6-8"} <= set(sv.pane_keys) and len(sv.pane_keys) < 11   # the working panes first
        assert {p.key for p in sv.panes if p.references["raterB"].visible} == {"1-5", "6-8"}
        qtbot.waitUntil(lambda: not win.warming_up, timeout=60_000)
        assert sv.pane_keys == [key for key, _, _ in sv.pane_images(win.scan)]   # grid order
        assert len(win.viewer.layers) == 44         # 11 panes x (image, raterB, a spare set, labels)
        stride = win.viewer.canvas.grid.stride
        assert stride == 4 and list(win.viewer.layers) == [layer for p in sv.panes for layer in p.layers()]
        for pane, (key, _title, image) in zip(sv.panes, sv.pane_images(win.scan)):
            assert np.array_equal(pane.image.data, image), key          # made late with the scan's data
            assert pane.labels.data is sv.overlay
            assert pane.references["raterB"].data is sv.reference_layers.maps["raterB"]
        assert {p.key for p in sv.panes if p.references["raterB"].visible} == {"1-5", "6-8"}


def test_layout_chosen_during_the_warm_up_makes_its_panes_first(qapp, isolated_home, study, qtbot):
    """A scan open before the warm-up ends, then a pane not made yet asked for: it is made
    at once, with the scan's image; the rest still come in the event loop."""
    with warming_up_window() as win:
        win.open_path(study.root)
        qtbot.waitUntil(lambda: win.scan is not None, timeout=60_000)
        sv = win.score_viewer
        assert "TI5" not in sv.pane_keys and win.warming_up
        sv.set_layout("single", "TI5")
        assert [p.key for p in sv.visible_panes()] == ["TI5"]
        assert np.array_equal(sv.pool.pane("TI5").image.data, win.scan.images[:, 4])
        assert sv.editing.master is sv.pool.pane("TI5").labels
        heat = np.random.default_rng(0).random(sv.overlay.shape).astype(np.float32)
        sv.add_overlay("disagreement", heat)              # e.g. the ensemble's, before the rest
        qtbot.waitUntil(lambda: not win.warming_up, timeout=60_000)
        assert len(sv.pane_keys) == 11
        assert all(pane.extras["disagreement"].data is sv.heat_maps.arrays["disagreement"] for pane in sv.panes)
        stride = win.viewer.canvas.grid.stride
        blocks = [list(win.viewer.layers)[i:i + stride] for i in range(0, len(win.viewer.layers), stride)]
        assert [{id(layer) for layer in block} for block in blocks] == [
            {id(layer) for layer in p.layers()} for p in sv.panes]            # one block per pane
        roles = {tuple(layer.metadata["score_role"] for layer in block) for block in blocks}
        # One drawing order on every pane: a layer added to every pane goes under the labels.
        assert roles == {("image", "reference", "overlay", "reference", "labels")}
        assert [p.key for p in sv.panes if p.extras["disagreement"].visible] == ["TI5"]


def test_hidden_panes_wait_while_the_user_works(qapp, isolated_home, study, qtbot):
    """Once the scan is open, the hidden panes (0.2-0.3 s of blocked window each) are made
    only after a quiet moment: a key press holds them back, then they come."""
    from qtpy.QtGui import QKeyEvent

    from score_studio.warm_up import QUIET_S

    with warming_up_window() as win:
        win.open_path(study.root)
        qtbot.waitUntil(lambda: win.scan is not None, timeout=60_000)
        sv = win.score_viewer
        win.qt_viewer.canvas._scene_canvas.native.repaint()     # the scan's first frame, now
        made = len(sv.pane_keys)
        assert made < 11 and QUIET_S < 1.5
        started = time.monotonic()
        while time.monotonic() - started < 1.5:      # the user keeps working (more than QUIET_S)
            QApplication.sendEvent(win, QKeyEvent(QEvent.KeyPress, Qt.Key_Shift, Qt.NoModifier))
            QApplication.processEvents()
            assert len(sv.pane_keys) == made
        qtbot.waitUntil(lambda: not win.warming_up, timeout=60_000)
        assert len(sv.pane_keys) == 11


def test_qc_review_moves_the_viewer(window, study, qtbot):
    """In QC mode the viewer shows the slice under review, and the scan the reviewer moves to."""
    window.open_study(study.root, select=study.scans[0])
    window.set_mode("qc")
    qc = window.qc_widget
    assert qc is not None and qc.entry.stem == window.entry.stem
    assert window.current_slice() == qc.current_slice()
    qtbot.keyClick(qc.grid, Qt.Key_Right)
    qtbot.keyClick(qc.grid, Qt.Key_Right)
    assert qc.current_slice() == 2 and window.current_slice() == 2
    qc.step_scan(1)
    assert window.entry.stem == qc.entry.stem == window.study.scans[1].stem
    window.set_mode("annotate")
