"""The export panel: tables of the current scan and the study, Figure-2 style area plots and
agreement box plots, saved as CSV, Excel, PNG and SVG; screenshots checked for content."""

from __future__ import annotations

import numpy as np
import openpyxl
import pandas as pd
import pytest
from qtpy.QtCore import QSize
from qtpy.QtGui import QColor, QImage

from score_napari._qt.export_widget import ExportWidget
from score_napari._qt.plots import PLOT_COLORS, area_profiles, box_stats, nice_ticks
from score_gui.areas import AREA_COLUMNS, COLUMNS
from score_gui.labels import LabelMap, write_labels
from score_gui.qc.log import Decision, QCLog
from score_gui.scan import Scan, write_scan
from score_gui.study import Study, scan_path

LEVELS = ["C1", "C1/2", "C2", "C2/3", "C3", "C3/4"]


def labels_for(rng, group, n_slices, shift=0):
    yy, xx = np.mgrid[:40, :40]
    dseg = np.zeros((n_slices, 40, 40), np.uint8)
    for s in range(n_slices):
        bump = 1.5 * np.sin(s / (n_slices - 1) * np.pi)  # enlargement in the middle levels
        cord = 8.5 + bump + (0 if group == "HC" else -1.0) + rng.normal(0, 0.2)
        r2 = (yy - 20) ** 2 + (xx - 20 - shift) ** 2
        dseg[s] = np.select([r2 < 9, r2 < cord ** 2, r2 < 196], [3, 2, 1], 0)
        dseg[s][(dseg[s] == 3) & (yy < 20) & (xx < 20 + shift)] = 4
        dseg[s][(dseg[s] == 3) & (yy > 20)] = 5
    lesion = np.zeros_like(dseg)
    if group == "MS":
        lesion[:3, 12:14, 20:23] = 1
    return dseg, lesion


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("export") / "study"
    rng = np.random.default_rng(0)
    rows = ["participant_id\tgroup"]
    for i in range(6):
        subject, group = f"{i:02d}", "HC" if i < 3 else "MS"
        rows.append(f"sub-{subject}\t{group}")
        path = scan_path(root, subject)
        path.parent.mkdir(parents=True)
        scan = Scan.from_arrays(rng.random((len(LEVELS), 1, 40, 40)), pixel_spacing=(0.6, 0.7),
                                levels=LEVELS, path=path)
        write_scan(scan, path)
        entry = Study.open(root).find(scan.stem)
        dseg, lesion = labels_for(rng, group, len(LEVELS))
        write_labels(scan, LabelMap(dseg, lesion), entry.derivatives_dir, "score")
        if i in (0, 3):
            for who, shift in (("raterA", 0), ("raterB", 1), ("raterC", -1)):
                d, les = labels_for(np.random.default_rng(i), group, len(LEVELS), shift)
                write_labels(scan, LabelMap(d, les), entry.derivatives_dir, who)
    (root / "participants.tsv").write_text("\n".join(rows) + "\n")
    log = QCLog(root)
    log.record(Decision("00", "", "sub-00_amira", 2, "score", "fail", "image_artifact", "tester"))
    return Study.open(root)


def colour_pixels(image: QImage, colour: str, tolerance: int = 40) -> int:
    """Pixels close to a colour (on a downsampled grid, enough to prove a line is drawn)."""
    target = QColor(colour)
    count = 0
    for y in range(0, image.height(), 2):
        for x in range(0, image.width(), 2):
            c = image.pixelColor(x, y)
            if (abs(c.red() - target.red()) + abs(c.green() - target.green())
                    + abs(c.blue() - target.blue())) < tolerance:
                count += 1
    return count


def test_tables_show_scan_and_study(qtbot, study):
    widget = ExportWidget(study.root)
    qtbot.addWidget(widget)
    widget.set_current_scan("sub-00_amira")
    assert widget.source == "score"
    scan = widget.scan_areas()
    assert len(scan) == len(LEVELS) and scan["qc_status"].tolist()[2] == "fail"
    assert widget.scan_table.rowCount() == len(LEVELS)
    headers = [widget.scan_table.horizontalHeaderItem(c).text() for c in range(widget.scan_table.columnCount())]
    assert headers[:3] == ["slice", "level", "qc_status"] and "na_wm" in headers
    assert widget.scan_table.item(2, 0).background().color() == QColor("#f8d7da")  # failed slice tinted
    summary = widget.study_summary()
    cord = summary.query("source == 'score' and compartment == 'cord'").iloc[0]
    assert cord["n_slices"] == 6 * len(LEVELS) - 1  # the failed slice left out
    assert widget.study_table.rowCount() == len(summary)
    assert widget.scan_box.count() == 6 and "raterA" in [widget.source_box.itemText(i)
                                                          for i in range(widget.source_box.count())]


def test_profiles_leave_failed_slices_out_and_split_groups(study):
    widget_areas = ExportWidget(study.root).areas
    profiles = area_profiles(widget_areas, "score", {"00": "HC", "01": "HC", "02": "HC", "03": "MS",
                                                      "04": "MS", "05": "MS"})
    levels, mean, sd, n = profiles["cord"]["HC"]
    assert levels == LEVELS
    assert n.tolist() == [3, 3, 2, 3, 3, 3]  # subject 00's failed C2 slice is out
    assert profiles["cord"]["MS"][1].mean() < mean.mean()
    assert "lesion" in profiles


def test_saving_csv_excel_png_svg(qtbot, study, tmp_path):
    widget = ExportWidget(study.root)
    qtbot.addWidget(widget)
    widget.set_current_scan("sub-03_amira")
    seen = []
    widget.exported.connect(seen.append)
    widget.save_table(tmp_path / "study.csv")
    table = pd.read_csv(tmp_path / "study.csv")
    assert list(table.columns) == COLUMNS and len(table) == len(widget.areas)
    widget.save_table(tmp_path / "scan.csv", which="scan")
    assert pd.read_csv(tmp_path / "scan.csv")["scan"].eq("sub-03_amira").all()
    widget.compute_agreement()
    assert {"inter-rater", "rater-consensus", "score-consensus"} <= set(widget.agreement["kind"])
    widget.save_excel(tmp_path / "export.xlsx")
    book = openpyxl.load_workbook(tmp_path / "export.xlsx")
    assert book.sheetnames == ["areas", "summary", "scan", "agreement", "agreement_summary"]
    assert [c.value for c in book["areas"][1]] == COLUMNS
    png = widget.save_plot(tmp_path / "areas.png")
    image = QImage(str(png))
    assert (image.width(), image.height()) == (1200, 700)
    for name in ("cord", "anterior_horns", "posterior_horns", "lesion"):
        assert colour_pixels(image, PLOT_COLORS[name]) > 30, name
    svg = widget.save_plot(tmp_path / "agreement.svg", which="agreement")
    text = svg.read_text()
    assert text.startswith("<?xml") and "<svg" in text and "Dice" in text
    assert len(seen) == 5  # two CSVs, Excel, PNG, SVG


def test_screenshot_of_the_panel(qtbot, study, tmp_path):
    widget = ExportWidget(study.root)
    qtbot.addWidget(widget)
    widget.resize(1200, 760)
    widget.show()
    qtbot.waitExposed(widget)
    widget.tabs.setCurrentIndex(2)
    qtbot.wait(50)
    shot = widget.grab().toImage()
    shot.save(str(tmp_path / "export_panel.png"))
    assert colour_pixels(shot, PLOT_COLORS["wm"]) > 30  # the WM panel's curves are on screen
    widget.compute_agreement()
    widget.tabs.setCurrentIndex(3)
    qtbot.wait(50)
    boxes = widget.grab().toImage()
    assert colour_pixels(boxes, "#c44e52") > 20  # SCORE vs consensus boxes


def test_empty_study_shows_a_message(qtbot, tmp_path):
    (tmp_path / "empty").mkdir()
    widget = ExportWidget(tmp_path / "empty")
    qtbot.addWidget(widget)
    assert widget.areas.empty
    image = widget.plot_pixmap().toImage()
    assert colour_pixels(image, "#555555", tolerance=60) > 20  # the message text


def test_helpers():
    assert nice_ticks(0.8, 1.0)[0] <= 0.8 and nice_ticks(0.8, 1.0)[-1] >= 1.0
    low, q1, median, q3, high = box_stats([1, 2, 3, 4, 100])
    assert (q1, median, q3) == (2, 3, 4) and high == 4  # 100 is an outlier
    assert box_stats([np.nan]) is None
    assert set(AREA_COLUMNS) >= {"cord", "lesion"}


def test_background_refresh_keeps_the_event_loop_running(qtbot, study):
    """In the application the areas are read in a worker thread: the widget answers events
    meanwhile, shows progress, and the table arrives equal to the synchronous one."""
    from qtpy.QtCore import QTimer

    expected = ExportWidget(study.root).areas
    widget = ExportWidget(background=True)
    qtbot.addWidget(widget)
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(1))
    timer.start(5)
    widget.set_study(study.root)
    assert widget.busy
    assert not widget.refresh_button.isEnabled()
    assert widget.wait(60)
    timer.stop()
    assert ticks                                         # the event loop ran meanwhile
    pd.testing.assert_frame_equal(widget.areas, expected)
    assert widget.refresh_button.isEnabled() and widget.scan_box.count() == 6
    widget.compute_agreement()
    assert widget.busy and widget.wait(120)
    assert {"inter-rater", "score-consensus"} <= set(widget.agreement["kind"])
