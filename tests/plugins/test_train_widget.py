"""The Train panel under Xvfb: a real (tiny) training of a phantom study in napari's worker
thread, with progress, a live loss plot, cancel, resume and the new set's out-of-fold Dice
next to the default models'; the Segment panel then offers the set."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from qtpy.QtCore import Qt

from score_gui import model_sets
from score_gui.phantom.study import make_study
from score_napari._qt.segmentation import SegmentationPanel
from score_napari._qt.train_widget import TrainPanel

pytestmark = pytest.mark.gui

TINY = {"hidden": (6, 6), "fc": (8,), "kernel": 3, "dropconnect_keep": 0.5}
FAST = {"architecture": TINY, "crop_px": 24, "pixel_size_mm": 1.0, "crop_size_px": 32,
        "localiser_iterations": 2, "early_stopping": False}


@pytest.fixture
def one_thread(monkeypatch):
    monkeypatch.setenv("SCORE_THREADS", "1")
    previous = torch.get_num_threads()
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def study(tmp_path, one_thread):
    """``score demo --study``'s generator, small: 1 HC (2 sessions) + 2 MS, raters A and B, 2 slices."""
    return make_study(tmp_path / "study", n_hc=1, n_ms=2, n_slices=2, shape=(64, 64), raters=("A", "B"))


@pytest.fixture
def panel(qtbot, study):
    widget = TrainPanel(study.root, training_args=FAST)
    qtbot.addWidget(widget)
    widget.resize(460, 760)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def _wait_idle(qtbot, panel, timeout=60_000):
    qtbot.waitUntil(lambda: not panel.running, timeout=timeout)


def test_train_cancel_resume_and_compare(qtbot, panel, study, tmp_path):
    # the study's choices
    sources = [panel.sources.item(i).data(Qt.UserRole) for i in range(panel.sources.count())]
    assert sources == ["raterA", "raterB"] and panel.chosen_sources() == ["raterA"]
    starts = [panel.start_model.itemData(i) for i in range(panel.start_model.count())]
    assert starts == ["default", "none"]
    assert not panel.resume_button.isEnabled() and panel.train_button.isEnabled()

    # 1. a long run, cancelled once the loss is being plotted
    panel.name.setText("lab")
    panel.folds.setValue(2)
    panel.iterations.setValue(400)              # a checkpoint every 20 steps
    panel.set_start_model("none")
    seen = []
    qtbot.mouseClick(panel.train_button, Qt.LeftButton)
    assert panel.running and not panel.train_button.isEnabled() and panel.cancel_button.isEnabled()
    panel.worker.yielded.connect(lambda step: seen.append(step))
    qtbot.waitUntil(lambda: panel.loss_plot.n_points >= 45, timeout=30_000)
    qtbot.mouseClick(panel.cancel_button, Qt.LeftButton)
    _wait_idle(qtbot, panel)
    assert seen and seen[-1].total > 0 and 0 < panel.progress_bar.value() < panel.progress_bar.maximum()
    assert "ETA" in panel.eta_label.text() or panel.eta_label.text() == ""
    assert "Cancelled" in panel.message_label.text()
    assert panel.result is None and model_sets.list_model_sets(study) == []     # nothing half-written
    assert model_sets.interrupted_runs(study) == ["lab"]
    assert panel.resume_button.isEnabled()
    checkpoint = model_sets.models_root(study) / ".lab.training" / "fold1" / ".member_state.pt"
    assert checkpoint.exists()
    stopped_at = torch.load(checkpoint, weights_only=False)["iteration"]
    assert 20 <= stopped_at < 400

    # 2. resumed with fewer iterations: the checkpoint's steps count, the run completes
    panel.iterations.setValue(max(stopped_at + 4, 12))
    qtbot.mouseClick(panel.resume_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: panel.result is not None or not panel.running, timeout=60_000)
    _wait_idle(qtbot, panel)
    made = panel.result
    assert made is not None, panel.message_label.text()
    assert panel.loss_plot.n_points > 0
    assert made.path == model_sets.models_root(study) / "lab" and (made.path / "metrics.csv").exists()
    assert made.sources == ["raterA"] and model_sets.interrupted_runs(study) == []
    assert made.baseline["name"] == "default"
    # the comparison shown: one row per compartment, both Dice columns filled
    table = panel.result_table
    rows = {table.item(r, 0).text(): [table.item(r, c).text() for c in (1, 2, 3)] for r in range(table.rowCount())}
    assert {"canal", "cord", "gm", "wm"} <= set(rows)
    for new, old, change in rows.values():
        if new != "-" and old != "-":
            assert abs(float(new) - float(old) - float(change)) < 2e-3
    assert 0 <= float(rows["cord"][0]) <= 1 and float(rows["cord"][1]) > 0.5   # default finds the cord
    assert "default" in panel.result_title.text() and "keep default" in panel.result_title.text() \
        or "may replace it" in panel.result_title.text()
    assert table.horizontalHeaderItem(1).text() == "lab" and table.horizontalHeaderItem(2).text() == "default"
    assert panel.start_model.findData("lab") >= 0      # the new set can start the next one

    # the panel as a rater sees it
    shot = Path(os.environ.get("SCORE_SCREENSHOT_DIR", tmp_path)) / "train_panel.png"
    assert panel.grab().save(str(shot))
    image = panel.grab().toImage()
    pixels = np.array([[image.pixelColor(x, y).lightness() for x in range(0, image.width(), 4)]
                       for y in range(0, image.height(), 4)])
    assert pixels.std() > 10 and len(np.unique(pixels)) > 20

    # 3. the Segment panel offers the set
    segment = SegmentationPanel(lambda: study.scans[0], lambda: study.scans)
    qtbot.addWidget(segment)
    assert segment.study_model_sets() == [str(made.path)]
    index = segment.model_combo.findData(str(made.path))
    assert "lab" in segment.model_combo.itemText(index) and "GM" in segment.model_combo.itemText(index)
    segment.model_combo.setCurrentIndex(index)
    from score_napari._qt.segmentation import load_ensemble

    assert [m.name for m in load_ensemble(segment.ensemble_choice).members] == ["Afold1", "Afold2"]
    segment.refresh_model_sets()                      # refreshing keeps the choice
    assert segment.ensemble_choice == str(made.path)


def test_the_panel_refuses_what_cannot_be_trained(qtbot, panel, study):
    panel.check_sources([])
    panel.start()
    assert not panel.running and "Tick at least one rater" in panel.message_label.text()
    panel.check_sources(["raterA"])
    panel.name.setText("no spaces")
    panel.start()
    assert not panel.running and "model set name" in panel.message_label.text()
    empty = TrainPanel(None)
    qtbot.addWidget(empty)
    assert not empty.train_button.isEnabled() and empty.sources.count() == 0


def test_the_train_dock_is_in_the_manifest():
    from npe2 import PluginManifest

    from score_napari import _reader

    manifest = PluginManifest.from_file(Path(_reader.__file__).with_name("napari.yaml"))
    commands = {c.id: c.python_name for c in manifest.contributions.commands}
    assert commands["score-studio.train_widget"] == "score_napari._widgets:TrainDock"
    assert "SCORE train" in {w.display_name for w in manifest.contributions.widgets}
    from score_napari._widgets import TrainDock

    assert TrainDock.__init__.__annotations__["napari_viewer"].__name__ == "Viewer"
