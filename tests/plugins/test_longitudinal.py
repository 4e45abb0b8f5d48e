"""The longitudinal view: a phantom MS patient followed over three sessions, on real files.

``desc-edit`` holds ses-1's true labels in every session, with ses-3's cord cut on one slice
(:func:`tests.score_gui.test_longitudinal.write_edit`), so the one real change is known and
the plot and panes can be checked against it; ``desc-raterA`` is a simulated rater.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image
from qtpy.QtCore import QPoint, QPointF, QSize, Qt

from score_gui.labels import LABEL_COLORS
from score_gui.longitudinal import CHANGE_COLUMNS, subject_series
from score_gui.phantom import make_study
from score_gui.qc.log import Decision, QCLog
from score_gui.study import Study
from score_napari._qt.plots import PLOT_COLORS
from score_napari._qt.longitudinal import LongitudinalWidget
from score_napari._qt.longitudinal_views import BEYOND_COLOR, plot_frame
from tests.score_gui.test_longitudinal import write_edit

pytestmark = pytest.mark.gui

N_SLICES = 6
CUT_SLICE = 2
STEMS = [f"sub-ms01_ses-{k}_amira" for k in (1, 2, 3)]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """sub-ms01 over 3 sessions (the demo study's follow-up) and sub-hc01 over 2, never modified."""
    root = tmp_path_factory.mktemp("longitudinal-widget") / "study"
    study = make_study(root, n_hc=1, n_ms=1, n_slices=N_SLICES, raters=("A",), shape=(96, 96),
                       sessions={"ms01": 3})
    write_edit(study, cut_slice=CUT_SLICE, subject="ms01")
    return root


@pytest.fixture
def root(pristine, tmp_path):
    return shutil.copytree(pristine, tmp_path / "study")


def screenshot(widget, path) -> np.ndarray:
    """The widget as it is on screen, saved as a PNG file and read back as RGB."""
    assert widget.grab().save(str(path))
    return np.asarray(Image.open(path).convert("RGB"))


def share_near(rgb: np.ndarray, colour, tolerance: int = 6) -> float:
    target = np.array(colour if not isinstance(colour, str) else
                      [int(colour[i:i + 2], 16) for i in (1, 3, 5)])
    return float((np.abs(rgb.astype(int) - target).max(axis=-1) <= tolerance).mean())


def band_colour(compartment: str) -> list[int]:
    """The band's fill over the white plot: the compartment's colour at alpha 55 (compare with a
    tolerance of 8: the test display may have 16-bit colour, 5 bits for red and blue)."""
    rgb = [int(PLOT_COLORS[compartment][i:i + 2], 16) for i in (1, 3, 5)]
    return [round(c * 55 / 255 + 255 * (1 - 55 / 255)) for c in rgb]


def region(rgb: np.ndarray, widget, child) -> np.ndarray:
    top_left = child.mapTo(widget, QPoint(0, 0))
    scale = rgb.shape[1] / widget.width()   # grab() is in device pixels
    x0, y0 = int(top_left.x() * scale), int(top_left.y() * scale)
    return rgb[y0:y0 + int(child.height() * scale), x0:x0 + int(child.width() * scale)]


def test_plot_shows_every_session_with_the_band_and_the_real_change(qtbot, root, tmp_path):
    widget = LongitudinalWidget(root, source="edit")
    qtbot.addWidget(widget)
    widget.resize(1300, 860)
    widget.show()
    qtbot.waitExposed(widget)
    assert widget.subject == "ms01"                       # the subject with the most sessions
    assert widget.subject_box.count() == 2 and "3 sessions" in widget.subject_box.currentText()
    assert widget.source_box.currentText() == "edit"
    assert [widget.source_box.itemText(i) for i in range(widget.source_box.count())] == ["raterA", "edit", "truth"]
    # the plot draws exactly the core's numbers
    expected = subject_series(Study.open(root), "ms01", "edit").changes("cord")
    assert list(widget.table.columns) == CHANGE_COLUMNS
    assert widget.table.equals(expected) and widget.plot.table is widget.table
    assert list(dict.fromkeys(widget.table["session"])) == ["ses-1", "ses-2", "ses-3"]
    beyond = widget.table[widget.table["beyond_lsc"].astype("boolean").fillna(False)]
    assert list(zip(beyond["slice"], beyond["session"])) == [(CUT_SLICE, "ses-3")]
    assert "ses-3</b>: 1 of 6 slices beyond ±4.1 %" in widget.summary_text()
    assert "ses-2</b>: 0 of 6 slices" in widget.summary_text()

    widget.set_position(CUT_SLICE)
    assert widget.position == f"C3 s{CUT_SLICE}" and widget.shown_slice() == CUT_SLICE
    titles = [t.text() for t in widget.panes.titles]
    assert len(widget.panes.panes) == 3
    assert "(baseline)" in titles[0] and "beyond LSC" in titles[2] and "beyond LSC" not in titles[1]
    import re

    from qtpy.QtGui import QColor

    for text in titles:                  # session names read on the dark panel, the baseline too
        color = QColor(re.search(r"color:(#[0-9a-f]{6})", text).group(1))
        assert color.lightness() >= 120, text
    qtbot.wait(50)

    rgb = screenshot(widget, tmp_path / "longitudinal.png")
    assert len(np.unique(rgb.reshape(-1, 3), axis=0)) > 500            # images, contours, a plot
    plot = region(rgb, widget, widget.plot)
    assert share_near(plot, band_colour("cord"), 8) > 0.01               # the band is drawn
    assert share_near(plot, BEYOND_COLOR, 30) * plot[..., 0].size > 40   # the ring of the real change
    assert share_near(plot, "#ffffff", 0) > 0.3                          # on a white plot
    for pane in widget.panes.panes:                                      # contours over each image
        image = region(rgb, widget, pane)
        assert image.std() > 10
        assert share_near(image, LABEL_COLORS[1], 40) > 0.002           # gold canal/cord outline
        assert share_near(image, LABEL_COLORS[4], 40) > 0.0003          # red anterior horns

    widget.set_compartment("gm")   # GM was not cut: no change anywhere, no ring
    assert (widget.table["change_percent"].dropna() == 0).all()
    gm = region(screenshot(widget, tmp_path / "gm.png"), widget, widget.plot)
    assert share_near(gm, BEYOND_COLOR, 30) * gm[..., 0].size < 5
    assert share_near(gm, band_colour("gm"), 8) > 0.01
    assert widget.table["lsc_percent"].iloc[0] == pytest.approx(2.7718 * 4.81, rel=1e-4)
    widget.set_compartment("gray_commissure")   # no RSD known: no band
    assert widget.table["band_low_mm2"].isna().all()
    assert "No scan-rescan RSD" in widget.summary_text()
    no_band = region(screenshot(widget, tmp_path / "no-band.png"), widget, widget.plot)
    assert share_near(no_band, band_colour("gray_commissure"), 8) < 0.001


def test_panes_zoom_and_pan_together(qtbot, root):
    widget = LongitudinalWidget(root, subject="ms01", source="raterA")
    qtbot.addWidget(widget)
    widget.resize(1200, 800)
    widget.show()
    qtbot.waitExposed(widget)
    first, second, third = widget.panes.panes
    scales = widget.panes.scale()
    assert scales[0] > 1.5 and max(scales) - min(scales) < 1e-9        # fitted on the canal, one scale
    widget.panes.zoom(1.25, second)                                     # the wheel on the middle pane
    assert widget.panes.scale() == pytest.approx([scales[0] * 1.25] * 3)
    second.horizontalScrollBar().setValue(second.horizontalScrollBar().value() + 40)   # a drag
    centres = [p.mapToScene(p.viewport().rect().center()) for p in (first, second, third)]
    assert abs(centres[0].x() - centres[1].x()) < 1 and abs(centres[2].y() - centres[1].y()) < 1
    moved = centres[1].x()
    third.verticalScrollBar().setValue(third.verticalScrollBar().value() - 30)
    centres = [p.mapToScene(p.viewport().rect().center()) for p in (first, second, third)]
    assert abs(centres[0].y() - centres[2].y()) < 1 and abs(centres[1].x() - moved) < 1
    # a real wheel event zooms all three
    from qtpy.QtCore import QPoint as P
    from qtpy.QtGui import QWheelEvent

    before = widget.panes.scale()[0]
    event = QWheelEvent(QPointF(50, 50), QPointF(first.mapToGlobal(P(50, 50))), P(0, 0), P(0, 120),
                        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase,
                        False)
    first.wheelEvent(event)
    assert widget.panes.scale() == pytest.approx([before * 1.25] * 3)
    widget.set_compartment("gm")           # another area or slice keeps the rater's zoom
    widget.set_position(1)
    assert widget.panes.scale() == pytest.approx([before * 1.25] * 3)
    widget.set_subject("hc01")             # another subject is fitted afresh
    assert len(widget.panes.panes) == 2 and widget.panes.scale()[0] == pytest.approx(scales[0], rel=0.3)


def test_click_on_the_plot_shows_that_slice_and_failed_slices_are_not_compared(qtbot, root, tmp_path):
    QCLog(root).record(Decision("ms01", "3", STEMS[2], CUT_SLICE, "edit", "fail", "image_artifact", "ab"))
    widget = LongitudinalWidget(root, subject="ms01", source="edit")
    qtbot.addWidget(widget)
    widget.resize(1200, 800)
    widget.show()
    qtbot.waitExposed(widget)
    assert not widget.table["beyond_lsc"].astype("boolean").fillna(False).any()   # the cut slice failed
    cut = widget.table[(widget.table["slice"] == CUT_SLICE) & (widget.table["session"] == "ses-3")].iloc[0]
    assert cut["qc_status"] == "fail" and np.isnan(cut["area_mm2"])
    # click over the 5th position (slice 4) inside the plot's frame
    frame = plot_frame(widget.plot.size())
    x = int(frame.left() + (4 + 0.5) / N_SLICES * frame.width())
    with qtbot.waitSignal(widget.position_changed) as signal:
        qtbot.mouseClick(widget.plot, Qt.MouseButton.LeftButton, pos=QPoint(x, widget.plot.height() // 2))
    assert signal.args == ["C4 s4"] and widget.shown_slice() == 4
    assert widget.position_box.currentText() == "C4 s4"
    widget.set_position(CUT_SLICE)
    assert "failed QC" in widget.panes.titles[2].text()
    # levels: one slice per level pair here (6 slices over C2-C5)
    widget.set_by("level")
    assert list(dict.fromkeys(widget.table["position"])) == ["C2", "C3", "C4", "C5"]
    assert widget.shown_slice() in range(N_SLICES)
    for name in ("plot.png", "plot.svg"):
        path = widget.save_plot(tmp_path / name)
        assert path.stat().st_size > 2000
    assert np.asarray(Image.open(tmp_path / "plot.png").convert("L")).std() > 5
    assert "<svg" in (tmp_path / "plot.svg").read_text()


def test_a_subject_with_one_session_and_missing_labels_say_so(qtbot, root):
    widget = LongitudinalWidget(root, subject="hc01", source="edit")
    qtbot.addWidget(widget)
    assert widget.source_box.currentText() == "raterA"        # hc01 has no edit labels
    assert widget.table is not None and len(widget.panes.panes) == 2
    (Study.open(root).find(STEMS[1]).dseg_path("raterA")).unlink()
    widget.set_subject("ms01")
    widget.set_source("raterA")
    assert "no raterA labels for ses-2" in widget.message.text()
    assert list(dict.fromkeys(widget.table["session"])) == ["ses-1", "ses-3"] and len(widget.panes.panes) == 2


def test_dock_in_plain_napari_follows_the_scan_on_screen(make_napari_viewer, qtbot, root):
    from npe2 import PluginManifest

    from score_napari import _reader

    manifest = PluginManifest.from_file(_reader.__file__.replace("_reader.py", "napari.yaml"))
    assert "SCORE longitudinal" in {w.display_name for w in manifest.contributions.widgets}
    entry = Study.open(root).find(STEMS[1])
    viewer = make_napari_viewer(show=True)
    viewer.open(str(entry.path), plugin="score-studio")
    _, dock = viewer.window.add_plugin_dock_widget("score-studio", "SCORE longitudinal")
    widget = dock.longitudinal
    qtbot.waitUntil(lambda: widget.table is not None, timeout=20000)
    assert widget.study.root == Study.open(root).root and widget.subject == "ms01"
    dock.score_viewer.set_slice(4)
    qtbot.waitUntil(lambda: widget.shown_slice() == 4, timeout=5000)
    assert widget.size().width() > 0 and len(widget.panes.panes) == 3
