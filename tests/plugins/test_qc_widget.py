"""QC mode widget driven by real key presses under Xvfb: pass, fail with reason, undo, filters."""

from __future__ import annotations

import numpy as np
import pytest
from qtpy.QtCore import Qt

from score_gui.labels import LabelMap, write_labels
from score_gui.phantom.study import make_scan
from score_gui.qc.log import Decision, QCLog
from score_gui.scan import write_scan
from score_gui.study import ScanEntry, scan_path
from score_napari._qt.qc_widget import QCWidget

pytestmark = pytest.mark.gui

HOLED_SLICE = 3


@pytest.fixture
def study_root(tmp_path):
    """Two scans of 5 slices with score labels; slice 3 of the first has a hole in the cord."""
    for subject, seed in (("01", 5), ("02", 6)):
        scan, truth, _ = make_scan("hc", seed=seed, n_slices=5, shape=(96, 96))
        scan.path = path = scan_path(tmp_path, subject)
        write_scan(scan, path)
        dseg = truth.dseg.copy()
        if subject == "01":
            from scipy import ndimage

            inner = ndimage.binary_erosion(dseg[HOLED_SLICE] >= 2, iterations=2) & (dseg[HOLED_SLICE] == 2)
            rows, cols = np.nonzero(inner)
            dseg[HOLED_SLICE, rows[0], cols[0]] = 1  # a hole: cord not closed
        write_labels(scan, LabelMap(dseg, truth.lesion, who="score"), ScanEntry(tmp_path, path).derivatives_dir,
                     "score")
    return tmp_path


@pytest.fixture
def widget(qtbot, study_root):
    w = QCWidget(study_root, "ana", tile_size=96)
    qtbot.addWidget(w)
    w.resize(900, 700)
    w.show()
    qtbot.waitExposed(w)
    return w



def test_pass_fail_with_reason_and_undo_by_keys(qtbot, widget, study_root):
    log = QCLog(study_root)
    grid = widget.grid
    assert widget.current_slice() == 0
    qtbot.keyClick(grid, Qt.Key_P)                     # slice 0 passes, moves on to 1
    assert log.status_map("sub-01_amira", "score") == {0: ("pass", "")}
    assert widget.current_slice() == 1
    qtbot.keyClick(grid, Qt.Key_F)                     # slice 1 fails: why?
    assert widget.reason_panel.isVisible()
    qtbot.keyClick(widget.reason_panel.reasons, Qt.Key_2)
    qtbot.keyClick(widget.reason_panel.reasons, Qt.Key_Return)
    assert not widget.reason_panel.isVisible()
    assert log.status_map("sub-01_amira", "score")[1] == ("fail", "posterior_arch_contact")
    assert widget.current_slice() == 2
    qtbot.keyClick(grid, Qt.Key_Right)                 # arrows move: 2 -> 3
    assert widget.current_slice() == 3
    qtbot.keyClick(grid, Qt.Key_F)
    qtbot.keyClick(widget.reason_panel.reasons, Qt.Key_5)
    qtbot.keyClicks(widget.reason_panel.comment, "hole in the cord")
    qtbot.keyClick(widget.reason_panel.comment, Qt.Key_Return)
    force = log.in_force()
    row = force[force["slice"] == 3].iloc[0]
    assert (row.status, row.reason, row.reviewer, row.comment) == ("fail", "segmentation_error", "ana",
                                                                    "hole in the cord")
    assert widget.progress()[:2] == (3, 5)
    qtbot.keyClick(grid, Qt.Key_U)                     # undo: slice 3 unreviewed again
    assert 3 not in log.status_map("sub-01_amira", "score")
    assert widget.current_slice() == 3 and widget.status(3) == ("unreviewed", "")
    qtbot.keyClick(grid, Qt.Key_U)                     # and slice 1 back to unreviewed
    assert log.status_map("sub-01_amira", "score") == {0: ("pass", "")}
    assert len(log.decisions()) == 5                   # 3 decisions + 2 undos, nothing deleted
    assert widget.progress() == (1, 5, 1, 10)


def test_escape_cancels_and_fail_needs_a_reason(qtbot, widget, study_root):
    qtbot.keyClick(widget.grid, Qt.Key_Right)
    qtbot.keyClick(widget.grid, Qt.Key_F)
    qtbot.keyClick(widget.reason_panel.reasons, Qt.Key_Escape)
    assert not widget.reason_panel.isVisible() and QCLog(study_root).decisions().empty
    qtbot.keyClick(widget.grid, Qt.Key_F)
    widget.reason_panel.reasons.setCurrentRow(-1)
    qtbot.keyClick(widget.reason_panel.reasons, Qt.Key_Return)  # no reason picked: nothing recorded
    assert widget.reason_panel.isVisible() and QCLog(study_root).decisions().empty
    qtbot.keyClick(widget.reason_panel.reasons, Qt.Key_6)
    qtbot.keyClick(widget.reason_panel.reasons, Qt.Key_Enter)
    assert QCLog(study_root).status_map("sub-01_amira", "score") == {1: ("fail", "other")}


def test_filters_and_suggestion_badges(qtbot, widget):
    assert any(h.kind == "topology" for h in widget.hints(HOLED_SLICE))
    assert "suggestion: topology" in widget.grid.item(HOLED_SLICE).toolTip()
    widget.set_filter("suggested")
    assert HOLED_SLICE in widget.visible_slices()
    assert all(widget.hints(s) for s in widget.visible_slices())
    widget.set_filter("all")
    qtbot.keyClick(widget.grid, Qt.Key_Home)
    assert widget.current_slice() == 0
    qtbot.keyClick(widget.grid, Qt.Key_P)
    qtbot.keyClick(widget.grid, Qt.Key_F)
    qtbot.keyClick(widget.reason_panel.reasons, Qt.Key_1)
    qtbot.keyClick(widget.reason_panel.reasons, Qt.Key_Return)
    widget.set_filter("failed")
    assert widget.visible_slices() == [1]
    widget.set_filter("unreviewed")
    assert widget.visible_slices() == [2, 3, 4] and widget.current_slice() == 2
    qtbot.keyClick(widget.grid, Qt.Key_P)              # passing hides it and moves to the next one
    assert widget.visible_slices() == [3, 4] and widget.current_slice() == 3


def test_next_scan_key_and_study_progress(qtbot, widget, study_root):
    qtbot.keyClick(widget.grid, Qt.Key_P)
    qtbot.keyClick(widget.grid, Qt.Key_N)
    assert widget.entry.stem == "sub-02_amira" and widget.scan_box.currentText() == "sub-02_amira"
    qtbot.keyClick(widget.grid, Qt.Key_P)
    qtbot.keyClick(widget.grid, Qt.Key_P)
    assert QCLog(study_root).status_map("sub-02_amira", "score") == {0: ("pass", ""), 1: ("pass", "")}
    assert widget.progress() == (2, 5, 3, 10)
    assert "3/10" in widget.study_progress.text()
    qtbot.keyClick(widget.grid, Qt.Key_B)
    assert widget.entry.stem == "sub-01_amira"


def test_screenshot_shows_tiles_with_status_frames(qtbot, widget, tmp_path):
    qtbot.keyClick(widget.grid, Qt.Key_P)
    qtbot.keyClick(widget.grid, Qt.Key_F)
    qtbot.keyClick(widget.reason_panel.reasons, Qt.Key_3)
    qtbot.keyClick(widget.reason_panel.reasons, Qt.Key_Return)
    qtbot.wait(50)
    shot = tmp_path / "qc_widget.png"
    assert widget.grab().save(str(shot))
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("RGB")).reshape(-1, 3).astype(int)
    def has(colour, tolerance=30):
        return bool((np.abs(pixels - np.array(colour)).max(axis=1) < tolerance).sum() > 200)
    assert has((0x2e, 0x9d, 0x4b)) and has((0xd0, 0x31, 0x2d))   # pass and fail frames
    assert has((0xd4, 0xa0, 0x17), 40)                           # gold canal contours
    assert has((0xe0, 0x8a, 0x00))                               # suggestion badge


def test_unwritable_log_is_reported_not_crashed(qtbot, widget, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the QC folder should be")
    widget.log = QCLog(blocker / "qc")  # cannot be created, even as root
    qtbot.keyClick(widget.grid, Qt.Key_P)
    assert "Not recorded" in widget.message.text() and "is a file" in widget.message.text()
    assert widget.current_slice() == 0 and widget.status(0) == ("unreviewed", "")


def test_scan_without_the_reviewed_labels_says_to_segment_first(qtbot, study_root):
    ScanEntry(study_root, scan_path(study_root, "02")).dseg_path("score").unlink()
    w = QCWidget(study_root, "ana", tile_size=64)
    qtbot.addWidget(w)
    w.set_scan(1)
    assert "segment it first" in w.message.text()
    w.set_scan(0)
    assert "segment it first" not in w.message.text()


def _add_rater(study_root, who="raterA"):
    """The same scans' true labels as a rater's (a second source to review)."""
    from score_gui.labels import read_labels
    from score_gui.scan import read_scan

    for subject in ("01", "02"):
        entry = ScanEntry(study_root, scan_path(study_root, subject))
        scan = read_scan(entry.path)
        labels = read_labels(entry.dseg_path("score"), scan)
        write_labels(scan, LabelMap(labels.dseg, labels.lesion, who=who), entry.derivatives_dir, who)


def _fail_by_keys(qtbot, w, number):
    qtbot.keyClick(w.grid, Qt.Key_F)
    qtbot.keyClick(w.reason_panel.reasons, Qt.Key_0 + number)
    qtbot.keyClick(w.reason_panel.reasons, Qt.Key_Return)


def test_image_fail_shows_for_every_source_segmentation_fail_stays(qtbot, study_root):
    from score_napari._qt.export_widget import ExportWidget

    _add_rater(study_root)
    w = QCWidget(study_root, "ana", tile_size=64)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    assert w.sources == ["score", "raterA"] and w.source == "score"
    _fail_by_keys(qtbot, w, 1)                         # slice 0: image artifact (reviewing score)
    assert "every label source" in w.message.text()
    _fail_by_keys(qtbot, w, 5)                         # slice 1: segmentation error of score
    assert w.current_slice() == 2

    w.source_box.setCurrentText("raterA")              # the reviewer switches to the rater's labels
    assert w.source == "raterA" and w._labels is not None
    assert w.status(0) == ("fail", "image_artifact") and w.status(1) == ("unreviewed", "")
    assert w.grid.item(0).text().endswith("fail: image artifact (image)")
    assert w.progress()[:2] == (1, 5)
    w.set_filter("failed")
    assert w.visible_slices() == [0]
    w.set_filter("all")

    # the export panel (statistics over the areas) sees the same: slice 0 out for both sources
    export = ExportWidget(study_root)
    qtbot.addWidget(export)
    rows = export.areas[export.areas["scan"] == "sub-01_amira"].set_index(["source", "slice"])["qc_status"]
    assert rows[("score", 0)] == rows[("raterA", 0)] == "fail"
    assert rows[("score", 1)] == "fail" and rows[("raterA", 1)] == "unreviewed"

    w._select(0)
    qtbot.keyClick(w.grid, Qt.Key_P)                   # the rater's reviewer: the image is fine
    assert w.status(0) == ("pass", "")
    w.source_box.setCurrentText("score")
    assert w.status(0) == ("unreviewed", "")           # image fail cleared; score's labels not judged
    assert w.status(1) == ("fail", "segmentation_error")
    assert len(QCLog(study_root).decisions()) == 3      # append-only: every decision kept


def test_without_a_reviewer_the_grid_shows_and_recording_waits(qtbot, study_root):
    QCLog(study_root).record(Decision("01", "", "sub-01_amira", 2, "score", "fail", "poor_image_quality", "ben"))
    w = QCWidget(study_root, "", tile_size=64)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    assert w.grid.count() == 5 and w.status(2) == ("fail", "poor_image_quality")
    qtbot.keyClick(w.grid, Qt.Key_P)
    assert "identify as a reviewer" in w.message.text()
    qtbot.keyClick(w.grid, Qt.Key_F)
    assert not w.reason_panel.isVisible()
    assert len(QCLog(study_root).decisions()) == 1
