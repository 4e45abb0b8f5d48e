"""npe2 plugin: manifest, reader, writer (round trip with the scan's affine), sample data and
widget contributions inside plain napari."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from score_gui import labels as lab
from score_gui.labels import LESION_VALUE, read_labels
from score_gui.scan import Scan, write_scan
from score_napari import _reader, _writer
from score_napari._sample_data import simple_phantom

MANIFEST = Path(_reader.__file__).with_name("napari.yaml")


def test_manifest_is_valid_and_registered():
    from npe2 import PluginManifest

    manifest = PluginManifest.from_file(MANIFEST)
    assert manifest.name == "score-studio"   # npe2 requires the distribution's name
    commands = {c.id for c in manifest.contributions.commands}
    assert {"score-studio.get_reader", "score-studio.write_labels", "score-studio.make_sample",
            "score-studio.annotation_widget", "score-studio.areas_widget",
            "score-studio.segmentation_widget", "score-studio.qc_widget",
            "score-studio.export_widget", "score-studio.train_widget", "score-studio.longitudinal_widget",
            "score-studio.ranking_widget"} <= commands
    widgets = {w.display_name for w in manifest.contributions.widgets}
    assert widgets == {"SCORE annotation", "SCORE areas", "SCORE segmentation", "SCORE QC", "SCORE export",
                       "SCORE train", "SCORE longitudinal", "SCORE label next"}
    points = [ep for ep in entry_points(group="napari.manifest") if ep.name == "score-napari"]
    assert points and points[0].value == "score_napari:napari.yaml"
    npe2 = Path(sys.executable).with_name("npe2")
    for target in ("score-studio", str(MANIFEST)):
        result = subprocess.run([str(npe2), "validate", target], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "valid" in result.stdout


def oblique_scan(tmp_path) -> tuple[Scan, Path]:
    """A phantom saved with an affine whose file grid differs from the display grid."""
    scan, truth = simple_phantom(n_slices=3, size=48)
    affine = np.array([[0.0, 0.67, 0.0, -12.0], [-0.67, 0.0, 0.0, 30.0],
                       [0.0, 0.0, 8.0, -5.0], [0, 0, 0, 1.0]])
    scan = Scan.from_arrays(scan.images, pixel_spacing=scan.pixel_spacing, affine=affine)
    path = tmp_path / "sub-01_amira.nii.gz"
    write_scan(scan, path)
    scan.path = path
    return scan, truth, path


def test_reader_gives_panes_and_labels(tmp_path):
    scan, truth, path = oblique_scan(tmp_path)
    assert _reader.get_reader(str(path)) is _reader.read_scan_file
    assert _reader.get_reader(str(tmp_path / "notes.txt")) is None
    layers = _reader.get_reader(str(path))(str(path))
    assert len(layers) == 11 and all(kind == "image" for _, _, kind in layers)
    assert layers[0][1]["name"].endswith("TI1 97 ms")
    np.testing.assert_allclose(layers[0][0], scan.images[:, 0])
    np.testing.assert_allclose(layers[8][0], scan.images[:, :5].mean(axis=1), rtol=1e-5)
    assert [meta["visible"] for _, meta, _ in layers].count(True) == 1
    read = layers[0][1]["metadata"]["score_scan"]
    np.testing.assert_allclose(read.affine, scan.affine)
    lo, hi = layers[0][1]["contrast_limits"]
    assert lo < hi


def test_writer_round_trip_keeps_affine_and_splits_lesions(tmp_path):
    scan, truth, path = oblique_scan(tmp_path)
    read = _reader.read_scan_file(str(path))[0][1]["metadata"]["score_scan"]
    data, meta, kind = _reader.label_layer_data(read, truth, name="truth")
    assert kind == "labels" and (data == LESION_VALUE).any()
    target = tmp_path / "out" / "sub-01_amira_desc-raterA_dseg.nii.gz"
    target.parent.mkdir()
    written = _writer.write_labels_layer(str(target), data, meta)
    assert [Path(p).name for p in written] == ["sub-01_amira_desc-raterA_dseg.nii.gz",
                                              "sub-01_amira_desc-raterA_lesion.nii.gz"]
    img = nib.load(str(target))
    np.testing.assert_allclose(img.affine, scan.affine, atol=1e-5)
    assert img.get_data_dtype() == np.uint8 and img.shape == scan.file_shape
    back = read_labels(target, read)
    np.testing.assert_array_equal(back.dseg, truth.dseg)        # tissue under lesions kept
    np.testing.assert_array_equal(back.lesion, truth.lesion)
    # ... and the label reader gives the same overlay back.
    assert _reader.get_reader(str(target)) is _reader.read_label_file
    (again, again_meta, again_kind), = _reader.read_label_file(str(target))
    np.testing.assert_array_equal(again, data)
    assert again_kind == "labels" and again_meta["colormap"][lab.ANTERIOR_HORNS] == lab.LABEL_COLORS[4]


def test_writer_without_scan_uses_layer_scale(tmp_path):
    data = np.zeros((2, 8, 9), np.uint8)
    data[0, 2:4, 2:4] = lab.WM
    out = _writer.write_labels_layer(str(tmp_path / "x_dseg.nii.gz"), data, {"scale": (1, 0.5, 0.6)})
    img = nib.load(out[0])
    assert img.header.get_zooms()[:2] == pytest.approx((0.6, 0.5))
    assert len(out) == 1


@pytest.mark.gui
def test_sample_and_widgets_in_plain_napari(make_napari_viewer, qtbot):
    from score_napari._qt.annotation import AnnotationWidget
    from score_napari._qt.areas_table import AreasTableWidget

    viewer = make_napari_viewer(show=True)
    viewer.open_sample("score-studio", "amira_demo")
    assert any(layer.metadata.get("score_role") == "labels" for layer in viewer.layers)
    _, annotation = viewer.window.add_plugin_dock_widget("score-studio", "SCORE annotation")
    _, areas = viewer.window.add_plugin_dock_widget("score-studio", "SCORE areas")
    assert isinstance(annotation, AnnotationWidget) and isinstance(areas, AreasTableWidget)
    score_viewer = annotation.score_viewer
    assert areas.score_viewer is score_viewer
    assert len(score_viewer.panes) == 11 and len(viewer.layers) == 22   # the sample was taken over
    assert score_viewer.get_labels().dseg.any()
    assert areas.table.item(2, 0).text() != ""


@pytest.mark.gui
def test_whole_workflow_in_plain_napari(make_napari_viewer, qtbot, tmp_path):
    """A scan of a study opened with the reader; the docks from napari's Plugins menu
    segment it, review its slices, export the study's areas and point to the slice to
    label next, on the same panes."""
    from score_gui.inference import make_untrained_ensemble
    from score_gui.phantom import make_study
    from score_gui.qc.log import QCLog
    from score_napari._qt.qc_widget import QCWidget

    study = make_study(tmp_path / "study", n_hc=1, n_ms=0, n_slices=3, raters=("B",), shape=(64, 64))
    entry = study.scans[0]
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1500, 950)
    viewer.open(str(entry.path), plugin="score-studio")
    docks = {name: viewer.window.add_plugin_dock_widget("score-studio", name)[1]
             for name in ("SCORE annotation", "SCORE areas", "SCORE segmentation", "SCORE QC",
                          "SCORE export")}
    score_viewer = docks["SCORE annotation"].score_viewer
    assert all(dock.score_viewer is score_viewer for dock in docks.values())
    assert len(score_viewer.panes) == 11 and score_viewer.scan.path == entry.path

    # Segmentation of the scan on screen: written as desc-score, shown as contours.
    segmentation = docks["SCORE segmentation"]
    models = make_untrained_ensemble(tmp_path / "models", n_members=2, tiny=True)
    segmentation.model_combo.insertItem(0, "untrained", str(models))
    segmentation.model_combo.setCurrentIndex(0)
    with qtbot.waitSignal(segmentation.finished, timeout=180_000):
        segmentation.segment_button.click()
    assert entry.dseg_path("score").exists()
    assert "score" in score_viewer.references
    assert "disagreement" in [layer.metadata.get("score_name") for layer in viewer.layers]

    # QC of the study: follows the scan on screen; the viewer follows the slice reviewed.
    qc = docks["SCORE QC"]
    assert qc.chooser.root == study.root
    qc.reviewer.setText("rev1")
    qc._rebuild()
    assert isinstance(qc.qc_widget, QCWidget) and qc.qc_widget.entry.stem == entry.stem
    assert qc.qc_widget.grid.count() == 3
    qc.qc_widget.grid.setCurrentRow(2)
    assert score_viewer.current_slice == 2
    qc.qc_widget.pass_current()
    decisions = QCLog(study.root).decisions()
    assert ((decisions["reviewer"] == "rev1") & (decisions["status"] == "pass")).sum() == 1

    # Export of the study's areas, the scan on screen selected.
    export = docks["SCORE export"].export_widget
    assert export.wait(120)
    assert export.study.root == study.root and len(export.areas) > 0
    assert export.scan_box.currentText() == entry.stem

    # Which slice to label next: rater A has labelled none; "next" moves the viewer there.
    _, label_next = viewer.window.add_plugin_dock_widget("score-studio", "SCORE label next")
    assert label_next.score_viewer is score_viewer and label_next.chooser.root == study.root
    label_next.panel.models = str(models)
    label_next.panel.start()
    qtbot.waitUntil(lambda: label_next.panel.table is not None and not label_next.panel.running, timeout=120_000)
    assert label_next.panel.list.rowCount() == 3 * len(study.scans)
    stem, index = label_next.panel.next_slice()                 # opens that scan if another is shown
    assert score_viewer.scan.path == study.find(stem).path and score_viewer.current_slice == index

    shot = viewer.screenshot(str(tmp_path / "plain_napari.png"), canvas_only=False)
    assert shot.shape[0] > 500 and shot[..., :3].std() > 10
